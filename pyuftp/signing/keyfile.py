"""The keys file: what ``pyuftp keygen`` writes and :func:`load_keys` reads.

One line per key, a label, a colon and the key; blank lines and lines starting with ``#``
are ignored::

    private key (keep secret): <base64 of the 64-byte libsodium secret key>
    public key:                <base64 of the 32-byte Ed25519 public key>
    publish as:                cs1.<base64 of the public key>

A party keeps all three lines to itself (mode 0600). What it gives other parties is the same
file without the private line (``grep -v '^private' agr.keys > agr.pub``): :func:`load_keys`
reads that too, as a public-only key pair. When both a private and a public line are there
they must belong together, so a file pasted together from two pairs is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .crypto import SigningKey, VerifyKey
from ..exceptions import InvalidKey

__all__ = ["KeyPair", "load_keys", "format_keys", "LABELS"]

#: the label of each line, as keygen writes it
LABELS = {"private": "private key (keep secret)", "public": "public key", "cs1": "publish as"}
MAX_KEYS_FILE = 64 * 1024  # a keys file is a few hundred bytes; refuse anything huge


@dataclass(frozen=True)
class KeyPair:
    """The keys of one party read from a keys file. ``private_key`` is None in a file that
    only holds the public part (another party's)."""

    public_key: str                 # base64 of the 32-byte public key
    private_key: str | None = None  # base64 of the 64-byte secret key: keep it secret

    def __repr__(self) -> str:  # never show the private key
        private = "..." if self.private_key is not None else None
        return f"KeyPair(public_key={self.public_key!r}, private_key={private!r})"

    @property
    def signing_key(self) -> SigningKey:
        """The private key as a :class:`~pyuftp.signing.crypto.SigningKey`; InvalidKey when the
        file has none."""
        if self.private_key is None:
            raise InvalidKey("this keys file holds no private key (only a public one)")
        return SigningKey(self.private_key)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.public_key)

    @property
    def public_key_cs1(self) -> str:
        """The ``cs1.`` string to publish (in DNS, for instance)."""
        return self.verify_key.public_key_cs1


def format_keys(signing_key: SigningKey | str) -> str:
    """The keys file of ``signing_key`` (its three lines, ending in a newline)."""
    key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
    width = max(len(label) for label in LABELS.values()) + 1
    lines = [(LABELS["private"], key.private_key), (LABELS["public"], key.public_key),
             (LABELS["cs1"], key.public_key_cs1)]
    return "".join(f"{label + ':':<{width}} {value}\n" for label, value in lines)


def _read(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_KEYS_FILE + 1)
    except OSError as exc:
        raise InvalidKey(f"cannot read the keys file {os.fspath(path)!r}: "
                         f"{exc.strerror or exc}") from None
    if len(data) > MAX_KEYS_FILE:
        raise InvalidKey(f"{os.fspath(path)!r} is larger than {MAX_KEYS_FILE} bytes: "
                         "not a keys file")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidKey(f"{os.fspath(path)!r} is not a keys file (not ASCII text)") from None


def load_keys(path: str | os.PathLike[str]) -> KeyPair:
    """Read a keys file (see the module docstring): a :class:`KeyPair`. Raises
    :class:`~pyuftp.exceptions.InvalidKey` naming the file and line (never quoting a key)
    for a file that is not one, holds no key, or holds keys that do not belong together."""
    name = os.fspath(path)
    found: dict[str, str] = {}
    by_label = {label: kind for kind, label in LABELS.items()}
    for number, line in enumerate(_read(path).splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        label, colon, value = text.partition(":")
        kind = by_label.get(label.strip())
        if not colon or kind is None or not value.strip():
            raise InvalidKey(f"{name!r} line {number}: expected '<label>: <key>' with a label "
                             f"of {', '.join(repr(v) for v in LABELS.values())}")
        if kind in found:
            raise InvalidKey(f"{name!r} line {number}: a second {LABELS[kind]!r} line")
        found[kind] = value.strip()
    private = SigningKey(found["private"]) if "private" in found else None
    public_keys = [VerifyKey(found[kind]) for kind in ("public", "cs1") if kind in found]
    if private is not None:
        public_keys.insert(0, private.verify_key)
    if not public_keys:
        raise InvalidKey(f"{name!r} holds no key")
    if any(key != public_keys[0] for key in public_keys[1:]):
        raise InvalidKey(f"{name!r}: its keys do not belong together (the public key is not "
                         "the private key's, or the cs1. line names another key)")
    return KeyPair(public_keys[0].public_key,
                   private.private_key if private is not None else None)
