"""Write docs/rules.rst, the reference of pyuftp's business rules, from the registry.

    python tools/generate.py          # rewrite docs/rules.rst
    python tools/generate.py --check  # exit 1 if the committed page differs from the code

The table of rules is read from ``pyuftp.rules.BUILT_IN`` (ids, message types, descriptions,
stateful or not, the Java validators each matches), the on/off column from ``DEFAULT_RULES``,
the settings from the fields of ``Settings`` and the validators without a rule from
``NOT_RULES``; so the page says what the code does. Every Java validator named in the issue
that asked for the rules (:data:`JAVA_VALIDATORS`) must be covered by a rule or a ``NOT_RULES``
line: the generator refuses to write a page that leaves one out.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyuftp.rules import BUILT_IN, DEFAULT_RULES, NOT_RULES, Settings  # noqa: E402

PAGE = ROOT / "docs" / "rules.rst"
COMMAND = "python tools/generate.py"

#: The validators of the Java reference library (shapeshifter-library-java) that pyuftp's
#: rules were measured against, in the order the issue listed them.
JAVA_VALIDATORS = tuple(name + "Validator" for name in """
    AllowedSender CongestionPoint DuplicateIdentifier ExpirationBeforeIspsListedEnd
    ExpirationInTheFuture FlexOfferRevocationSenderDomain FlexOrderOfferIsNotRevoked
    IspConflicts IspDuration IspPeriodBoundary NotExpired PeriodFutureOrToday PeriodIsInRange
    PeriodReference PeriodStartBeforeOrEqualsToEnd Recipient ReferencedBaselineReference
    ReferencedContractId ReferencedDPrognosisMessageId ReferencedFlexOfferMessageId
    ReferencedFlexOrderMessageId ReferencedFlexOrderOptionReference ReferencedFlexRequestMessageId
    ReferencedFlexSettlementReference ReferencedFlexSettlementResponseOrderReference
    ReferencedRequestMessageIdInResponse SenderMatchesEnvelope SenderRoleMatchesContentType
    TimeZoneSupported UnsolicitedFlexOffer UnsolicitedFlexOrder FlexOfferCurrency FlexOfferPrice
    FlexOptionRequestMatch FlexOrderCurrency FlexOrderFlexibilityMatch FlexOrderIspMatch
    FlexOrderPriceMatch IspPowerDiscrepancy IspRequestedDisposition MinActivationFactor
