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
from dataclasses import dataclass, field, replace
from functools import lru_cache

VERSIONS = ("3.1.0", "3.0.0")
DEFAULT_VERSION = "3.1.0"


def snake_case(xml_name: str) -> str:
    """``D-PrognosisMessageID`` -> ``d_prognosis_message_id``, ``ISP-Duration`` -> ``isp_duration``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", xml_name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.replace("-", "_").lower()


def plural(key: str) -> str:
    """``isp`` -> ``isps``, ``flex_order_status`` -> ``flex_order_statuses``."""
    return key + ("es" if key.endswith("s") else "s")


@dataclass(frozen=True)
class Attr:
    xml: str
    type: str
    required: bool
    key: str


@dataclass(frozen=True)
class Child:
    xml: str
    node: Node
    min: int = 1
    max: int | None = None

    @property
    def many(self) -> bool:
        return self.max != 1

    @property
    def key(self) -> str:
        key = snake_case(self.xml)
        return plural(key) if self.many else key


@dataclass(frozen=True)
class Node:
    attrs: tuple[Attr, ...]
    children: tuple[Child, ...] = ()
    by_xml: dict[str, Attr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_xml", {a.xml: a for a in self.attrs})
        keys = [a.key for a in self.attrs] + [c.key for c in self.children]
        assert len(keys) == len(set(keys)), f"duplicate keys in node: {keys}"

    def extend(self, spec: str = "", *children: Child) -> Node:
        """A node with this one's attributes and children plus more (XSD extension)."""
        return Node(self.attrs + _attrs(spec), self.children + children)

    def change(self, **attrs: str | None) -> Node:
        """A copy with attributes retyped (``'type?'``), or dropped (``None``), by XML name."""
        new = []
        for a in self.attrs:
            spec = attrs.get(a.xml.replace("-", "_"), a.type + ("" if a.required else "?"))
            if spec is not None:
                new.append(_attrs(f"{a.xml}:{spec}")[0])
        return replace(self, attrs=tuple(new))

    def keys(self) -> list[str]:
        return [a.key for a in self.attrs] + [c.key for c in self.children]


def _attrs(spec: str) -> tuple[Attr, ...]:
    out = []
    for word in spec.split():
        xml, type_ = word.split(":")
        required = not type_.endswith("?")
        out.append(Attr(xml, type_.rstrip("?"), required, snake_case(xml)))
    return tuple(out)


def node(spec: str, *children: Child) -> Node:
    return Node(_attrs(spec), children)


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

# --- version 3.0.0: the same, less what 3.1.0 added to FlexOffer and FlexOrder ----------------

MESSAGES_3_0 = dict(MESSAGES_3_1)
MESSAGES_3_0["FlexOffer"] = MESSAGES_3_1["FlexOffer"].change(Unsolicited=None)
MESSAGES_3_0["FlexOrder"] = MESSAGES_3_1["FlexOrder"].change(
    Unsolicited=None, ServiceType=None, FlexOfferMessageID="uuid"
)

MESSAGES: dict[str, dict[str, Node]] = {"3.1.0": MESSAGES_3_1, "3.0.0": MESSAGES_3_0}

# --- what pyuftp accepts when receiving -----------------------------------------------------
# The most used peer, shapeshifter-uftp 2.4.0, writes two things the official schemas do not
# allow. Both are harmless, so pyuftp reads them (and keeps them in the dict) but never
# writes them: a Result (and RejectionReason) on TestMessageResponse, and the full 18-digit
# EAN in Metering where the schemas say E + 16 digits.
TOLERATED = {
    "TestMessageResponse": lambda n: n.extend("Result:result? RejectionReason:string?"),
    "Metering": lambda n: n.change(EAN="ean_received"),
}
RECEIVED: dict[str, dict[str, Node]] = {
    version: {t: TOLERATED.get(t, lambda n: n)(n) for t, n in messages.items()}
    for version, messages in MESSAGES.items()
}

MESSAGE_TYPES: tuple[str, ...] = tuple(sorted(MESSAGES_3_1))

SIGNED_MESSAGE = node("SenderDomain:domain SenderRole:role Body:base64")

# Who sends which message type to whom (UFTP message catalog). Clients offer exactly these
# sends, services accept exactly these receipts, and refuse a message from the wrong role.
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
ROLES = ("AGR", "CRO", "DSO")
ANY_ROLE_MESSAGES = ("TestMessage", "TestMessageResponse")  # every party to every other


def may_send(sender_role: str, recipient_role: str, message_type: str) -> bool:
    """Whether ``sender_role`` may send ``message_type`` to ``recipient_role``."""
    if message_type in ANY_ROLE_MESSAGES:
        return sender_role in ROLES and recipient_role in ROLES and sender_role != recipient_role
    return message_type in ROUTES.get((sender_role, recipient_role), ())


def accepted_by(role: str) -> frozenset[str]:
    """The message types a service of ``role`` receives."""
    types = {t for (_, to), sent in ROUTES.items() if to == role for t in sent}
    return frozenset(types | set(ANY_ROLE_MESSAGES))


def response_type(message_type: str) -> str | None:
    """The type that answers ``message_type`` (``FlexOffer`` -> ``FlexOfferResponse``), if any."""
    if message_type.endswith("Response"):
        return None
    return message_type + "Response"


@lru_cache(maxsize=None)  # every response names its request: once per message type
def reference_key(message_type: str) -> str:
    """The dict key by which a response names the request it answers."""
    if message_type == "DSOPortfolioUpdate":
        return "dso_portfolio_update_response_message_id"
    return snake_case(message_type) + "_message_id"
