"""Message-layer benchmark: pyuftp against the peer implementation shapeshifter-uftp.

    cd /work/main && PYTHONPATH=/work/main python3 bench/messages.py [--quick]

For a FlexOffer with one option of 96 ISPs and for a small FlexOfferResponse it prints the
CPU time per message (µs, median of several timed repeats) to create (payload -> XML), parse
(XML -> payload) and do both, for pyuftp and for shapeshifter-uftp with the same content,
and the ratio peer / pyuftp. Then the stages of pyuftp's create + parse beside the floor
(plain lxml parse + XSD validation of the same bytes, in the same loop and runs) and the
time ``import`` takes in a fresh interpreter. See bench/README.md for what is and is not measured.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

import argparse
import datetime as dt
import gc
import statistics
import subprocess
import time
import timeit
from decimal import Decimal
from typing import Any, Callable

import logging

import pyuftp
import pyuftp.message.codec
from lxml import etree

try:
    from shapeshifter_uftp import transport as peer_transport
    from shapeshifter_uftp.uftp import messages as peer_messages
    from xsdata.models.datatype import XmlDate, XmlDuration
except ImportError as exc:  # pragma: no cover - a hint, not a feature
    sys.exit(f"the peer is not installed ({exc}); run: pip install '.[peer]'")

# The peer's logger is at DEBUG with a stderr handler once imported; quiet it like pyuftp's.
logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)



# --- payloads ----------------------------------------------------------------------------


def payloads() -> tuple[dict[str, Any], dict[str, Any], str]:
    """The pyuftp payloads (96-ISP FlexOffer, FlexOfferResponse) and where they came from."""
    from pyuftp.message import examples
    offer = examples.flex_offer_96()
    response = examples.example("FlexOfferResponse")
    source = "pyuftp.message.examples.flex_offer_96() / example('FlexOfferResponse')"
    # The peer always writes Duration (default 1) on every ISP and MinActivationFactor
    # (default 1.00) on every option; say the same on the pyuftp side so that both put the
    # same attributes on the wire.
    offer = dict(offer)
    offer["offer_options"] = [
        {"min_activation_factor": Decimal("1.00"), **option,
         "isps": [{"duration": 1, **isp} for isp in option["isps"]]}
        for option in offer["offer_options"]
    ]
    return offer, dict(response), source


def _iso_duration(value: dt.timedelta) -> str:
    minutes, seconds = divmod(int(value.total_seconds()), 60)
    return f"PT{minutes}M" if not seconds else f"PT{minutes}M{seconds}S"


_METADATA = ("version", "sender_domain", "recipient_domain", "message_id", "conversation_id")


def _peer_metadata(full: dict[str, Any]) -> dict[str, Any]:
    fields = {key: full[key] for key in _METADATA}
    fields["time_stamp"] = full["time_stamp"].isoformat()
    return fields


def peer_flex_offer(full: dict[str, Any]) -> Any:
    """The peer's FlexOffer object with the content of a (parsed, complete) pyuftp payload."""
    m = peer_messages
    optional = {key: full[key] for key in ("unsolicited", "flex_request_message_id", "contract_id",
                                           "d_prognosis_message_id", "baseline_reference")
                if full.get(key) is not None}
    return m.FlexOffer(
        **_peer_metadata(full),
        isp_duration=XmlDuration(_iso_duration(full["isp_duration"])),
        time_zone=full["time_zone"],
        period=XmlDate.from_date(full["period"]),
        congestion_point=full["congestion_point"],
        expiration_date_time=full["expiration_date_time"].isoformat(),
        currency=full["currency"],
        offer_options=[
            m.FlexOfferOption(
                option_reference=option["option_reference"],
                price=option["price"],
                min_activation_factor=option.get("min_activation_factor", Decimal("1.00")),
                isps=[m.FlexOfferOptionISP(power=isp["power"], start=isp["start"],
                                           duration=isp.get("duration", 1))
                      for isp in option["isps"]],
            )
            for option in full["offer_options"]
        ],
        **optional,
    )