""".split())

_FLEX = "D-Prognosis FlexRequest FlexOffer FlexOrder FlexReservationUpdate"
_ANY = "every message type"
_RESPONSES = "every response that names its request"

#: The message types each Java validator applies to (its ``appliesTo``, read from the Java
#: library's source; FlexMessageType spelled out). A rule that names a validator applies to
#: at least one of them, and the rules naming it together cover all of them (a test checks
#: this against the registry).
JAVA_APPLIES_TO: dict[str, tuple[str, ...]] = {name + "Validator": tuple(types.split()) for
                                               name, types in {
    "AllowedSender": _ANY, "DuplicateIdentifier": _ANY, "Recipient": _ANY,
    "SenderMatchesEnvelope": _ANY, "SenderRoleMatchesContentType": _ANY,
    "CongestionPoint": _FLEX + " FlexSettlement",
    "ExpirationBeforeIspsListedEnd": "FlexRequest FlexOffer",
    "ExpirationInTheFuture": "FlexRequest FlexOffer",
    "FlexOfferRevocationSenderDomain": "FlexOfferRevocation",
    "FlexOrderOfferIsNotRevoked": "FlexOrder",
    "IspConflicts": _FLEX + " Metering", "IspDuration": _FLEX + " Metering",
    "IspPeriodBoundary": _FLEX + " Metering", "NotExpired": "FlexOffer FlexOrder",
    "PeriodFutureOrToday": _FLEX, "PeriodIsInRange": "FlexSettlement DSOPortfolioUpdate",
    "PeriodReference": "AGRPortfolioQueryResponse DSOPortfolioQueryResponse FlexOffer FlexOrder",
    "PeriodStartBeforeOrEqualsToEnd": "FlexSettlement AGRPortfolioUpdate DSOPortfolioUpdate",
    "ReferencedBaselineReference": "FlexOffer FlexOrder FlexSettlement",
    "ReferencedContractId": "FlexRequest FlexOffer FlexOrder FlexReservationUpdate "
                            "FlexSettlement",
    "ReferencedDPrognosisMessageId": "FlexOffer FlexOrder FlexSettlement",
    "ReferencedFlexOfferMessageId": "FlexOfferRevocation FlexOrder",
    "ReferencedFlexOrderMessageId": "D-PrognosisResponse",
    "ReferencedFlexOrderOptionReference": "FlexOrder",
    "ReferencedFlexRequestMessageId": "FlexOffer",
    "ReferencedFlexSettlementReference": "FlexSettlementResponse",
    "ReferencedFlexSettlementResponseOrderReference": "FlexSettlementResponse",
    "ReferencedRequestMessageIdInResponse": _RESPONSES,
    "TimeZoneSupported": _FLEX + " Metering AGRPortfolioQuery AGRPortfolioQueryResponse "
                         "AGRPortfolioUpdate DSOPortfolioQuery DSOPortfolioQueryResponse "
                         "DSOPortfolioUpdate",
    "UnsolicitedFlexOffer": "FlexOffer", "UnsolicitedFlexOrder": "FlexOrder",
    "FlexOfferCurrency": "FlexOffer", "FlexOfferPrice": "FlexOffer",
    "FlexOptionRequestMatch": "FlexOffer", "FlexOrderCurrency": "FlexOrder",
    "FlexOrderFlexibilityMatch": "FlexOrder", "FlexOrderIspMatch": "FlexOrder",
    "FlexOrderPriceMatch": "FlexOrder", "IspPowerDiscrepancy": "FlexRequest",
    "IspRequestedDisposition": "FlexRequest", "MinActivationFactor": "FlexOffer",
}.items()}
JAVA_APPLIES_TO = {name: (types if " ".join(types) not in (_ANY, _RESPONSES)
                          else (" ".join(types),)) for name, types in JAVA_APPLIES_TO.items()}

#: Where pyuftp decides differently from the Java library, and why: (case, the Java
#: library, pyuftp, why). First the Java library's bugs, then the checks it lacks.
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("An unsolicited FlexOrder (3.1.0: Unsolicited true, no FlexOfferMessageID)",
     "rejected, every one: the validators that compare an order with its offer "
     "(FlexOrderFlexibilityMatchValidator and the like) fail when there is no offer",
     "accepted; the offer comparisons apply only to an order that names an offer "
     "(``order.unsolicited``, ``order.matches_offer``)",
     "3.1.0 allows a DSO to order without an offer; the id is needed exactly when the order "
     "is not unsolicited"),
    ("Any message sent by a CRO", "refused, every one",
     "accepted from a CRO the directory knows, for the message types a CRO sends",
     "the CRO answers portfolio queries and updates; refusing it stops the portfolio phase"),
    ("A FlexOrder with an ActivationFactor below 1",
     "compared with the offer as if the factor were 1: the order's power and price must "
     "equal the option's", "power and price compared with the option's times the factor, "
     "and the factor not below the option's MinActivationFactor (``order.matches_offer``)",
     "the activation factor scales the order (partial activation)"),
    ("A FlexOffer with several options, and the ISPs of the request",
     "the ISPs of all options counted together: one option may cover what another lacks",
     "each option on its own (``offer.covers_request``, ``offer.request_exists``)",
     "the DSO orders one option; it must price what was requested by itself"),
    ("A FlexOfferRevocation of an offer that has an order", "accepted",
     "rejected (``revocation.offer_open``)",
     "an ordered offer is a deal; the spec lets the DSO refuse the revocation"),
    ("A FlexOrder in another currency than its offer", "accepted",
     "rejected (``order.matches_offer``)", "the order buys the offer at its price"),
    ("A response with Result Rejected and no RejectionReason", "accepted",
     "rejected (``result.rejection_reason``)", "the spec asks for a reason with a rejection"),
    ("A TimeStamp far in the past or in the future", "accepted",
     "rejected before the rules: older than ``max_age`` (24 h) or more than "
     "``max_clock_skew`` (300 s) ahead", "a replayed or misdated message is not judged"),
    ("A D-Prognosis or FlexRequest with a revision not above an earlier one", "accepted",
     "rejected (``revision.increases``)", "a lower revision would undo a newer one"),
    ("A Metering Power profile in kWh (or an energy profile in kW)", "accepted",
     "rejected (``metering.unit``)", "the unit follows the profile type"),
    ("A FlexSettlement whose NetSettlement is not Price minus Penalty", "accepted",
     "rejected (``settlement.net``)", "a settlement that does not add up cannot be paid"),
    ("A D-PrognosisResponse's FlexOrderStatus naming an order of another conversation",
     "rejected: the order must be in the response's conversation",
     "accepted when the order went between the two parties "
     "(``prognosis_response.orders_exist``)",
     "a FlexOrder is in its offer's conversation, never in the D-Prognosis's"),
)

#: What each field of ``Settings`` means; a field missing here stops the generator.
SETTING_MEANINGS = {
    "isp_durations": "the ISP lengths this party trades in (``isp.duration``)",
    "time_zones": "the time zones this party trades in; ``None``: any zone of the IANA "
                  "database (``timezone.supported``)",
    "currencies": "the currencies this party trades in; ``None``: any ISO 4217 code "
                  "(``currency.iso4217``)",
    "clock_skew": "seconds of grace for \"has not expired yet\" (``expiration.in_future``)",
    "contracts": "the contract ids known: a set, or a function ``(counterparty, contract_id) "
                 "-> bool``; ``None``: not checked (``contract.known``)",
    "congestion_points": "the congestion points known: a set, or a function "
                         "``(counterparty, entity_address) -> bool``; ``None``: those of the "
                         "latest portfolio message in the archive (``congestion_point.known``)",
    "baseline_references": "the baseline references known: a set, or a function "
                           "``(counterparty, reference) -> bool``; ``None``: not checked "
                           "(``baseline.known``)",
    "partial_offers": "``True``: an offer may price some of the ISPs its FlexRequest marks "
                      "Requested (an AGR may answer one request with several offers); "
                      "``False``: every option prices every one (``offer.covers_request``)",
}

INTRO = """\
.. This page is generated by tools/make_rules_doc.py from pyuftp.rules: do not edit it by hand.

