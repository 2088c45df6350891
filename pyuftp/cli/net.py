"""Commands that talk to other parties: ``send``, ``ping``; and ``demo``, which plays a whole
trading cycle between three services on 127.0.0.1."""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._common import (BAD, OK, Bad, Commands, Progress, Usage, add_command, add_json,
                      oneline, print_json, private_key, public_key,
                      read_input, role)
from .messages import load
from .seal import sender_role

if TYPE_CHECKING:
    from ..signing.crypto import SigningKey

#: where a party's service is, by the transport appendix, when only its domain is given
DEFAULT_PATH = "/shapeshifter/api/v3/message"


def checked_url(url: str) -> str:
    from ..auth.tls import check_url

    try:
        return check_url(url, "--to")
    except ValueError as exc:
        raise Usage(str(exc)) from None


# --- send -------------------------------------------------------------------------------------


def _envelope(data: bytes, key: SigningKey | None, given_role: str | None,
              rules: bool) -> tuple[bytes, str, str]:
    """``(SignedMessage bytes, message type, message id)`` of a file's content."""
    from ..signing.envelope import wrap
    from ..rules import DEFAULT_RULES

    loaded = load(data)
    if loaded.envelope is not None:
        return data, loaded.message_type, str(loaded.payload.get("message_id"))
    if key is None:
        raise Usage("--key is needed to sign a payload message")
    if rules:
        problems = DEFAULT_RULES.check(loaded.message_type, loaded.payload)
        if problems:
            raise Bad("breaks the business rules: " + "; ".join(problems))
    signer = sender_role(loaded.message_type, given_role)
    sealed = wrap(loaded.payload_xml, key, loaded.payload["sender_domain"], signer)
    return sealed, loaded.message_type, str(loaded.payload["message_id"])


async def _send_all(args: argparse.Namespace, url: str, key: SigningKey | None) -> list[Any]:
    from ..exceptions import DeliveryError
    from ..sending.transport import Poster

    results: list[dict[str, Any]] = []
    progress = Progress(len(args.files))
    poster = Poster(timeout=args.timeout)
    try:
        for name in args.files:
            result: dict[str, Any] = {"file": name, "sent": False}
            try:
                data, kind, message_id = _envelope(read_input(name), key, args.role,
                                                   not args.no_rules)
                result.update(message_type=kind, message_id=message_id)
                await poster.post_once(data, url)
                result.update(sent=True, status=200)
                outcome = f"sent {kind} {message_id}"
            except DeliveryError as exc:
                result.update(status=exc.status, error=oneline(exc, 300))
                outcome = f"NOT sent: {result['error']}"
            except (Bad, Usage) as exc:
                result["error"] = str(exc)
                outcome = f"NOT sent: {exc}"
            results.append(result)
            progress.step(name, outcome)
    finally:
        await poster.close()
    return results


def _send(args: argparse.Namespace) -> int:
    import asyncio

    url = checked_url(args.to)
    key = private_key(args.key) if args.key else None
    results = asyncio.run(_send_all(args, url, key))
    if args.json:
        print_json(results)
    else:
        for result in results:
            if result["sent"]:
                print(f"{result['file']}: sent {result['message_type']} "
                      f"{result['message_id']} to {url} (HTTP 200)")
            else:
                print(f"{result['file']}: NOT sent: {result['error']}")
    return OK if all(r["sent"] for r in results) else BAD


def add_send(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "send", "sign and POST messages to a service",
        "POST messages to a UFTP service, once each, in the order given. A payload message "
        "(XML or JSON form) is validated, checked against the business rules and signed "
        "with your key first; a SignedMessage is posted as it is. HTTP 200 only means "
        "'received': the answer comes later, to your own service. Exit status 0 when every "
        "file was taken, 1 otherwise (each failure is reported and the rest still sent).",
        _send)
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="the messages: files, or - for stdin")
    parser.add_argument("--to", required=True, metavar="URL", help="the recipient's endpoint")
    parser.add_argument("--key", metavar="KEYFILE",
                        help="the keys file with your private key (to sign payloads)")
    parser.add_argument("--role", type=role, help="your role, where a type leaves it open")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for one POST (default 30)")
    parser.add_argument("--no-rules", action="store_true",
                        help="do not check the business rules before signing")
    add_json(parser, "one result per file")


# --- ping -------------------------------------------------------------------------------------


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """``(recipient domain, URL)`` of the ping's target."""
    if "://" in args.target:
        url = checked_url(args.target)
        return args.domain or (urlsplit(url).hostname or ""), url
    return args.target, checked_url(f"https://{args.target}{DEFAULT_PATH}")


