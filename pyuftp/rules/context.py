"""What a rule sees (:class:`Context`), what a rule is (:class:`Rule`), its settings, and the
calendar arithmetic of ISPs that many rules share (daylight-saving aware)."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

Check = Callable[["Context"], "Iterable[str] | Awaitable[Iterable[str]]"]
Declared = Callable[[str, str], bool] | Collection[str] | None

FLEX = ("D-Prognosis", "FlexRequest", "FlexOffer", "FlexOrder", "FlexReservationUpdate")
UTC = dt.timezone.utc


@dataclass
class Settings:
    """The parameters of the rules; change them on :attr:`Rules.settings`."""

    isp_durations: Collection[dt.timedelta] = (dt.timedelta(minutes=15),)
    time_zones: Collection[str] | None = None        # None: any IANA zone
    currencies: Collection[str] | None = None        # None: any ISO 4217 code
    clock_skew: float = 300.0                        # seconds of grace for "in the future"
    # what the user declares known: a set, or (counterparty, value) -> bool; None: unchecked
    contracts: Declared = None
    congestion_points: Declared = None
    baseline_references: Declared = None


@dataclass(frozen=True)
class Rule:
    """One rule. ``check(ctx)`` yields problem texts (sync or async)."""

    id: str
    applies_to: frozenset[str]
    description: str
    check: Check
    default: bool = True
    stateful: bool = False
    java: tuple[str, ...] = ()


class Archive(Protocol):
    """What the stateful rules read (:class:`pyuftp.store.archiving.StoreArchive` over a store):
    archived messages, and the payload dict of one (parsing is the archive's business: the
    rules sit below the message layer)."""

    async def find(self, counterparty: str, message_id: str,
                   direction: str | None = None) -> Any: ...
    async def query(self, **criteria: Any) -> list[Any]: ...
    def payload(self, message: Any) -> dict[str, Any]: ...


@dataclass
class Context:
    """What a rule sees: the message, which way it goes, the clock, the settings, the archive.

    ``direction`` is ``"in"`` for a message received, ``"out"`` for one about to be sent;
    ``counterparty`` is the other party's domain.
    """

    message_type: str
    payload: Mapping[str, Any]
    direction: str = "in"
    counterparty: str = ""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    settings: Settings = field(default_factory=Settings)
    archive: Archive | None = None
    _found: dict[tuple[str, str, bool], Any] = field(default_factory=dict, repr=False)
    _spans: list[tuple[str, list[tuple[int, int]]]] | None = field(default=None, repr=False)

    def spans(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """(path, [(first ISP, last ISP), ...]) per ISP list of the message, computed once
        for all the rules that need them (a 96-ISP list is read by several)."""
        if self._spans is None:
            self._spans = [(path, [(i["start"], i["start"] + i.get("duration", 1) - 1)
                                   for i in isps])
                           for path, isps in _isp_lists(self.message_type, self.payload)]
        return self._spans

    async def referenced(self, message_type: str, message_id: Any,
                         same_way: bool) -> dict[str, Any] | None:
        """The payload of the ``message_type`` with this id between us and the counterparty:
        one that went the same way as this message (``same_way``) or the other way."""
        if self.archive is None or not isinstance(message_id, str):
            return None
        key = (message_type, message_id, same_way)
        if key not in self._found:
            way = self.direction if same_way else ("out" if self.direction == "in" else "in")
            entry = await self.archive.find(self.counterparty, message_id, way)
            payload = None
            if entry is not None and entry.message_type == message_type:
                payload = self.archive.payload(entry)
            self._found[key] = (entry, payload)
        return self._found[key][1]  # type: ignore[no-any-return]

    def entry(self, message_type: str, message_id: str, same_way: bool) -> Any:
        """The archive entry found by :meth:`referenced` (its ``outcome``, say)."""
        return self._found.get((message_type, message_id, same_way), (None, None))[0]

    async def others(self, message_type: str, same_way: bool, **criteria: Any) -> list[dict[str, Any]]:
        """Payloads of archived messages of ``message_type`` with the counterparty."""
        if self.archive is None:
            return []
        way = self.direction if same_way else ("out" if self.direction == "in" else "in")
        found = await self.archive.query(message_type=message_type, counterparty=self.counterparty,
                                         direction=way, **criteria)
        return [self.archive.payload(entry) | {"_outcome": entry.outcome} for entry in found]


def _now(payload: Mapping[str, Any]) -> dt.datetime:
    # A message is judged as of the moment it says it was sent; one being written now, now.
    stamp = payload.get("time_stamp")
    return stamp if isinstance(stamp, dt.datetime) else dt.datetime.now(UTC)


# --- the day's ISPs ---------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1024)
def day_bounds(period: dt.date, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The start and end (UTC) of the calendar day ``period`` in ``time_zone``."""
    zone = _zone(time_zone) or UTC
    start = dt.datetime.combine(period, dt.time(), zone).astimezone(UTC)
    end = dt.datetime.combine(period + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    return start, end


def isp_count(period: dt.date, isp_duration: dt.timedelta, time_zone: str) -> int:
    """ISPs in the day (daylight-saving aware): 92, 96 or 100 of 15 minutes in Amsterdam."""
    start, end = day_bounds(period, time_zone)
    return int((end - start) // isp_duration)


def isp_end(period: dt.date, isp_duration: dt.timedelta, time_zone: str, number: int) -> dt.datetime:
    """When ISP ``number`` (1-based) of the day ends (UTC)."""
    return day_bounds(period, time_zone)[0] + isp_duration * number


def _isp_lists(message_type: str, payload: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """(path, ISP list) pairs of a message: an offer has one per option, metering per profile."""
    if message_type == "FlexOffer":
        return [(f"offer_options[{i}].isps", o.get("isps", []))
                for i, o in enumerate(payload.get("offer_options", []))]
    if message_type == "Metering":
        return [(f"profiles[{i}].isps", p.get("isps", []))
                for i, p in enumerate(payload.get("profiles", []))]
    return [("isps", payload.get("isps", []))]


def _span(isp: Mapping[str, Any]) -> tuple[int, int]:
    start = int(isp["start"])
    return start, start + int(isp.get("duration", 1)) - 1