.. _rules:

==============
Business rules
==============

A message can fit the schema and still make no sense: an offer for ISP 93 of a day that has
92, an order for an offer that was revoked, a response from a party that was never asked.
pyuftp checks such things with *business rules*: small named checks, each with an id (such
as ``isp.within_period``), the message types it applies to and a one-line description. The
registry of rules is ``pyuftp.rules.DEFAULT_RULES``; this page is generated from it
(``{command}``), so it lists what the code checks.

Where the rules run
===================

On receipt
   A service (``ShapeshifterAgrService``, ``ShapeshifterDsoService``,
   ``ShapeshifterCroService``) first verifies a message and answers HTTP 200; then, before
   your handler is called, it checks every enabled rule, the stateful ones against its
   archive, as of its own clock. A message that breaks any rule is answered ``Rejected``, with
   every problem found in the ``RejectionReason`` (all of them together, not only the first),
   and its handler is not called. A response that breaks a rule (one naming a request that
   never went to its sender, say) does not settle a ``request(...)`` waiting for it.

On send
   ``pyuftp.create_message`` checks the *stateless* rules, as of the payload's
   ``time_stamp``, and raises one ``pyuftp.exceptions.RuleViolation`` whose ``problems`` list
   every problem found. The clients' and services' ``send_*`` methods, ``request(...)`` and
   the answers a service sends check the stateful rules too, against the archive of the
   party's store when it has one (every message sent and received is archived there).

Each problem is a sentence for the person at the other party, ending in the id of its rule,
e.g. ``offer_options[0].isps[2]: ISPs 97-97 lie outside 2026-11-24, which has ISPs 1-96 in
Europe/Amsterdam [isp.within_period]``.

*Stateless* rules look at the message and the clock only. *Stateful* rules look up the
messages it refers to in the archive (``Context.archive``): between the same two parties,
the way such a message must have gone. A FlexOrder names a FlexOffer that its recipient sent
to its sender; a FlexOfferRevocation names an offer its sender sent; a response names a
request its sender received. A party cannot name a message it never got, or one that went to
somebody else.