def peer_flex_offer_response(full: dict[str, Any]) -> Any:
    m = peer_messages
    extra = {"rejection_reason": full["rejection_reason"]} if full.get("rejection_reason") else {}
    return m.FlexOfferResponse(
        **_peer_metadata(full),
        result=m.AcceptedRejected(full["result"]),
        flex_offer_message_id=full["flex_offer_message_id"],
        **extra,
    )


# --- timing -------------------------------------------------------------------------------


def _timer(fn: Callable[[], Any], seconds: float) -> tuple[timeit.Timer, int]:
    """A warmed-up timer for ``fn`` and the number of calls that take about ``seconds``."""
    for _ in range(3):
        fn()
    # CPU time of this process, not wall-clock time: far less sensitive to a busy machine.
    timer = timeit.Timer(fn, setup="gc.enable()", timer=time.process_time,
                         globals={"gc": gc})  # gc stays on
    probe = 1
    while True:
        taken = timer.timeit(probe)
        if taken >= 0.02 or probe >= 1 << 20:
            break
        probe *= 4
    return timer, max(1, int(probe * seconds / max(taken, 1e-9)))


class Timing(float):
    """A median time per call in µs (the float), with the runs it is the median of."""

    runs: list[float]

    def __new__(cls, runs: list[float]) -> "Timing":
        value = super().__new__(cls, statistics.median(runs))
        value.runs = runs
        return value

    def spread(self) -> str:
        return f"{min(self.runs):.1f}–{max(self.runs):.1f}"

    def over(self, floor: "Timing") -> str:
        """The ratio of the medians to ``floor``'s, with the spread of the per-run ratios
        (the runs of both were interleaved)."""
        ratios = [a / b for a, b in zip(self.runs, floor.runs)]
        return f"{self / floor:.2f}x ({min(ratios):.2f}–{max(ratios):.2f})"


def per_call_us(*fns: Callable[[], Any], seconds: float, repeats: int) -> list[Timing]:
    """For each of ``fns``: the median over ``repeats`` timed runs of the CPU time per call,
    in µs (with the runs, for the spread), after a warm-up. The runs of the functions
    alternate, so that a machine that gets busier or quieter meanwhile weighs on all of them
    alike. The garbage collector stays on: a service pays for it too."""
    timers = [_timer(fn, seconds) for fn in fns]
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for (timer, number), out in zip(timers, runs):
            out.append(timer.timeit(number) / number * 1e6)
    return [Timing(out) for out in runs]


def staged_us(kind: str, payload: dict[str, Any], seconds: float,
              repeats: int) -> tuple[dict[str, Timing], Timing, Timing]:
    """pyuftp's create + parse of one message, stage by stage *in the same loop* (the same
    calls ``parse_message(create_message(...))`` makes, one after the other, each timed in
    CPU time), and in the same loop the floor of the parse: plain lxml parsing and XSD
    validation of the same bytes. Per stage the median over ``repeats`` runs of µs per
    message, the median of the runs' sums of pyuftp's stages, and that of
    ``parse_message(create_message(...))`` timed in runs alternating with them (the same
    work, not taken apart)."""
    from pyuftp.message import codec as msg, read, speed
    from pyuftp.message.catalog import spec
    from pyuftp.rules import DEFAULT_RULES as rules

    clock = time.process_time
    bare = etree.XMLParser()

    def once(acc: list[float]) -> None:
        t0 = clock()
        message = msg.complete_payload(kind, payload)
        t1 = clock()
        rules.refuse(kind, rules.check(kind, message))
        t2 = clock()
        served = spec(message["version"])
        xml = msg.render(kind, message, served.version)
        t3 = clock()
        root = msg.parse_xml(xml)
        t4 = clock()
        read.validate_element(kind, served, root)
        t5 = clock()
        read.reader(kind, served.version, speed.ENABLED).read(root)
        t6 = clock()
        data = xml.encode("utf-8")
        t7 = clock()
        plain = etree.fromstring(data, bare)
        t8 = clock()
        if not read.schema(served, received=True).validate(plain):
            raise SystemExit("the floor's validation failed")
        t9 = clock()
        for i, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6),
                                    (t7, t8), (t8, t9))):
            acc[i] += b - a

    names = ["create: check the payload (complete_payload)", "create: business rules",
             "create: render (Jinja2 template)", "parse: parse_xml (lxml + shape check)",
             "parse: validate_element (XSD)", "parse: elements to dict (reader)",
             "floor: etree.fromstring", "floor: XMLSchema.validate"]
    ours = 6  # the first six are pyuftp's; the rest is the floor, not part of the sums
    for _ in range(20):
        once([0.0] * len(names))
    runs: list[list[float]] = [[] for _ in names]
    totals, wholes = [], []
    for _ in range(repeats):
        acc, n, started = [0.0] * len(names), 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            once(acc)
            n += 1
        for out, value in zip(runs, acc):
            out.append(value / n * 1e6)
        totals.append(sum(acc[:ours]) / n * 1e6)
        n, started, cpu = 0, time.perf_counter(), clock()
        while time.perf_counter() - started < seconds:
            pyuftp.parse_message(pyuftp.create_message(kind, payload))
            n += 1
        wholes.append((clock() - cpu) / n * 1e6)
    return dict(zip(names, (Timing(r) for r in runs))), Timing(totals), Timing(wholes)


