"""Store bookkeeping per message: write transactions, bytes on disk and store CPU.

    python bench/disk.py [--messages 2000] [--rounds 3] [--compare /tmp/base-tree]

Each run drives a real store the way a service does, with the real
``pyuftp.sending.outbox.Outbox``: ``--senders`` concurrent requests (default 32), each
``record_received`` with a signed 96-ISP FlexOffer envelope (5.6 KB; payload XML 4 KB) and
its archive entry, then ``Outbox.submit`` of a signed FlexOfferResponse (answers=, archive=,
outcome=, as the courier does) that a ``deliver`` of 2 ms (a stand-in for the HTTP POST)
delivers, 16 at a time per peer (the outbox's default): more requests than slots, as in the
soak. It prints per message:

- ``writes``: the SQLite store's write transactions (its ``_session(write=True)`` wrapped:
  the real object, counted), and which;
- ``B/msg``: the store file's size after the run (closed: the WAL checkpointed), divided by
  the messages — what a message leaves on disk (journal, archive, delivered outbox row);
- ``store µs``: the thread CPU time spent inside the store's transactions, per message;
- ``total µs``: the process CPU time of the whole run per message (outbox and asyncio too).

Settings: SQLite with ``synchronous`` NORMAL and FULL (both WAL) and page sizes 4096 and
16384, and the memory store (bytes: tracemalloc after the run, per message). Rounds are
interleaved (every setting of every tree once per round, in a rotating order) and the
medians printed with their spread. ``--compare PATH`` runs the same in another source tree
(``PYTHONPATH=PATH``, e.g. a ``git worktree`` of an older commit) beside this one.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AGR, DSO = "agr.example.com", "dso.example.com"
SETTINGS = ("NORMAL/4096", "FULL/4096", "NORMAL/16384", "memory")


def _messages(n: int) -> list[tuple[bytes, bytes, dict[str, Any], bytes, bytes, dict[str, Any]]]:
    """n signed offers and their signed answers: (envelope, xml, payload) each."""
    import base64
    import datetime as dt

    from pyuftp.message.examples import flex_offer_96
    from pyuftp.signing.crypto import generate_keypair
    from pyuftp.signing.envelope import seal_message

    agr, _ = generate_keypair()
    dso, _ = generate_keypair()
    offer = dict(flex_offer_96(), sender_domain=AGR, recipient_domain=DSO)
    out = []
    for i in range(n):
        offer_id = f"00000000-0000-4000-8000-{i:012d}"
        env, sent = seal_message("FlexOffer", dict(offer, message_id=offer_id), agr, "AGR")
        answer = {"version": "3.0.0", "sender_domain": DSO, "recipient_domain": AGR,
                  "time_stamp": dt.datetime.now(dt.timezone.utc),
                  "message_id": f"10000000-0000-4000-8000-{i:012d}",
                  "conversation_id": sent["conversation_id"],
                  "flex_offer_message_id": offer_id, "result": "Accepted"}
        answer_env, answer_sent = seal_message("FlexOfferResponse", answer, dso, "DSO")
        out.append((env, _xml(env, base64), sent, answer_env, _xml(answer_env, base64),
                    answer_sent))
    return out


def _xml(envelope: bytes, base64: Any) -> bytes:
    from lxml import etree

    return bytes(base64.b64decode(etree.fromstring(envelope).get("Body"))[64:])


@contextlib.contextmanager
def _counted(store: Any, writes: list[str], spent: list[float]) -> Iterator[None]:
    session = store._session

    @contextlib.contextmanager
    def counted(action: str, write: bool = True) -> Iterator[Any]:
        inner = getattr(store, "_grouped", False)  # a group commit's entry: a savepoint
        start = time.thread_time()
        try:
            with session(action, write) as conn:
                yield conn
        finally:
            if not inner:
                spent.append(time.thread_time() - start)
        if write and not inner:
            writes.append(action)

    store._session = counted
    try:
        yield
    finally:
        del store._session


async def _drive(store: Any, messages: list[Any], senders: int) -> None:
    from pyuftp.sending.outbox import Outbox
    from pyuftp.store import OutboxItem
    from pyuftp.store.archiving import entry

    async def deliver(item: Any) -> None:
        await asyncio.sleep(0.002)

    outbox = Outbox(store, deliver)
    await outbox.start()
    queue = list(reversed(messages))

    async def sender() -> None:
        while queue:
            env, xml, sent, answer_env, answer_xml, answer = queue.pop()
            await store.call(functools.partial(  # as the inbox calls it
                store.record_received, AGR, sent["message_id"], "d" + sent["message_id"], env,
                time.time(), archive=entry("in", "FlexOffer", sent, xml, "AGR", "DSO")))
            await asyncio.sleep(0)  # the handler
            now = time.time()
            item = OutboxItem(answer["message_id"], "FlexOfferResponse", DSO, AGR, "AGR",
                              answer_env, now, now + 3600)
            await outbox.submit(item, answers=(AGR, sent["message_id"]),
                                archive=entry("out", "FlexOfferResponse", answer, answer_xml,
                                              "DSO", "AGR"), outcome=("Accepted", None))

    await asyncio.gather(*(sender() for _ in range(senders)))
    if not await outbox.wait_idle(60):
        raise RuntimeError("the outbox did not finish")
    await outbox.stop()


def child(setting: str, n: int, senders: int) -> dict[str, Any]:
    from pyuftp.store import MemoryStore, SQLiteStore

    messages = _messages(n)
    writes: list[str] = []
    spent: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "store.sqlite")
        if setting == "memory":
            tracemalloc.start()
            store: Any = MemoryStore(max_archived=10 * n)
        else:
            sync, page = setting.split("/")
            import sqlite3

            raw = sqlite3.connect(path)  # page size: set before the first table is made
            raw.execute(f"PRAGMA page_size = {int(page)}")
            raw.execute("VACUUM")
            raw.close()
            store = SQLiteStore(path, synchronous=sync)
        started = time.process_time()
        with _counted(store, writes, spent) if setting != "memory" else contextlib.nullcontext():
            asyncio.run(_drive(store, messages, senders))
        total = time.process_time() - started
        if setting == "memory":
            size = tracemalloc.get_traced_memory()[0]
            store.close()
            tracemalloc.stop()
        else:
            store.close()
            size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                       if f.startswith("store.sqlite") and not f.endswith(".lock"))
    kinds: dict[str, int] = {}
    for action in writes:
        kinds[action] = kinds.get(action, 0) + 1
    return {"writes": len(writes) / n, "kinds": kinds, "bytes": size / n,
            "store_us": sum(spent) / n * 1e6, "total_us": total / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="PATH", help="another source tree, beside this")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.messages, args.senders)))
        return
    trees = [("this", ROOT)] + ([("compare", os.path.abspath(args.compare))]
                                if args.compare else [])
    runs = [(name, tree, s) for name, tree in trees for s in args.settings.split(",")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for name, tree, setting in runs[r % len(runs):] + runs[:r % len(runs)]:
            env = dict(os.environ, PYTHONPATH=tree)
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                   setting, "--messages", str(args.messages), "--senders",
                                   str(args.senders)], env=env, capture_output=True,
                                  text=True, timeout=1800)
            if done.returncode:
                sys.exit(f"{name} {setting} failed:\n{done.stderr[-3000:]}")
            results.setdefault((name, setting), []).append(json.loads(done.stdout))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.messages} messages, {args.senders} senders, {args.rounds} rounds: median "
          "(min-max)")
    print(f"{'tree':8} {'setting':13} {'writes':>6} {'B/msg':>16} {'store µs':>16} "
          f"{'total µs':>16}  write transactions per message")
    for name, _, setting in runs:
        rows = results[(name, setting)]

        def med(key: str) -> str:
            values = [row[key] for row in rows]
            return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

        kinds = {k: round(v / args.messages, 2) for k, v in rows[0]["kinds"].items()}
        print(f"{name:8} {setting:13} {rows[0]['writes']:6.2f} {med('bytes'):>16} "
              f"{med('store_us') if setting != 'memory' else '-':>16} {med('total_us'):>16}  "
              f"{kinds}")


if __name__ == "__main__":
    main()
