"""``pyuftp simulate``: a counterparty that behaves by a scenario (a TOML file), for tests and
for a participant's CI. See docs/conformance.rst and :mod:`pyuftp.conformance.scenario`.

    pyuftp simulate dso --scenario examples/scenarios/gopacs-day-ahead-dso.toml \\
        --key dso.keys --port 8443 --peer agr.example.com AGR agr.pub https://agr/... \\
        --duration 60 --store dso-sim.db
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (OK, Commands, Usage, add_command, add_json, print_json, private_key,
                      public_key, role)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses

    from ..conformance.scenario import ScenarioError, load
    from ..conformance.simulator import Simulator
    from ..discovery import Directory

    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        raise Usage(str(exc)) from None
    if args.role and args.role != scenario.role:
        raise Usage(f"the scenario plays {scenario.role} (party.role), not {args.role}")
    if args.domain:
        scenario = dataclasses.replace(scenario, domain=args.domain)
    directory = Directory()
    for domain, peer_role, key, url in args.peer or ():
        directory.add(domain, role(peer_role), public_key(key).public_key, url)
    try:
        simulator = Simulator(scenario, private_key(args.key), directory.key,
                              directory.endpoint, host=args.host, port=args.port,
                              store=args.store)
    except ValueError as exc:
        raise Usage(str(exc)) from None

    shown: list[str] = []

    async def serve() -> None:
        async with simulator:
            try:
                await wait()
            finally:  # also when interrupted: the archive is still open here
                shown.append(simulator.timeline())

    async def wait() -> None:
        print(f"simulating {scenario.role} {scenario.domain} at {simulator.url}",
              file=sys.stderr, flush=True)
        if args.until_done:
            await simulator.finished(args.duration or 3600.0)
        elif args.duration is None:
            await asyncio.Event().wait()  # until interrupted
        else:
            await asyncio.sleep(args.duration)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    results: list[dict[str, Any]] = [
        {"message_type": kind, "message_id": message_id, "outcome": outcome}
        for kind, message_id, outcome in simulator.results]
    if args.json:
        print_json({"sent": results, "faulted": simulator.faulted,
                    "dropped": simulator.dropped})
    else:
        print("\n".join(shown))
    return OK


def add_simulate(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "simulate", "a counterparty that behaves by a scenario (for tests, CI)",
        "Run a DSO, AGR or CRO service that behaves by a scenario file (TOML): answer "
        "Accepted, reject by type, delay answers, drop them, refuse requests with 5xx or 429 "
        "for a while, send messages on a schedule, order the cheapest offer; Python hooks "
        "for the rest. At the end it prints what it sent and got as a timeline (--store "
        "keeps its archive: 'pyuftp archive query --store FILE').", _run)
    parser.add_argument("role", nargs="?", type=role, help="the role it plays (as the scenario)")
    parser.add_argument("--scenario", required=True, metavar="FILE", help="the scenario (TOML)")
    parser.add_argument("--key", required=True, metavar="KEYFILE", help="its keys file")
    parser.add_argument("--domain", help="its domain (default: the scenario's party.domain)")
    parser.add_argument("--host", default="127.0.0.1", help="where it listens (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="its port (8080; 0: any)")
    parser.add_argument("--peer", nargs=4, action="append",
                        metavar=("DOMAIN", "ROLE", "KEY", "URL"),
                        help="a party it talks to: domain, role, public key, endpoint (repeat)")
    parser.add_argument("--store", metavar="FILE", help="a SQLite file for its archive")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop after this long (default: run until interrupted)")
    parser.add_argument("--until-done", action="store_true",
                        help="stop as soon as its scheduled sends are done (within --duration)")
    add_json(parser, "what it sent")