def import_ms(module: str, runs: int) -> tuple[float, float]:
    """(wall-clock ms of ``import module`` in a fresh interpreter minus an empty
    interpreter's, -X importtime's cumulative ms for the module); medians of ``runs``."""
    def wall(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(_HERE),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    wall("pass")  # warm the OS file cache
    wall(f"import {module}")
    empty = statistics.median(wall("pass") for _ in range(runs))
    full = statistics.median(wall(f"import {module}") for _ in range(runs))
    cumulative = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             check=True, cwd=os.path.dirname(_HERE), capture_output=True,
                             text=True).stderr
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                cumulative.append(int(parts[1]) / 1000)
    return (full - empty) * 1000, statistics.median(cumulative) if cumulative else float("nan")


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (~10 s)")
    args = parser.parse_args()
    seconds, repeats, import_runs = (0.03, 5, 3) if args.quick else (0.05, 15, 5)
    began = time.perf_counter()

    offer, response, source = payloads()
    offer_xml = pyuftp.create_message("FlexOffer", offer)
    response_xml = pyuftp.create_message("FlexOfferResponse", response)
    _, offer_full = pyuftp.parse_message(offer_xml)
    _, response_full = pyuftp.parse_message(response_xml)
    peer_offer = peer_flex_offer(offer_full)
    peer_response = peer_flex_offer_response(response_full)
    peer_offer_xml = peer_transport.to_xml(peer_offer)
    peer_response_xml = peer_transport.to_xml(peer_response)

    # Same content on both sides: pyuftp reads the peer's XML back to the very same dict.
    same = (pyuftp.parse_message(peer_offer_xml)[1] == offer_full
            and pyuftp.parse_message(peer_response_xml)[1] == response_full
            and peer_transport.from_xml(offer_xml.encode()) == peer_offer)
    if not same:
        sys.exit("the pyuftp and shapeshifter-uftp messages differ in content; fix the bench")

    print(f"pyuftp {pyuftp.__version__} vs shapeshifter-uftp "
          f"{_version('shapeshifter-uftp')}; Python {sys.version.split()[0]}; "
          f"lxml {'.'.join(map(str, etree.LXML_VERSION))}, xsdata {_version('xsdata')}")
    print(f"payloads: {source}")
    print(f"FlexOffer: 1 option x {len(offer['offer_options'][0]['isps'])} ISPs, "
          f"XML {len(offer_xml.encode())} B (pyuftp) / {len(peer_offer_xml.encode())} B (peer); "
          f"FlexOfferResponse XML {len(response_xml.encode())} B / "
          f"{len(peer_response_xml.encode())} B; content checked identical both ways")
    print(f"timing: median (min–max) of {repeats} runs of ~{seconds:.2f} s each; pyuftp's and "
          "the peer's runs alternate; warm-up first, gc on; CPU µs per message "
          "(process_time)")
    print()

    to_xml, from_xml = peer_transport.to_xml, peer_transport.from_xml
    create, parse = pyuftp.create_message, pyuftp.parse_message
    cases = [
        ("FlexOffer 96 ISPs", "FlexOffer", offer, offer_xml, peer_offer, peer_offer_xml),
        ("FlexOfferResponse", "FlexOfferResponse", response, response_xml, peer_response,
         peer_response_xml),
    ]
    # A first warm-up of everything: the first rounds in a fresh process are slower (memory
    # pages touched for the first time), which would weigh on whatever is measured first.
    warm_until = time.perf_counter() + (0.5 if args.quick else 2.0)
    while time.perf_counter() < warm_until:
        for _, kind, payload, xml, obj, obj_xml in cases:
            parse(create(kind, payload))
            from_xml(to_xml(obj))

    results: dict[tuple[str, str], tuple[Timing, Timing]] = {}
    header = (f"{'message':<20} {'operation':<14} {'pyuftp µs':>10} {'(min–max)':>14} "
              f"{'peer µs':>10} {'(min–max)':>16} {'peer/pyuftp':>12}")
    print(header)
    print("-" * len(header))
    for label, kind, payload, xml, obj, obj_xml in cases:
        ops = [
            ("create", lambda: create(kind, payload), lambda: to_xml(obj)),
            ("parse", lambda: parse(xml), lambda: from_xml(obj_xml)),
            ("create+parse", lambda: parse(create(kind, payload)), lambda: from_xml(to_xml(obj))),
        ]
        for name, ours, theirs in ops:
            mine, peer = per_call_us(ours, theirs, seconds=seconds, repeats=repeats)
            results[(label, name)] = (mine, peer)
            print(f"{label:<20} {name:<14} {mine:>10.1f} {mine.spread():>14} {peer:>10.1f} "
                  f"{peer.spread():>16} {peer / mine:>11.2f}x")

    # For orientation: the peer's create above starts from a ready object; building that
    # object from plain values (as pyuftp starts from a plain dict) costs this much on top;
    # pyuftp's create with validate_output=True also validates what it rendered.
    ours_checked, build = per_call_us(
        lambda: create("FlexOffer", offer, validate_output=True),
        lambda: to_xml(peer_flex_offer(offer_full)), seconds=seconds, repeats=repeats)
    base = results[("FlexOffer 96 ISPs", "create")][0]
    print(f"{'FlexOffer 96 ISPs':<20} {'create*':<14} {ours_checked:>10.1f} "
          f"{ours_checked.spread():>14} {build:>10.1f} {build.spread():>16} "
          f"{build / ours_checked:>11.2f}x")
    print("  (* pyuftp: create_message(..., validate_output=True), i.e. with an XSD validation "
          f"of its output, {ours_checked / base:.2f}x its plain create;")
    print("     peer: its objects built from plain values, then to_xml)")
    print()

    # lxml-only baselines: the floor under any lxml + XSD based implementation, and
    # pyuftp's parse (C reader / pure-Python speed-ups / plain) beside it, runs interleaved.
    from pyuftp.message import speed

    offer_bytes = offer_xml.encode("utf-8")
    xsd = pyuftp.message.codec.schema("3.1.0", received=True)
    bare = etree.XMLParser()
    root = etree.fromstring(offer_bytes, bare)
    if not xsd.validate(root):
        sys.exit(f"pyuftp's schema refuses pyuftp's own FlexOffer: {xsd.error_log}")

    def way(enabled: bool, native: bool) -> Callable[[], Any]:
        def call() -> Any:
            speed.ENABLED, speed.NATIVE = enabled, native
            try:
                return parse(offer_bytes)
            finally:
                speed.ENABLED, speed.NATIVE = switches
        return call

    switches = (speed.ENABLED, speed.NATIVE)
    fromstring, validate, floor, tostring, ours_parse, python_parse, plain_parse = per_call_us(
        lambda: etree.fromstring(offer_bytes, bare), lambda: xsd.validate(root),
        lambda: xsd.validate(etree.fromstring(offer_bytes, bare)),
        lambda: etree.tostring(root), way(*switches), way(True, False), way(False, False),
        seconds=seconds, repeats=repeats)

    # Where pyuftp's time goes: the stages of create + parse, timed in one loop.
    stages, staged_total, whole = staged_us("FlexOffer", offer, seconds, repeats)
    print(f"pyuftp create+parse of the 96-ISP FlexOffer, stage by stage in one loop "
          f"(CPU µs per message, median of {repeats} runs, min–max; the floor's stages "
          "in the same loop):")
    for name, value in stages.items():
        share = f"{value / staged_total:5.1%}" if not name.startswith("floor") else ""
        print(f"  {name:<46} {value:8.1f}  ({value.spread()})  {share}")
    floor_in_loop = Timing([a + b for a, b in zip(stages["floor: etree.fromstring"].runs,
                                                  stages["floor: XMLSchema.validate"].runs)])
    parse_in_loop = Timing([sum(r) for r in zip(*(stages[n].runs for n in stages
                                                  if n.startswith("parse:")))])
    print(f"  {'parse stages vs floor stages, same loop':<46} {parse_in_loop:8.1f} vs "
          f"{floor_in_loop:.1f}: {parse_in_loop.over(floor_in_loop)}")
    print(f"  {'sum of the stages (median of the runs sums)':<46} {staged_total:8.1f}  "
          f"({staged_total.spread()})")
    print(f"  {'parse_message(create_message()), runs alternating':<46} {whole:8.1f}  "
          f"({whole.spread()})")
    print()
    reader = "C reader" if speed.native() else "no C reader (not built or off)"
    print("the floor: lxml on the 96-ISP FlexOffer as rendered by pyuftp, and pyuftp's parse "
          "beside it (CPU µs per message, runs interleaved; ratio of medians, per-run range):")
    for label, value in (("etree.fromstring", fromstring),
                         ("XMLSchema.validate (3.1.0, as received)", validate),
                         ("floor: fromstring + validate, one call", floor),
                         ("etree.tostring", tostring)):
        print(f"  {label:<41} {value:8.1f}  ({value.spread()})")
    print(f"  parse_message, {reader:<26} {ours_parse:8.1f}  ({ours_parse.spread()})  "
          f"{ours_parse.over(floor)} the floor")
    print(f"  parse_message, pure-Python speed-ups      {python_parse:8.1f}  "
          f"({python_parse.spread()})  {python_parse.over(floor)} the floor")
    print(f"  parse_message, PYUFTP_PLAIN               {plain_parse:8.1f}  "
          f"({plain_parse.spread()})  {plain_parse.over(floor)} the floor")
    print()

    print(f"import time in a fresh interpreter (median of {import_runs}; wall clock minus an "
          "empty interpreter / -X importtime cumulative):")
    ours_wall, ours_cum = import_ms("pyuftp", import_runs)
    peer_wall, peer_cum = import_ms("shapeshifter_uftp", import_runs)
    print(f"  import pyuftp             {ours_wall:7.1f} ms / {ours_cum:7.1f} ms")
    print(f"  import shapeshifter_uftp  {peer_wall:7.1f} ms / {peer_cum:7.1f} ms   "
          + (f"(peer/pyuftp {peer_wall / ours_wall:.1f}x)" if ours_wall > 5 else ""))
    print()

    mine, peer = results[("FlexOffer 96 ISPs", "create+parse")]
    print(f"FlexOffer 96 ISPs create+parse: pyuftp {mine:.0f} µs ({mine.spread()}), "
          f"shapeshifter-uftp {peer:.0f} µs ({peer.spread()}), peer/pyuftp "
          f"{peer.over(mine)}; {repeats} runs each, interleaved, CPU time")
    mine, peer = results[("FlexOfferResponse", "create+parse")]
    print(f"FlexOfferResponse create+parse: pyuftp {mine:.0f} µs ({mine.spread()}), "
          f"shapeshifter-uftp {peer:.0f} µs ({peer.spread()}), peer/pyuftp {peer / mine:.2f}x")
    print(f"(whole run {time.perf_counter() - began:.1f} s)")


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
