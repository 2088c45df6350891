"""The field-type table: every UFTP payload message, its attributes and child elements.

This table is the one description of the protocol's shapes that the rest of pyuftp is driven
by: the dict checker, the parser, the packaged XSD files (generated from it by
``tools/make_schemas.py``) and the docs. The templates in ``pyuftp/templates/`` are written by
hand to read like the XML, and the tests hold them to this table and to the official schemas.

A node is declared as a string of ``XMLName:type`` words; a trailing ``?`` marks an optional
attribute. Children are ``Child(xml_name, node, min, max)``; ``max=None`` means unbounded.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import UnsupportedVersion, quote
# the node types, and their names for the modules that know them from here
from .nodes import Attr as Attr, Child as Child, Node as Node, node as node
from .nodes import plural as plural, snake_case as snake_case

# --- the shared bases (PayloadMessageType, PayloadMessageResponseType, FlexMessageType) -----

PAYLOAD = node(
    "Version:version SenderDomain:domain RecipientDomain:domain TimeStamp:datetime "
    "MessageID:uuid ConversationID:uuid"
)
RESPONSE = PAYLOAD.extend("Result:result RejectionReason:string?")
FLEX = PAYLOAD.extend("ISP-Duration:duration TimeZone:timezone Period:date CongestionPoint:entity")


def response_to(request: str, spec: str = "", *children: Child) -> Node:
    """A ``...Response`` that names the message it answers in ``<Request>MessageID``."""
    return RESPONSE.extend(f"{request}MessageID:uuid {spec}", *children)


# --- the ISP shapes -------------------------------------------------------------------------

ISP_POWER = node("Power:integer Start:positive Duration:positive?")

# --- the messages, as in version 3.1.0 -------------------------------------------------------

_PORTFOLIO_CONNECTION = node("EntityAddress:entity StartPeriod:date EndPeriod:date?")
_ENTITY = node("EntityAddress:entity")
_CONGESTION_POINT_RULES = (
    "MutexOffersSupported:boolean DayAheadRedispatchBy:redispatch IntradayRedispatchBy:redispatch?"
)

MESSAGES_3_1: dict[str, Node] = {
    "TestMessage": PAYLOAD,
    "TestMessageResponse": PAYLOAD,  # the schemas give it no Result: it only echoes
    "AGRPortfolioUpdate": PAYLOAD.extend(
        "TimeZone:timezone", Child("Connection", _PORTFOLIO_CONNECTION)
    ),
    "AGRPortfolioUpdateResponse": response_to("AGRPortfolioUpdate"),
    "AGRPortfolioQuery": PAYLOAD.extend("TimeZone:timezone Period:date"),
    "AGRPortfolioQueryResponse": response_to(
        "AGRPortfolioQuery",
        "TimeZone:timezone Period:date",
        Child(
            "DSO-View",
            node(
                "",
                Child(
                    "DSO-Portfolio",
                    node(
                        "DSO-Domain:domain",
                        Child(
                            "CongestionPoint",
                            node(f"EntityAddress:entity {_CONGESTION_POINT_RULES}",
                                 Child("Connection", _ENTITY)),
                        ),
                    ),
                ),
                Child("Connection", _ENTITY, min=0),
            ),
        ),
    ),
    "DSOPortfolioUpdate": PAYLOAD.extend(
        "TimeZone:timezone",
        Child(
            "CongestionPoint",
            node(
                f"EntityAddress:entity StartPeriod:date EndPeriod:date? {_CONGESTION_POINT_RULES}",
                Child("Connection", _PORTFOLIO_CONNECTION),
            ),
        ),
    ),
    # The official schemas name this reference attribute so, "Response" included.
    "DSOPortfolioUpdateResponse": response_to("DSOPortfolioUpdateResponse"),
    "DSOPortfolioQuery": PAYLOAD.extend("TimeZone:timezone Period:date EntityAddress:entity"),
    "DSOPortfolioQueryResponse": response_to(
        "DSOPortfolioQuery",
        "TimeZone:timezone Period:date",
        Child(
            "CongestionPoint",
            node("EntityAddress:entity",
                 Child("Connection", node("EntityAddress:entity AGR-Domain:domain?"))),
            min=0,
            max=1,
        ),
    ),
    "D-Prognosis": FLEX.extend(
        "Revision:long", Child("ISP", node("Power:integer Start:integer Duration:integer?"))
    ),
    "D-PrognosisResponse": response_to(
        "D-Prognosis",
        "",
        Child("FlexOrderStatus", node("FlexOrderMessageID:uuid IsValidated:boolean"), min=0),
    ),
    "FlexRequest": FLEX.extend(
        "Revision:long ExpirationDateTime:datetime ContractID:string? ServiceType:string?",
        Child(
            "ISP",
            node("Disposition:disposition? MinPower:integer MaxPower:integer "
                 "Start:positive Duration:positive?"),
        ),
    ),
    "FlexRequestResponse": response_to("FlexRequest"),
    "FlexOffer": FLEX.extend(
        "ExpirationDateTime:datetime Unsolicited:boolean? FlexRequestMessageID:uuid? "
        "ContractID:string? D-PrognosisMessageID:uuid? BaselineReference:string? "
        "Currency:currency",
        Child(
            "OfferOption",
            node("OptionReference:string Price:amount MinActivationFactor:factor?",
                 Child("ISP", ISP_POWER)),
        ),
    ),
    "FlexOfferResponse": response_to("FlexOffer"),
    "FlexOfferRevocation": PAYLOAD.extend("FlexOfferMessageID:uuid"),
    "FlexOfferRevocationResponse": response_to("FlexOfferRevocation"),
    "FlexOrder": FLEX.extend(
        "Unsolicited:boolean? FlexOfferMessageID:uuid? ServiceType:string? ContractID:string? "
        "D-PrognosisMessageID:uuid? BaselineReference:string? Price:amount Currency:currency "
        "OrderReference:string OptionReference:string? ActivationFactor:factor?",
        Child("ISP", ISP_POWER),
    ),
    "FlexOrderResponse": response_to("FlexOrder"),
    "FlexReservationUpdate": FLEX.extend(
        "ContractID:string Reference:string", Child("ISP", ISP_POWER)
    ),
    "FlexReservationUpdateResponse": response_to("FlexReservationUpdate"),
    # The official schemas derive FlexSettlement from the response type, Result included.
    "FlexSettlement": RESPONSE.extend(
        "PeriodStart:date PeriodEnd:date Currency:currency",
        Child(
            "FlexOrderSettlement",
            node(
                "OrderReference:string? Period:date ContractID:string? "
                "D-PrognosisMessageID:uuid? BaselineReference:string? CongestionPoint:entity "
                "Price:amount Penalty:nonnegative_amount? NetSettlement:amount",
                Child(
                    "ISP",
                    node("Start:positive Duration:positive? BaselinePower:integer "
                         "OrderedFlexPower:integer ActualPower:integer "
                         "DeliveredFlexPower:integer PowerDeficiency:nonnegative?"),
                ),
            ),
        ),
        Child(
            "ContractSettlement",
            node(
                "ContractID:string?",
                Child(
                    "Period",
                    node(
                        "Period:date",
                        Child(
                            "ISP",
                            node("Start:positive Duration:positive? ReservedPower:integer "
                                 "RequestedPower:integer? AvailablePower:integer? "
                                 "OfferedPower:integer? OrderedPower:integer?"),
                        ),
                    ),
                ),
            ),
        ),
    ),
    "FlexSettlementResponse": response_to(
        "FlexSettlement",
        "",
        Child(
            "FlexOrderSettlementStatus",
            node("OrderReference:string? Disposition:settlement_disposition "
                 "DisputeReason:string?"),
        ),
    ),
    "Metering": PAYLOAD.extend(
        "Revision:long ISP-Duration:duration TimeZone:timezone Currency:currency? "
        "Period:date EAN:ean",
        Child(
            "Profile",
            node("ProfileType:profile_type Unit:unit",
                 Child("ISP", node("Start:integer Value:decimal"))),
        ),
    ),
    "MeteringResponse": response_to("Metering"),
}

# --- who sends what to whom ----------------------------------------------------------------

ROLES = ("AGR", "CRO", "DSO")
ANY_ROLE_MESSAGES = ("TestMessage", "TestMessageResponse")  # every party to every other

# The UFTP message catalog's routes. Clients offer exactly these sends, services accept exactly
# these receipts and refuse a message from the wrong role.
ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("AGR", "CRO"): ("AGRPortfolioUpdate", "AGRPortfolioQuery"),
    ("CRO", "AGR"): ("AGRPortfolioUpdateResponse", "AGRPortfolioQueryResponse"),
    ("DSO", "CRO"): ("DSOPortfolioUpdate", "DSOPortfolioQuery"),
    ("CRO", "DSO"): ("DSOPortfolioUpdateResponse", "DSOPortfolioQueryResponse"),
    ("AGR", "DSO"): (
        "D-Prognosis", "FlexRequestResponse", "FlexOffer", "FlexOfferRevocation",
        "FlexOrderResponse", "FlexReservationUpdateResponse", "FlexSettlementResponse", "Metering",
    ),
    ("DSO", "AGR"): (
        "D-PrognosisResponse", "FlexRequest", "FlexOfferResponse", "FlexOfferRevocationResponse",
        "FlexOrder", "FlexReservationUpdate", "FlexSettlement", "MeteringResponse",
    ),
}

# --- what pyuftp accepts when receiving -----------------------------------------------------
# The most used peer, shapeshifter-uftp 2.4.0, writes two things the official schemas do not
# allow. Both are harmless, so pyuftp reads them (and keeps them in the dict) but never
# writes them: a Result (and RejectionReason) on TestMessageResponse, and the full 18-digit
# EAN in Metering where the schemas say E + 16 digits.
TOLERATED = {
    "TestMessageResponse": lambda n: n.extend("Result:result? RejectionReason:string?"),
    "Metering": lambda n: n.change(EAN="ean_received"),
}

SIGNED_MESSAGE = node("SenderDomain:domain SenderRole:role Body:base64")

# --- what a counterparty accepts, where its software differs from the official schemas --------
#: Per dialect, how the nodes of what pyuftp *sends* to a party that speaks it differ from the
#: official ones (docs/dialects.rst lists every known difference). The Java reference library
#: (shapeshifter-library-java) validates Metering against its own schema, which wants the EAN
#: as E + exactly 18 digits where the official schemas say E + 16.
DIALECTS: dict[str, dict[str, Callable[[Node], Node]]] = {
    "uftp": {},
    "java": {"Metering": lambda n: n.change(EAN="ean_java")},
}


def check_dialect(name: Any) -> str:
    """``name`` if it is a known dialect, else ValueError naming the known ones."""
    if not isinstance(name, str) or name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}")
    return name


@dataclass(frozen=True)
class Spec:
    """One UFTP version: its messages, routes and references, and where its templates and
    schemas are. Everything version-specific is read from here.

    Adding a version is a new Spec (usually :meth:`derive` from the nearest one) and, if its
    shapes differ, templates in a folder of its own named in ``template_dirs``;
    ``test/test_specs.py`` walks every Spec and message type and lists what else must exist.
    """

    version: str
    messages: dict[str, Node]  # what pyuftp writes: the official rules
    routes: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=lambda: dict(ROUTES))
    template_dirs: tuple[str, ...] = ("templates",)  # searched in order
    received: dict[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "received", {
            t: TOLERATED.get(t, lambda n: n)(n) for t, n in self.messages.items()})

    @property
    def message_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.messages))

    @property
    def schema_dir(self) -> str:
        """The folder of pyuftp's packaged XSDs for this version (under ``pyuftp/``)."""
        return f"schemas/{self.version}"

    def derive(self, version: str, **changes: dict[str, str | None]) -> Spec:
        """A Spec for another version: these messages' attributes retyped or dropped
        (``FlexOffer={"Unsolicited": None}``), the rest the same."""
        messages = dict(self.messages)
        for message_type, attrs in changes.items():
            messages[message_type] = messages[message_type].change(**{
                xml.replace("-", "_"): spec for xml, spec in attrs.items()})
        return Spec(version, messages, dict(self.routes), self.template_dirs)

    def sent_by(self, sender_role: str, recipient_role: str) -> tuple[str, ...]:
        """The message types ``sender_role`` sends to ``recipient_role``."""
        return self.routes.get((sender_role, recipient_role), ()) + ANY_ROLE_MESSAGES

    def may_send(self, sender_role: str, recipient_role: str, message_type: str) -> bool:
        """Whether ``sender_role`` may send ``message_type`` to ``recipient_role``."""
        if message_type in ANY_ROLE_MESSAGES:
            return (sender_role in ROLES and recipient_role in ROLES
                    and sender_role != recipient_role)
        return message_type in self.routes.get((sender_role, recipient_role), ())

    def accepted_by(self, role: str) -> frozenset[str]:
        """The message types a service of ``role`` receives."""
        types = {t for (_, to), sent in self.routes.items() if to == role for t in sent}
        return frozenset(types | set(ANY_ROLE_MESSAGES))

    def response_type(self, message_type: str) -> str | None:
        """The type that answers ``message_type`` (FlexOffer -> FlexOfferResponse), if any."""
        answer = message_type + "Response"
        return answer if answer in self.messages else None

    def request_type(self, message_type: str) -> str | None:
        """The type that ``message_type`` answers (FlexOfferResponse -> FlexOffer), if any."""
        if message_type.endswith("Response") and message_type[: -len("Response")] in self.messages:
            return message_type[: -len("Response")]
        return None

    def reference_key(self, request_type: str) -> str | None:
        """The key by which a response names the request it answers; None when it names it
        only by conversation (TestMessageResponse)."""
        answer = self.response_type(request_type)
        if answer is None:
            return None
        keys = [a.key for a in self.messages[answer].attrs if a.xml.endswith("MessageID")
                and a.xml not in ("MessageID", "ConversationID")]
        return keys[0] if keys else None