async def _ping_status(args: argparse.Namespace, domain: str, url: str) -> dict[str, Any]:
    from ..sending.delivery import Courier
    from ..exceptions import DeliveryError

    courier = Courier(args.sender, private_key(args.key), args.role, attempts=1,
                      send_timeout=args.timeout, timeout=args.timeout,
                      endpoints={(domain, args.peer_role): url})
    started = time.monotonic()
    try:
        sent = await courier.send("TestMessage", {}, domain, args.peer_role)
        return {"ok": True, "status": 200, "message_id": sent["message_id"],
                "seconds": round(time.monotonic() - started, 3)}
    except DeliveryError as exc:
        return {"ok": False, "status": exc.status, "error": oneline(exc, 300)}
    finally:
        await courier.close()


async def _ping_answer(args: argparse.Namespace, domain: str, url: str) -> dict[str, Any]:
    import asyncio

    from ..server.service import SERVICES

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise Usage(f"--listen {args.listen!r}: give HOST:PORT")
    if not args.peer_key:
        raise Usage("--listen needs --peer-key, to check the signature of the answer")
    peer_key = public_key(args.peer_key)
    failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def delivery_failed(item: Any, error: Exception) -> None:
        if not failed.done():
            failed.set_result(oneline(error, 300))

    service = SERVICES[args.role](
        args.sender, private_key(args.key),
        lambda d, r: peer_key.public_key if (d, r) == (domain, args.peer_role) else None,
        lambda d, r: url if (d, r) == (domain, args.peer_role) else None,
        host=host.strip("[]"), port=int(port), on_delivery_failed=delivery_failed)
    started = time.monotonic()
    async with service:
        request = asyncio.ensure_future(
            service.request(domain, args.peer_role, "TestMessage", {}, timeout=args.timeout))
        either: set[asyncio.Future[Any]] = {request, failed}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if failed.done() and not request.done():
            request.cancel()
            return {"ok": False, "error": f"not delivered: {failed.result()}"}
        try:
            sent, answer = request.result()
        except asyncio.TimeoutError as exc:
            return {"ok": False, "error": str(exc)}
    return {"ok": True, "message_id": sent["message_id"], "answer": answer,
            "seconds": round(time.monotonic() - started, 3)}


def _ping(args: argparse.Namespace) -> int:
    import asyncio

    domain, url = _target(args)
    if args.peer_role is None:
        args.peer_role = "AGR" if args.role == "DSO" else "DSO"
    run = _ping_answer if args.listen else _ping_status
    result = {"target": url, "domain": domain, **asyncio.run(run(args, domain, url))}
    if args.json:
        print_json(result)
    elif result["ok"] and "answer" in result:
        print(f"TestMessageResponse from {domain} in {result['seconds']} s "
              f"(TestMessage {result['message_id']} via {url})")
    elif result["ok"]:
        print(f"HTTP 200 from {url} in {result['seconds']} s "
              f"(TestMessage {result['message_id']}; its answer goes to your own service)")
    else:
        print(f"ping {domain} at {url} failed: {result['error']}")
    return OK if result["ok"] else BAD


def add_ping(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "ping", "send a TestMessage and report what happens",
        "Send a signed TestMessage to a party. Without --listen it reports the HTTP status "
        "of the POST. With --listen HOST:PORT it runs a temporary service there, waits for "
        "the TestMessageResponse (the party must send its answers to that address, and know "
        "your public key) and checks its signature with --peer-key. A domain is reached at "
        f"https://DOMAIN{DEFAULT_PATH}; give a URL to say otherwise. Exit status 0: it "
        "answered; 1: it did not.", _ping)
    parser.add_argument("target", metavar="DOMAIN_OR_URL", help="the party to ping")
    parser.add_argument("--key", required=True, metavar="KEYFILE",
                        help="the keys file with your private key")
    parser.add_argument("--from", dest="sender", required=True, metavar="DOMAIN",
                        help="your own domain")
    parser.add_argument("--role", type=role, required=True, help="your role")
    parser.add_argument("--peer-role", type=role,
                        help="the party's role (default DSO; AGR when you are the DSO)")
    parser.add_argument("--domain", help="the party's domain, for a URL target (default: "
                                         "the URL's host)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="wait for the answer on a temporary service here")
    parser.add_argument("--peer-key", metavar="PUBLIC",
                        help="the party's public key (base64, cs1., or a keys file)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait (default 10)")
    add_json(parser)


# --- demo -------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(quiet=args.quiet)


def add_demo(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "demo", "play a full UFTP cycle on 127.0.0.1",
        "Start a DSO, an AGR and a CRO service on 127.0.0.1 with new keys, send every UFTP "
        "message type between them and check that each one is answered. Exits 0 when all "
        "are.", _demo)
    parser.add_argument("--quiet", action="store_true", help="print only the summary")