What a rule may cost, and when it fails
   Every built-in rule runs in time and memory that follow the message's size, never a
   number in it: ISPs are compared as sorted (start, end) intervals, so one ISP of Duration
   2,147,483,647 costs what one of Duration 1 does, and is reported as lying beyond the day.
   A Period whose day cannot be placed on the calendar (9999-12-31, or 0001-01-01 east of
   Greenwich) is a problem of the message (``period.on_calendar``), not an error. Stateful
   rules read indexed look-ups only: ``revision.increases`` asks the archive's
   ``highest_revision(...)``, kept when a message is archived, and
   ``congestion_point.known`` the newest portfolio message of each kind. Where a message
   names many ids (a FlexSettlement's orders, a D-PrognosisResponse's FlexOrderStatuses),
   each id is looked up once, and after 10 unknown ones the rule stops looking and says so:
   a message full of made-up ids costs a few look-ups. A FlexOrder is judged against its
   offer's expiry as of the moment it is received, not its own TimeStamp.

   What several rules need is worked out once per check of a message, by whichever rule
   asks first, the same way in ``create_message`` and on receipt: the ISP lists are read in
   one pass (``pyuftp.rules.isps``: each ISP's first and last ISP, each list's lowest and
   highest, and whether the list is in order, each ISP after the one before), so that a
   list in order is judged by a comparison or a binary search instead of another walk
   (a list out of order, or with values that are not whole numbers, takes each rule's plain
   walk, with the same problems); and each archive look-up is made once: the FlexRequest an
   offer names is found once for ``offer.request_exists``, ``reference.same_conversation``
   and ``offer.covers_request``, a FlexSettlement's orders are queried once for both
   settlement rules, the newest portfolio message is read once. A rule (yours too) that
   raises an unexpected exception does not stop the others: it becomes the
   problem ``rule <id> could not be checked: <ExceptionType>``, so the message is rejected
   and answered, and one bounded, escaped warning is logged by ``pyuftp.rules``.

Settings
========

The parameters of the rules are the fields of ``DEFAULT_RULES.settings`` (a
``pyuftp.rules.Settings``); change them there, or give a ``Rules`` settings of its own:

.. code-block:: python

   from datetime import timedelta
   from pyuftp.rules import DEFAULT_RULES

   DEFAULT_RULES.settings.isp_durations = {{timedelta(minutes=5), timedelta(minutes=15)}}
   DEFAULT_RULES.settings.time_zones = {{"Europe/Amsterdam"}}

{settings}

Switching rules off, and rules of your own
==========================================

``DEFAULT_RULES`` is the rule set ``create_message`` and every client and service use unless
they are given another: switch a rule off there to switch it off everywhere, or give one
service a rule set of its own with its ``rules=`` argument. An unknown id raises
``KeyError``.

.. code-block:: python

   from pyuftp.rules import DEFAULT_RULES, Rules

   DEFAULT_RULES.disable("isp.duration")          # everywhere
   DEFAULT_RULES.enable("currency.iso4217")       # a rule that is off by default

   strict = Rules()                               # every rule, with its default
   strict.enable("price.minor_unit")
   service = ShapeshifterDsoService(..., rules=strict)

A rule of your own is a function of the context (``ctx.payload``, ``ctx.message_type``,
``ctx.direction``: ``"in"`` or ``"out"``, ``ctx.counterparty``, ``ctx.now``,
``ctx.settings``, ``ctx.lookups``) that returns or yields its problems. Write it as a plain
function: the exchange core runs the rules without an event loop, and runs a received
message's rules where the store runs its calls (on a worker thread for a threaded store).
A stateful rule looks messages up through ``ctx.lookups`` (sync: ``find(counterparty,
message_id, direction)``, ``query(...)``, ``payload(entry)``, ``highest_revision(...)``;
None where no archive is at hand, on ``create_message``) or the context's helpers
``ctx.find(message_id, same_way)``, ``ctx.referenced(...)``, ``ctx.entries(...)`` and
``ctx.others(...)``, which share their look-ups with the built-in rules for the check of
one message (``ctx.once(key, compute)`` keeps a value of your own so); register it with
``stateful=True``. An ``async def`` rule still works (it is awaited right after the sync
rules, on receipt and in ``send_*``, with the same sync look-ups), but it runs on the event
loop: prefer a plain function.

.. code-block:: python

   @DEFAULT_RULES.rule("offer.eur_only", ["FlexOffer"], "offers are in EUR")
   def eur_only(ctx):
       if ctx.payload.get("currency") != "EUR":
           yield f"currency {{ctx.payload.get('currency')}} is not EUR"

   @DEFAULT_RULES.rule("order.known_offer", ["FlexOrder"], "the offer was received",
                       stateful=True)
   def known_offer(ctx):
       offer_id = ctx.payload.get("flex_offer_message_id")
       if ctx.lookups is None or offer_id is None:   # no archive here: nothing to say
           return []
       if ctx.lookups.find(ctx.counterparty, offer_id, "in") is None:
           return [f"flex_offer_message_id {{offer_id}} names no offer received"]
       return []

``rules=False`` switches the rules off altogether: ``pyuftp.create_message(type, payload,
rules=False)`` for one message, ``rules=False`` for a service, or for a ``Courier`` (which a
client may be given with ``courier=``).