SPEC_3_1 = Spec("3.1.0", MESSAGES_3_1)
# 3.0.0: the same, less what 3.1.0 added to FlexOffer and FlexOrder.
SPEC_3_0 = SPEC_3_1.derive(
    "3.0.0",
    FlexOffer={"Unsolicited": None},
    FlexOrder={"Unsolicited": None, "ServiceType": None, "FlexOfferMessageID": "uuid"},
)
SPECS: dict[str, Spec] = {s.version: s for s in (SPEC_3_1, SPEC_3_0)}
VERSIONS = tuple(SPECS)
DEFAULT_VERSION = SPEC_3_1.version
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def spec(version: Any = None) -> Spec:
    """The Spec that serves ``version`` (None: the default; '3.1.2' is served by 3.1.0:
    patch versions share a schema). Every version string from outside passes through here.
    """
    if version is None:
        return SPECS[DEFAULT_VERSION]
    if isinstance(version, Spec):
        return version
    if isinstance(version, str):
        text = version.strip()
        if text in SPECS:
            return SPECS[text]
        if _SEMVER.fullmatch(text):
            for known in SPECS.values():
                if known.version.rsplit(".", 1)[0] == text.rsplit(".", 1)[0]:
                    return known
    raise UnsupportedVersion(
        f"UFTP version {quote(version)} is not supported; pyuftp speaks {', '.join(SPECS)}")


# --- the default version's view, for callers that need no other --------------------------

MESSAGES: dict[str, dict[str, Node]] = {v: s.messages for v, s in SPECS.items()}
RECEIVED: dict[str, dict[str, Node]] = {v: s.received for v, s in SPECS.items()}
MESSAGE_TYPES: tuple[str, ...] = SPEC_3_1.message_types


def may_send(sender_role: str, recipient_role: str, message_type: str) -> bool:
    return spec().may_send(sender_role, recipient_role, message_type)


def accepted_by(role: str) -> frozenset[str]:
    return spec().accepted_by(role)


def response_type(message_type: str) -> str | None:
    return spec().response_type(message_type)


def reference_key(message_type: str) -> str | None:
    """The dict key by which a response names the request ``message_type`` it answers, in
    the default version: :meth:`Spec.reference_key`, the one source (None when the response
    names it only by conversation: TestMessageResponse; or when it has no response)."""
    return spec().reference_key(message_type)
