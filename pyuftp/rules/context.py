"""What a rule sees (:class:`Context`), what a rule is (:class:`Rule`), its settings, and the
calendar arithmetic of ISPs that many rules share (daylight-saving aware)."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from .isps import IspIndex, index as isp_index, meet as meet, merged as merged

#: A rule's check: sync over :class:`Lookups` (the built-in ones all are); an ``async def``
#: rule of the user's is awaited by the receiving and sending layers after the sync ones.
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
    # an offer may price some of the ISPs a FlexRequest requests (several offers for one
    # request); False: every option prices every one (offer.covers_request)
    partial_offers: bool = False


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


class Lookups(Protocol):
    """What the stateful rules read, synchronously: archived messages, and the payload dict
    of one (parsing is the look-ups' business: the rules sit below the message layer).

    :class:`pyuftp.store.archiving.StoreLookups` gives a store's archive this face; the
    receiving and sending layers run the rules that use it through ``store.call``, so that
    a threaded or remote store never blocks the event loop."""

    def find(self, counterparty: str, message_id: str, direction: str | None = None) -> Any: ...
    def query(self, **criteria: Any) -> list[Any]: ...
    def payload(self, message: Any) -> dict[str, Any]: ...
    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None, *,
                         excluding: str | None = None) -> int | None: ...


@dataclass
class Context:
    """What a rule sees: the message, which way it goes, the clock, the settings, and the
    archive's :class:`Lookups` (None: no archive; the stateful rules then find nothing).

    ``direction`` is ``"in"`` for a message received, ``"out"`` for one about to be sent;
    ``counterparty`` is the other party's domain.

    A context lives for one check of one message, and what the rules share is computed once
    in it, for whichever rule asks first: the ISP lists read in one pass (:meth:`isps`,
    :meth:`spans`), each archive look-up (:meth:`find`, :meth:`referenced`, :meth:`entries`:
    several rules naming the same message cost one ``find``), and whatever a rule keeps
    with :meth:`once`.
    """

    message_type: str
    payload: Mapping[str, Any]
    direction: str = "in"
    counterparty: str = ""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    settings: Settings = field(default_factory=Settings)
    lookups: Lookups | None = None
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # what once() kept

    def isps(self) -> IspIndex | None:
        """The message's ISP lists read once (:mod:`pyuftp.rules.isps`), or None when they
        are not plain whole-number ISPs: a rule then takes its plain path."""
        def read() -> IspIndex | None:
            try:
                return isp_index(self.message_type, self.payload)
            except Exception:  # noqa: BLE001 - any odd payload: the plain paths judge it
                return None

        return self.once(("isps",), read)  # type: ignore[no-any-return]

    def spans(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """(path, [(first ISP, last ISP), ...]) per ISP list of the message, computed once
        for all the rules that need them (a 96-ISP list is read by several)."""
        def spans() -> list[tuple[str, list[tuple[int, int]]]]:
            index = self.isps()
            return index.pairs() if index is not None else [
                (path, [(i["start"], i["start"] + i.get("duration", 1) - 1) for i in isps])
                for path, isps in _isp_lists(self.message_type, self.payload)]

        return self.once(("spans",), spans)  # type: ignore[no-any-return]

    def once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, called once per check for ``key`` (a hashable of the rule's
        choosing): what several rules read, read once. An exception is not kept."""
        if key in self._memo:
            return self._memo[key]
        value = self._memo[key] = compute()
        return value

    def way(self, same_way: bool) -> str:
        """The direction a referenced message went: this message's, or the other."""
        return self.direction if same_way else ("out" if self.direction == "in" else "in")

    def find(self, message_id: Any, same_way: bool) -> Any:
        """The archive entry (unparsed, any type) with this id between us and the
        counterparty that went this message's way (``same_way``) or the other; None when
        there is none or no archive. One ``find`` per id and way in a check."""
        if self.lookups is None:
            return None
        lookups, way = self.lookups, self.way(same_way)
        if not isinstance(message_id, str):  # not a key to keep: the store judges it
            return lookups.find(self.counterparty, message_id, way)
        return self.once(("find", message_id, way),
                         lambda: lookups.find(self.counterparty, message_id, way))

    def referenced(self, message_type: str, message_id: Any,
                   same_way: bool) -> dict[str, Any] | None:
        """The payload of the ``message_type`` with this id between us and the counterparty:
        one that went the same way as this message (``same_way``) or the other way."""
        if self.lookups is None or not isinstance(message_id, str):
            return None
        lookups = self.lookups

        def found() -> tuple[Any, dict[str, Any] | None]:
            entry = self.find(message_id, same_way)
            if entry is not None and entry.message_type == message_type:
                return entry, lookups.payload(entry)
            return entry, None

        key = ("referenced", message_type, message_id, same_way)
        return self.once(key, found)[1]  # type: ignore[no-any-return]

    def entry(self, message_type: str, message_id: str, same_way: bool) -> Any:
        """The archive entry found by :meth:`referenced` (its ``outcome``, say)."""
        key = ("referenced", message_type, message_id, same_way)
        return self._memo.get(key, (None, None))[0]

    def entries(self, message_type: str, same_way: bool, **criteria: Any) -> list[Any]:
        """Archive entries of ``message_type`` with the counterparty (unparsed: for a rule
        that needs only their existence or outcome; give ``limit`` where a few will do).
        The same criteria in one check are one ``query`` (do not change the list)."""
        lookups = self.lookups
        if lookups is None:
            return []
        way = self.way(same_way)

        def query() -> list[Any]:
            return lookups.query(message_type=message_type, counterparty=self.counterparty,
                                 direction=way, **criteria)

        try:
            key = ("entries", message_type, way, tuple(sorted(criteria.items())))
            hash(key)
        except TypeError:  # an odd criterion: asked as given, the store judges it
            return query()
        return self.once(key, query)  # type: ignore[no-any-return]

    def others(self, message_type: str, same_way: bool,
               **criteria: Any) -> list[dict[str, Any]]:
        """Payloads of archived messages of ``message_type`` with the counterparty (each one
        parsed: prefer :meth:`entries`, with a ``limit``, where the payloads are not read)."""
        lookups = self.lookups
        if lookups is None:
            return []
        found = self.entries(message_type, same_way, **criteria)
        return [lookups.payload(entry) | {"_outcome": entry.outcome} for entry in found]


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


class OutOfRange(ValueError):
    """A day, an instant or an ISP that cannot be placed on the calendar (before year 1 or
    after 9999 in UTC, or an ISP length that is not positive): a problem of the message."""


@lru_cache(maxsize=1024)
def day_bounds(period: dt.date, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The start and end (UTC) of the calendar day ``period`` in ``time_zone``.

    :class:`OutOfRange` (a ValueError) for a day whose start or end lies outside the years
    1-9999 in UTC (0001-01-01 east of Greenwich, 9999-12-31 anywhere): the message names a
    day no clock can reach, which the rule ``period.on_calendar`` reports."""
    zone = _zone(time_zone) or UTC
    try:
        start = dt.datetime.combine(period, dt.time(), zone).astimezone(UTC)
        end = dt.datetime.combine(period + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    except OverflowError:
        raise OutOfRange(f"period {period} in {time_zone} lies outside the years 1-9999 "
                         "(UTC)") from None
    return start, end


def isp_count(period: dt.date, isp_duration: dt.timedelta, time_zone: str) -> int:
    """ISPs in the day (daylight-saving aware): 92, 96 or 100 of 15 minutes in Amsterdam.
    :class:`OutOfRange` for a day off the calendar or an ISP length that is not positive."""
    start, end = day_bounds(period, time_zone)
    if isp_duration <= dt.timedelta(0):
        raise OutOfRange(f"isp_duration {isp_duration} is not a positive length")
    return int((end - start) // isp_duration)


def isp_end(period: dt.date, isp_duration: dt.timedelta, time_zone: str,
            number: int) -> dt.datetime:
    """When ISP ``number`` (1-based) of the day ends (UTC). :class:`OutOfRange` when that
    instant lies off the calendar (a number far beyond the day's ISPs, say): arithmetic on
    the number, never a count up to it."""
    start = day_bounds(period, time_zone)[0]
    try:
        return start + isp_duration * number
    except OverflowError:
        raise OutOfRange(f"ISP {number} of {period} ends outside the years 1-9999") from None


def shifted(moment: dt.datetime, seconds: float) -> dt.datetime:
    """``moment`` plus ``seconds``, held at the ends of the calendar instead of overflowing
    (a time stamp of 0001-01-01 minus the clock skew is still that time stamp)."""
    try:
        return moment + dt.timedelta(seconds=seconds)
    except OverflowError:
        return moment


def local_date(moment: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """The date of ``moment`` in ``zone``; at the ends of the calendar, its date in UTC."""
    try:
        return moment.astimezone(zone).date()
    except (OverflowError, ValueError):
        return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


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
