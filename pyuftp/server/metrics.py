"""Metrics of a service in the Prometheus text format, served by the service's own aiohttp
app (``metrics=True``: ``GET /metrics``).

A small registry of its own (:class:`Registry`: counters, gauges, histograms) rather than
``prometheus-client``: no new dependency, no process-wide default registry (several services
in one process, as in the tests, each keep their own figures), and an increment is one dict
look-up and an addition on the event loop's thread, where every hook runs. Label values are
escaped and cut to :data:`MAX_LABEL`; each family holds at most ``max_series`` label sets,
further ones are counted under the label value ``_other``, so that no peer can grow memory
or the scrape by making up names. Only verified senders ever become label values: requests
refused before their signature is checked are counted by HTTP status alone.

The metrics are listed with their meaning in ``docs/operations.rst``.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from aiohttp import web

from ..exceptions import excerpt
from ..sending.observe import Observer
from ..store import Store
from ..store.summary import OutboxSummary

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_LABEL = 120  # characters of one label value (a domain has at most 253)
MAX_SERIES = 1000  # label sets per family
OTHER = "_other"
#: seconds: from well under a millisecond (a refusal) to a slow handler
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
_RULE = re.compile(r"\[([A-Za-z0-9_.:-]{1,80})\]\s*$")


def _label(value: object) -> str:
    text = str(value)[:MAX_LABEL]
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Family:
    """One metric with its label names; its series by label values."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 max_series: int = MAX_SERIES) -> None:
        self.name, self.help, self.labels = name, help, tuple(labels)
        self.max_series = max_series
        self._series: dict[tuple[str, ...], Any] = {}

    def _key(self, values: tuple[str, ...]) -> tuple[str, ...]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes the labels {self.labels}, not {values}")
        if values in self._series or len(self._series) < self.max_series:
            return values
        return tuple(OTHER for _ in values)  # the cap: one more series at most

    def _head(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def _labels(self, values: tuple[str, ...], extra: str = "") -> str:
        parts = [f'{n}="{_label(v)}"' for n, v in zip(self.labels, values)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def value(self, *values: str) -> Any:
        """The current value of one series (0 when it has none yet): for tests and checks."""
        return self._series.get(tuple(values), 0)

    def lines(self) -> Iterator[str]:
        yield from self._head()
        for values, number in sorted(self._series.items()):
            yield f"{self.name}{self._labels(values)} {_number(number)}"


class Counter(Family):
    """A number that only goes up (name it ``..._total``)."""

    kind = "counter"

    def inc(self, *values: str, amount: float = 1.0) -> None:
        key = self._key(values)
        self._series[key] = self._series.get(key, 0) + amount


class Gauge(Family):
    """A number that goes up and down, usually set when scraped."""

    kind = "gauge"

    def set(self, number: float, *values: str) -> None:
        self._series[self._key(values)] = number


class Histogram(Family):
    """Observations counted into buckets (``le`` upper bounds), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS,
                 max_series: int = MAX_SERIES) -> None:
        super().__init__(name, help, labels, max_series)
        self.buckets = tuple(sorted(buckets))

    def observe(self, number: float, *values: str) -> None:
        key = self._key(values)
        series = self._series.get(key)
        if series is None:  # per bucket (not cumulative: cumulated when written), sum
            series = self._series[key] = [[0] * (len(self.buckets) + 1), 0.0]
        series[0][bisect.bisect_left(self.buckets, number)] += 1
        series[1] += number

    def count(self, *values: str) -> int:
        series = self._series.get(tuple(values))
        return 0 if series is None else sum(series[0])

    def lines(self) -> Iterator[str]:
        yield from self._head()
        for values, (counts, total) in sorted(self._series.items()):
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts):
                running += n
                le = "+Inf" if bound == float("inf") else _number(bound)
                bucket = self._labels(values, 'le="' + le + '"')
                yield f"{self.name}_bucket{bucket} {running}"
            yield f"{self.name}_sum{self._labels(values)} {_number(total)}"
            yield f"{self.name}_count{self._labels(values)} {running}"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Registry:
    """Metric families, written in the Prometheus text format by ``render()``.
    ``collectors`` are awaited first, to set gauges that are read when scraped."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.collectors: list[Callable[[], Awaitable[None]]] = []

    def add(self, family: Family) -> Any:
        if family.name in self.families:
            raise ValueError(f"a metric named {family.name} exists already")
        self.families[family.name] = family
        return family

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self.add(Counter(name, help, labels))  # type: ignore[no-any-return]

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        return self.add(Gauge(name, help, labels))  # type: ignore[no-any-return]

    def histogram(self, name: str, help: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self.add(Histogram(name, help, labels, buckets))  # type: ignore[no-any-return]

    async def render(self) -> str:
        for collect in self.collectors:
            await collect()
        lines: list[str] = []
        for family in self.families.values():
            lines.extend(family.lines())
        return "\n".join(lines) + "\n"

    async def serve(self, request: web.Request) -> web.Response:
        """The aiohttp handler of ``GET /metrics``."""
        return web.Response(body=(await self.render()).encode("utf-8"),
                            headers={"Content-Type": CONTENT_TYPE})


def rule_ids(problems: Sequence[str]) -> set[str]:
    """The rule ids the problems name (``"... [isp.within_period]"``); ``"protocol"`` for a
    problem no rule found (wrong role, not addressed to us, outside the time window)."""
    found = set()
    for problem in problems:
        match = _RULE.search(problem[-90:])  # time bounded by the number of problems
        found.add(match.group(1) if match else "protocol")
    return found


class ServiceMetrics(Observer):
    """The metrics of one service: the hooks of ``pyuftp.sending.observe.Observer``
    counted into a :class:`Registry` (``registry``), and the outbox read from the store when
    scraped."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or Registry()
        self.requests = r.counter("pyuftp_http_requests_total",
                                  "HTTP requests to the message path, by the status answered",
                                  ("status",))
        self.latency = r.histogram("pyuftp_receive_seconds",
                                   "seconds from a request's head to its HTTP answer")
        self.received_total = r.counter(
            "pyuftp_received_messages_total", "verified messages received and handled, by "
            "the result of their answer (Accepted, Rejected, none)",
            ("message_type", "sender", "outcome"))
        self.rejections = r.counter(
            "pyuftp_rejections_total", "received messages rejected, by the rule that found a "
            "problem (protocol: the exchange's own checks)", ("message_type", "sender", "rule"))
        self.handler_seconds = r.histogram("pyuftp_handler_seconds",
                                           "seconds the user's handler ran", ("message_type",))
        self.sent_total = r.counter(
            "pyuftp_sent_messages_total", "messages sent: queued (committed to the outbox), "
            "posted (no store), delivered, failed (for good)",
            ("message_type", "recipient", "outcome"))
        self.attempts = r.counter("pyuftp_delivery_attempts_total",
                                  "delivery attempts, by what came of them (delivered, retry, "
                                  "failed)", ("recipient", "result"))
        self.store_errors = r.counter("pyuftp_store_errors_total",
                                      "store failures, by the operation that failed",
                                      ("operation",))
        self.pending = r.gauge("pyuftp_outbox_pending", "outbox items not yet delivered")
        self.failed = r.gauge("pyuftp_outbox_failed", "outbox items failed for good (kept)")
        self.oldest = r.gauge("pyuftp_outbox_oldest_pending_seconds",
                              "age of the oldest pending outbox item (0: none)")
        self.store_up = r.gauge("pyuftp_store_up", "1 when the store answered the scrape")
        self.outbox_running = r.gauge("pyuftp_outbox_running", "1 while the outbox delivers")
        self.in_handling = r.gauge("pyuftp_messages_in_handling",
                                   "messages answered 200 whose handling has not ended")

    # --- the hooks (Observer) ----------------------------------------------------------------

    def received(self, message_type: str, sender: str, outcome: str) -> None:
        self.received_total.inc(message_type, sender, outcome)

    def rejected(self, message_type: str, sender: str, problems: Sequence[str]) -> None:
        for rule in rule_ids(problems):
            self.rejections.inc(message_type, sender, rule)

    def handled(self, message_type: str, seconds: float) -> None:
        self.handler_seconds.observe(seconds, message_type)

    def sent(self, message_type: str, recipient: str, outcome: str) -> None:
        self.sent_total.inc(message_type, recipient, outcome)

    def attempted(self, message_type: str, recipient: str, state: str) -> None:
        self.attempts.inc(recipient, "retry" if state == "pending" else state)
        if state != "pending":
            self.sent_total.inc(message_type, recipient, state)

    def store_error(self, operation: str) -> None:
        self.store_errors.inc(operation)

    def answered(self, status: int, started: float) -> None:
        """A request to the message path got ``status``; it came in at ``started``
        (``time.perf_counter()``)."""
        self.requests.inc(str(status))
        self.latency.observe(time.perf_counter() - started)

    # --- read when scraped -------------------------------------------------------------------

    def watch(self, store: Store, outbox: Any, in_handling: Callable[[], int],
              timeout: float = 5.0) -> None:
        """Read the outbox's figures from ``store`` at every scrape."""
        async def collect() -> None:
            self.outbox_running.set(1 if outbox is not None and outbox.running else 0)
            self.in_handling.set(in_handling())
            summary = await read_summary(store, timeout)
            self.store_up.set(0 if summary is None else 1)
            if summary is not None:
                self.pending.set(summary.pending)
                self.failed.set(summary.failed)
                self.oldest.set(round(summary.oldest_age(time.time()), 3))
        self.registry.collectors.append(collect)


async def read_summary(store: Store, timeout: float) -> OutboxSummary | None:
    """The store's :meth:`~pyuftp.store.OutboxStore.outbox_summary`, or None when the store
    cannot answer within ``timeout`` seconds (closed, locked, unreachable)."""
    try:
        async with asyncio.timeout(timeout):
            return await store.call(store.outbox_summary)
    except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
        global _warned_at
        if time.monotonic() - _warned_at >= 60:  # probes come every few seconds: not each
            _warned_at = time.monotonic()
            logger.warning("the store did not answer a metrics or health check: %s: %s",
                           type(exc).__name__, excerpt(exc, 200))
        return None


_warned_at = float("-inf")


__all__ = ["Registry", "Counter", "Gauge", "Histogram", "ServiceMetrics", "CONTENT_TYPE",
           "rule_ids", "read_summary"]
