"""What the commands share: exit codes, errors, reading FILE or stdin, ``--json`` output,
keys, stores, durations and progress lines.

Exit codes: 0 when all went well, 1 when the thing checked (a message, a signature, a
delivery, a peer) is bad, 2 for a usage error (a missing file, a bad option). Errors go to
stderr as ``pyuftp COMMAND: error: ...``, in one line, never quoting a key.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..signing.crypto import SigningKey, VerifyKey
    from ..store import Store

OK, BAD, USAGE = 0, 1, 2

#: the most bytes read from one FILE (or stdin): a UFTP message is far smaller (the services
#: refuse bodies over a few MB), and a mistaken multi-GB file must not fill the memory
MAX_INPUT = 64 * 1024 * 1024

Commands = argparse._SubParsersAction  # the object add_parser is called on
Run = Callable[[argparse.Namespace], int]


class Usage(Exception):
    """A usage error: exit code 2."""


class Bad(Exception):
    """The thing checked is bad: exit code 1."""


def add_command(commands: "Commands[argparse.ArgumentParser]", name: str, summary: str,
                description: str, run: Run, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand with a one-line ``summary`` (in ``pyuftp --help``) and a ``description``
    (in ``pyuftp NAME --help``) that runs ``run(args)``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description, **kwargs)
    parser.set_defaults(run=run)
    return parser


def add_json(parser: "argparse._ActionsContainer", what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON, for scripts")


def add_file(parser: argparse.ArgumentParser, what: str = "the message") -> None:
    parser.add_argument("file", metavar="FILE", help=f"{what}: a file, or - for stdin")


# --- input ------------------------------------------------------------------------------------


def read_input(name: str) -> bytes:
    """The bytes of file ``name`` (``-``: stdin), at most :data:`MAX_INPUT` of them."""
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(name, "rb") as file:
                data = file.read(MAX_INPUT + 1)
    except OSError as exc:
        raise Usage(f"cannot read {name!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT:
        raise Usage(f"{name!r} is larger than {MAX_INPUT // 2**20} MiB: not a UFTP message")
    return data


def is_signed_message(data: bytes) -> bool:
    """Whether ``data`` looks like a SignedMessage envelope (the parser decides for sure)."""
    head = data[:512].lstrip()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2:].lstrip()
    return head.startswith(b"<SignedMessage")


def is_json(data: bytes) -> bool:
    return data.lstrip()[:1] == b"{"


# --- keys -------------------------------------------------------------------------------------


def private_key(path: str) -> "SigningKey":
    """The private key of the keys file ``path`` (see pyuftp.signing.keyfile)."""
    from ..exceptions import InvalidKey
    from ..signing.keyfile import load_keys

    try:
        return load_keys(path).signing_key
    except InvalidKey as exc:
        raise Usage(str(exc)) from None


def public_key(value: str) -> "VerifyKey":
    """A public key given as a keys file's path, or as the key itself (base64 or cs1.)."""
    from ..signing.crypto import VerifyKey
    from ..exceptions import InvalidKey
    from ..signing.keyfile import load_keys

    try:
        if os.path.exists(value):
            return load_keys(value).verify_key
        return VerifyKey(value)
    except InvalidKey as exc:
        raise Usage(f"--key: {exc}") from None


# --- stores -----------------------------------------------------------------------------------


def open_existing_store(spec: str) -> "Store":
    """The store at ``spec`` (a path or a sqlite:/// URL); refuses to create a new, empty one
    for a mistyped path."""
    from ..store import open_store

    path = spec[len("sqlite:///"):] if spec.startswith("sqlite:///") else spec
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", spec) or spec.startswith("sqlite:///"):
        if not os.path.exists(path):
            raise Usage(f"no store at {path!r} (the file does not exist)")
    try:
        return open_store(spec)
    except ValueError as exc:
        raise Usage(str(exc)) from None


# --- output -----------------------------------------------------------------------------------


def print_json(value: Any, out: IO[str] | None = None) -> None:
    """``value`` as indented JSON; datetimes, dates, durations and decimals as in the JSON
    form of a message (:mod:`pyuftp.message.json_form`), bytes as base64."""
    from ..message.json_form import to_jsonable

    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False),
          file=out or sys.stdout)


def when(timestamp: float | None) -> str:
    """A unix time as ISO 8601 in UTC, to the second ('-' for none)."""
    if timestamp is None or timestamp <= 0:
        return "-"
    moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def oneline(text: Any, limit: int = 100) -> str:
    """``text`` on one line, escaped and cut (what a peer wrote must not forge lines)."""
    from ..exceptions import excerpt

    return excerpt(str(text), limit)


class Progress:
    """``[3/10] what: outcome`` lines on stderr for long operations; off for one item."""

    def __init__(self, total: int, out: IO[str] | None = None) -> None:
        self.total, self.done = total, 0
        self.out = out or sys.stderr

    def step(self, what: str, outcome: str) -> None:
        self.done += 1
        if self.total > 1:
            print(f"[{self.done}/{self.total}] {what}: {outcome}", file=self.out, flush=True)


# --- parsing options --------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def duration(text: str) -> float:
    """Seconds of ``90s``, ``15m``, ``12h``, ``7d``, ``2w``, ``1d12h`` or an ISO 8601
    duration such as ``P7D`` or ``PT15M`` (an argparse type)."""
    spec = text.strip().lower()
    if spec.startswith("p"):
        from ..message.fields import parse_duration

        try:
            return parse_duration(text.strip().upper()).total_seconds()
        except ValueError:
            pass
    elif spec and _DURATION.sub("", spec).strip() == "":
        return float(sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(spec)))
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a duration: use e.g. 90s, 15m, 12h, 7d, 2w or ISO 8601 (P7D)")


def message_type(text: str) -> str:
    """A UFTP message type, with a did-you-mean for a near miss (an argparse type)."""
    from ..message.catalog import MESSAGE_TYPES
    from ..message.check import suggest

    if text in MESSAGE_TYPES:
        return text
    meant = suggest(text, MESSAGE_TYPES)
    hint = (f"did you mean {meant!r}?" if meant is not None
            else f"one of the {len(MESSAGE_TYPES)} types 'pyuftp example --help' lists")
    raise argparse.ArgumentTypeError(f"invalid choice: {oneline(text, 40)!r} ({hint})")


def role(text: str) -> str:
    """AGR, CRO or DSO, in any case (an argparse type)."""
    if text.upper() in ("AGR", "CRO", "DSO"):
        return text.upper()
    raise argparse.ArgumentTypeError(f"invalid role {oneline(text, 20)!r}: AGR, CRO or DSO")


def fail(command: str, message: str, code: int) -> int:
    print(f"pyuftp {command}: error: {message}", file=sys.stderr)
    return code