"""


def _literal(text: str) -> str:
    return f"``{text}``"


def _default(value: Any) -> str:
    if isinstance(value, dt.timedelta):
        minutes, seconds = divmod(int(value.total_seconds()), 60)
        return f"timedelta(minutes={minutes})" if not seconds else f"timedelta(seconds={int(value.total_seconds())})"
    if isinstance(value, tuple):
        inner = ", ".join(_default(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def settings_table() -> str:
    rows = []
    for field in dataclasses.fields(Settings):
        if field.name not in SETTING_MEANINGS:
            raise SystemExit(f"Settings.{field.name} has no meaning in SETTING_MEANINGS of "
                             f"{Path(__file__).name}: say what it is for")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        rows.append((_literal(field.name), _literal(_default(default)), SETTING_MEANINGS[field.name]))
    return _list_table(("Setting", "Default", "What it is"), rows, widths="20 25 55")


def _list_table(header: tuple[str, ...], rows: list[tuple[str, ...]], widths: str) -> str:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in (header, *rows):
        for index, cell in enumerate(row):
            lines.append(("   * - " if index == 0 else "     - ") + (cell or "\\-"))
    return "\n".join(lines) + "\n"


def rules_table() -> str:
    rows = []
    for rule in BUILT_IN:
        rows.append((
            _literal(rule.id),
            ", ".join(sorted(rule.applies_to)),
            _sentence(rule.description),
            "on" if DEFAULT_RULES.enabled(rule.id) else "off",
            "stateful" if rule.stateful else "stateless",
            ", ".join(_literal(name) for name in rule.java),
        ))
    return _list_table(("Rule", "Message types", "What it checks", "Default", "Kind",
                        "Java validators"), rows, widths="14 20 34 7 9 16")


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def not_rules() -> str:
    lines = []
    for name, why in NOT_RULES.items():
        lines.append(f"{_literal(name)}\n   {_sentence(why)}")
    return "\n".join(lines) + "\n"


def coverage() -> dict[str, list[str]]:
    """Java validator -> what covers it: rule ids and/or a NOT_RULES line."""
    covered: dict[str, list[str]] = {}
    for name in JAVA_VALIDATORS:
        covered[name] = [_literal(r.id) for r in BUILT_IN if name in r.java]
        if name in NOT_RULES:
            covered[name].append(f"NOT_RULES: {NOT_RULES[name]}")
    missing = [name for name, what in covered.items() if not what]
    if missing:
        raise SystemExit("Java validators covered by no rule and no NOT_RULES line: "
                         + ", ".join(missing))
    return covered


def coverage_table() -> str:
    rows = [(_literal(name), ", ".join(JAVA_APPLIES_TO[name]), "; ".join(what))
            for name, what in coverage().items()]
    return _list_table(("Java validator", "Applies to (in Java)", "Covered by"), rows,
                       widths="32 28 40")


def differences_table() -> str:
    return _list_table(("Case", "Java library", "pyuftp", "Why"), list(DIFFERENCES),
                       widths="25 25 25 25")


def render_page() -> str:
    rules = list(BUILT_IN)
    parts = [
        INTRO.format(command=COMMAND, settings=settings_table()),
        "The rules\n=========\n\n",
        f"There are {len(rules)} rules, {sum(not r.stateful for r in rules)} stateless and "
        f"{sum(r.stateful for r in rules)} stateful; "
        f"{sum(not DEFAULT_RULES.enabled(r.id) for r in rules)} are off by default. The last "
        "column names the validators of the Java reference library (shapeshifter-library-java) "
        "that a rule matches.\n\n",
        rules_table(),
        "\nJava validators that are not rules\n==================================\n\n",
        "These validators of the Java library have no rule of their own here:\n\n",
        not_rules(),
        "\nEvery Java validator\n====================\n\n",
        "The validators of the Java reference library, and what covers each in pyuftp:\n\n",
        coverage_table(),
        "\nWhere pyuftp decides differently from the Java library\n"
        "=======================================================\n\n",
        "A party that trades with counterparties built on the Java reference library "
        "(shapeshifter-library-java) sees these messages judged differently there. First the "
        "places where the Java library is wrong, then checks pyuftp makes that it lacks:\n\n",
        differences_table(),
    ]
    return "".join(parts)


def is_current(path: Path | None = None) -> bool:
    path = PAGE if path is None else path
    return path.is_file() and path.read_text(encoding="utf-8") == render_page()


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def outputs() -> dict[Path, str]:
    """The page and its text."""
    return {PAGE: render_page()}
