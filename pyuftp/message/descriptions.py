"""What each UFTP message is for, in pyuftp's own words: one description per message type.

The one source of these texts: the role clients' ``send_*`` docstrings take their first
sentence, the reference page (``tools/make_docs.py``) takes them whole. ``:ref:`` marks a
cross-reference to another message's section of that page.
"""
from __future__ import annotations

import re

# Who sends it to whom, why, and what answers it.
MESSAGES: dict[str, str] = {
    "AGRPortfolioQuery": (
        "Sent by an AGR to the CRO to find out, for one day, on which congestion points of "
        "which DSOs its connections lie, and so where it can trade flexibility. "
        "The CRO answers with an :ref:`AGRPortfolioQueryResponse`."
    ),
    "AGRPortfolioQueryResponse": (
        "The CRO's answer to an :ref:`AGRPortfolioQuery`. For each DSO it lists the "
        "congestion points that hold connections of the AGR, with the trading rules the DSO "
        "set for each one (whether mutually exclusive offer options are accepted, who "
        "redispatches day-ahead and intraday), and separately the AGR's connections that lie "
        "on no registered congestion point."
    ),
    "AGRPortfolioUpdate": (
        "Sent by an AGR to the CRO to register the connections on which it represents "
        "prosumers, each from a first day and, if known, until a last day. "
        "The CRO answers with an :ref:`AGRPortfolioUpdateResponse`."
    ),
    "AGRPortfolioUpdateResponse": (
        "The CRO tells the AGR whether its :ref:`AGRPortfolioUpdate` was processed "
        "(``Accepted``) or not (``Rejected``, with a ``rejection_reason``)."
    ),
    "D-Prognosis": (
        "Sent by an AGR to a DSO: the expected power of the AGR's portfolio behind one "
        "congestion point for every ISP of a day. Each new version gets a higher "
        "``revision``, for instance once a FlexOrder has changed the plan; where the parties "
        "agreed so, a D-Prognosis is the baseline that flexibility is measured against. "
        "The DSO answers with a :ref:`D-PrognosisResponse`."
    ),
    "D-PrognosisResponse": (
        "The DSO's answer to a :ref:`D-Prognosis`: accepted or rejected and, for every "
        ":ref:`FlexOrder` already placed for that day, a ``flex_order_statuses`` item that "
        "says whether the new prognosis reflects the order (``is_validated``)."
    ),
    "DSOPortfolioQuery": (
        "Sent by a DSO to the CRO to learn, for one of its congestion points and one day, "
        "which AGRs represent the connections behind it. "
        "The CRO answers with a :ref:`DSOPortfolioQueryResponse`."
    ),
    "DSOPortfolioQueryResponse": (
        "The CRO's answer to a :ref:`DSOPortfolioQuery`: the congestion point with its "
        "connections and, for each connection that an AGR represents, that AGR's domain."
    ),
    "DSOPortfolioUpdate": (
        "Sent by a DSO to the CRO to register the congestion points on which it wants to "
        "trade flexibility: for each, the days it applies, the connections behind it and the "
        "trading rules. The CRO answers with a :ref:`DSOPortfolioUpdateResponse`."
    ),
    "DSOPortfolioUpdateResponse": (
        "The CRO tells the DSO whether its :ref:`DSOPortfolioUpdate` was processed. "
        "The released schemas name the reference attribute "
        "``DSOPortfolioUpdateResponseMessageID`` (hence the dict key "
        "``dso_portfolio_update_response_message_id``); it holds the MessageID of the "
        "DSOPortfolioUpdate."
    ),
    "FlexOffer": (
        "Sent by an AGR to a DSO to offer flexibility on a congestion point: for each ISP "
        "the change in power against its prognosis that it can deliver (``power``: positive "
        "means more consumption, negative less consumption or more production), at a price. "
        "An offer answers a "
        ":ref:`FlexRequest` (``flex_request_message_id``) or comes unsolicited; it may hold "
        "several mutually exclusive options, each with a minimum activation factor when "
        "partial activation is possible, and it is valid until ``expiration_date_time`` "
        "unless revoked earlier with a :ref:`FlexOfferRevocation`. "
        "The DSO answers with a :ref:`FlexOfferResponse`, and buys with a :ref:`FlexOrder`."
    ),
    "FlexOfferResponse": (
        "The DSO tells the AGR whether its :ref:`FlexOffer` was processed; accepting an "
        "offer does not buy it, a :ref:`FlexOrder` does."
    ),
    "FlexOfferRevocation": (
        "Sent by an AGR to a DSO to withdraw a :ref:`FlexOffer` before it expires. An offer "
        "that has been ordered can no longer be revoked. "
        "The DSO answers with a :ref:`FlexOfferRevocationResponse`."
    ),
    "FlexOfferRevocationResponse": (
        "The DSO's answer to a :ref:`FlexOfferRevocation`. In this example it is "
        "``Rejected``: the revocation crossed the DSO's :ref:`FlexOrder` for the same offer."
    ),
    "FlexOrder": (
        "Sent by a DSO to an AGR to buy flexibility, as a binding order. When based on a "
        ":ref:`FlexOffer` it names the offer and the chosen option and copies that option's "
        "ISPs; with an ``activation_factor`` below 1 the ISPs and the price are scaled down "
        "alike. The ``order_reference`` returns in the :ref:`FlexSettlement`. "
        "The AGR answers with a :ref:`FlexOrderResponse`."
    ),
    "FlexOrderResponse": (
        "The AGR's answer to a :ref:`FlexOrder`. An AGR may reject an order only when it is "
        "a duplicate, refers to an unknown offer or does not match the offer."
    ),
    "FlexRequest": (
        "Sent by a DSO to the AGRs on a congestion point where it expects congestion. For "
        "each ISP it gives a band of power relative to the baseline: ``Requested`` ISPs need "
        "the deviation, ``Available`` ISPs show how much room there is elsewhere, for "
        "instance to shift consumption to. A new ``revision`` replaces an earlier one. "
        "The AGR answers with a :ref:`FlexRequestResponse`, and with one or more "
        ":ref:`FlexOffer` messages if it can help."
    ),
    "FlexRequestResponse": (
        "The AGR tells the DSO whether its :ref:`FlexRequest` was processed; it may reject a "
        "request that is outdated or requests nothing."
    ),
    "FlexReservationUpdate": (
        "Under a bilateral contract, a DSO tells the AGR per ISP how much of the contracted "
        "flexibility it still keeps reserved; what it releases (zero power) the AGR may use "
        "elsewhere. The AGR answers with a :ref:`FlexReservationUpdateResponse`."
    ),
    "FlexReservationUpdateResponse": (
        "The AGR's answer to a :ref:`FlexReservationUpdate`, for instance rejecting one that "
        "does not fit the contract or came too late."
    ),
    "FlexSettlement": (
        "Sent by a DSO to an AGR, typically once a month, to settle: every "
        ":ref:`FlexOrder` of the period with the baseline, ordered, actual and delivered "
        "power per ISP, the price, any penalty and the net amount, and for bilateral "
        "contracts the reserved, requested, offered and ordered power per ISP. The schemas "
        "derive it from the response type, so it carries a ``result`` too. "
        "The AGR answers with a :ref:`FlexSettlementResponse`."
    ),
    "FlexSettlementResponse": (
        "The AGR's answer to a :ref:`FlexSettlement`: it accepts the message and, order by "
        "order, accepts the settlement or disputes it with a ``dispute_reason``."
    ),
    "Metering": (
        "Sent by an AGR to a DSO, where the DSO's programme asks for it: the metered data of "
        "one meter (its EAN) for one day, as one profile per agreed quantity (average power "
        "in kW, imported or exported energy or meter readings in kWh), value by ISP. "
        "The DSO answers with a :ref:`MeteringResponse`."
    ),
    "MeteringResponse": (
        "The DSO tells the AGR whether its :ref:`Metering` message was processed."
    ),
    "TestMessage": (
        "Any party (AGR, CRO or DSO) may send a TestMessage to another to check that "
        "messages get through: endpoint lookup, signing, delivery. It carries nothing but "
        "the metadata. The recipient answers with a :ref:`TestMessageResponse`."
    ),
    "TestMessageResponse": (
        "The answer to a :ref:`TestMessage`. In the released schemas (3.0.0 and 3.1.0) it "
        "carries only the metadata, no result and no reference attribute; its "
        "``conversation_id`` ties it to the TestMessage."
    ),
}


def summary(message_type: str) -> str:
    """The first sentence of the message's description, without reST markup."""
    text = re.sub(r":ref:`([^`]+)`", r"\1", MESSAGES[message_type])
    text = text.replace("``", "")
    return text.split(". ")[0].rstrip(".") + "."


# --- what each field means ------------------------------------------------------------------
# One line per XML attribute or element name, in pyuftp's own words after the message catalog
# of the UFTP specification. FIELD_OVERRIDES holds the meanings that differ by place: keyed
# "MessageType:Parent/Name" (most specific), "MessageType:Name" or "Parent/Name".
# ``field_meaning`` finds the text; a test asks it for every field of every message type.

FIELDS: dict[str, str] = {
    # metadata, on every message
    "Version": "The UFTP version the message follows, e.g. 3.1.0; filled in when left out.",
    "SenderDomain": "Internet domain of the sending party; must equal the envelope's sender.",
    "RecipientDomain": "Internet domain of the party the message is for; used to find its "
                       "endpoint.",
    "TimeStamp": "When the message was made, with UTC offset; filled in (now) when left out.",
    "MessageID": "A new UUID for every message; filled in when left out.",
    "ConversationID": "UUID shared by a request and its response(s); a reply copies it from "
                      "the message it answers.",
    "ISP-Duration": "Length of one ISP (imbalance settlement period), e.g. 15 minutes.",
    "TimeZone": "IANA time zone (e.g. Europe/Amsterdam) that fixes the UTC offset of the "
                "Period.",
    # responses
    "Result": "Accepted or Rejected: whether the message answered was processed.",
    "RejectionReason": "Why the message was rejected, in words for a human (only with "
                       "Rejected).",
    # days, places, money
    "Period": "The day (in TimeZone) that the ISPs of this message belong to.",
    "CongestionPoint": "Entity address of the congestion point the message is about.",
    "EntityAddress": "Entity address (ean.… or ea1.…) of the congestion point or connection.",
    "StartPeriod": "First day (inclusive) of the registration.",
    "EndPeriod": "Last day (inclusive) of the registration; absent while open-ended.",
    "Currency": "ISO 4217 code of the currency of the prices in this message, e.g. EUR.",
    "Price": "Price for the flexibility, in Currency.",
    "ContractID": "Reference of the bilateral contract this belongs to, if any.",
    "BaselineReference": "Names the baseline used when it is not a D-Prognosis.",
    "D-PrognosisMessageID": "MessageID of the D-Prognosis used as baseline, where the "
                            "parties agreed on D-prognoses as baseline.",
    "Revision": "Sequence number, raised with each new version of this message.",
    "ExpirationDateTime": "Until when (date-time with UTC offset) the message is valid.",
    "Unsolicited": "True when the message does not follow a request (no FlexRequest, no "
                   "FlexOffer).",
    "ServiceType": "The kind of service asked for (response time, asset type), as the "
                   "contract defines it.",
    "OrderReference": "The DSO's number for the FlexOrder; it comes back in the settlement.",
    "OptionReference": "Name of an offer option, unique within its FlexOffer.",
    "Reference": "The DSO's own reference of this reservation update.",
    # ISPs
    "ISP": "One ISP, or a run of ISPs (Start, Duration), with its values.",
    "Start": "Number of the first ISP this element covers; the day's first ISP is 1.",
    "Duration": "How many ISPs this element covers; 1 when absent.",
    "Power": "Power in watts for each ISP covered (positive: consumption, negative: "
             "production).",
    "MinPower": "Lower bound, in watts, of the deviation from the baseline.",
    "MaxPower": "Upper bound, in watts, of the deviation from the baseline.",
    "Disposition": "Requested (deviation needed) or Available (room to deviate) for these "
                   "ISPs.",
    # portfolios
    "Connection": "A connection (grid connection of a prosumer).",
    "MutexOffersSupported": "Whether the DSO takes FlexOffers with several, mutually "
                            "exclusive options here.",
    "DayAheadRedispatchBy": "Who does day-ahead redispatch here: AGR or DSO.",
    "IntradayRedispatchBy": "Who does intraday redispatch here: AGR or DSO; absent: no "
                            "intraday trading.",
    "AGR-Domain": "Internet domain of the AGR that represents this connection, if one does.",
    "DSO-View": "The AGR's connections as the DSOs see them.",
    "DSO-Portfolio": "The congestion points of one DSO that hold connections of the AGR.",
    "DSO-Domain": "Internet domain of the DSO this portfolio belongs to.",
    # references to the message answered
    "AGRPortfolioQueryMessageID": "MessageID of the AGRPortfolioQuery answered.",
    "AGRPortfolioUpdateMessageID": "MessageID of the AGRPortfolioUpdate answered.",
    "DSOPortfolioQueryMessageID": "MessageID of the DSOPortfolioQuery answered.",
    "DSOPortfolioUpdateResponseMessageID": "MessageID of the DSOPortfolioUpdate answered "
                                           "(the schemas' name for it).",
    "FlexOfferMessageID": "MessageID of the FlexOffer this message is about.",
    "FlexOfferRevocationMessageID": "MessageID of the FlexOfferRevocation answered.",
    "FlexOrderMessageID": "MessageID of the FlexOrder this is about.",
    "FlexRequestMessageID": "MessageID of the FlexRequest answered or followed.",
    "FlexReservationUpdateMessageID": "MessageID of the FlexReservationUpdate answered.",
    "FlexSettlementMessageID": "MessageID of the FlexSettlement answered.",
    "MeteringMessageID": "MessageID of the Metering message answered.",
    # offers and orders
    "OfferOption": "One option of the offer: its ISPs and price. Options exclude each other.",
    "MinActivationFactor": "Smallest share (0.01 to 1.00) of the option the DSO may order; "
                           "1.00 when absent.",
    "ActivationFactor": "Share (0.01 to 1.00) of the chosen option that is ordered; 1.00 "
                        "when absent.",
    "FlexOrderStatus": "For an earlier FlexOrder of that day: whether this prognosis "
                       "reflects it.",
    "IsValidated": "Whether the D-Prognosis just received includes this FlexOrder.",
    # settlement
    "PeriodStart": "First day of the settlement period.",
    "PeriodEnd": "Last day of the settlement period.",
    "FlexOrderSettlement": "The settlement of one FlexOrder.",
    "Penalty": "Penalty for power not delivered, in Currency; zero when absent.",
    "NetSettlement": "What is paid for the order: Price minus Penalty.",
    "BaselinePower": "Power in watts that the baseline forecast for the ISP.",
    "OrderedFlexPower": "Flexible power in watts that the FlexOrder ordered for the ISP.",
    "ActualPower": "Power in watts measured or determined by the DSO and allocated to the AGR.",
    "DeliveredFlexPower": "Flexible power in watts the DSO finds delivered in the ISP.",
    "PowerDeficiency": "Ordered flexible power in watts not delivered; zero when absent.",
    "ContractSettlement": "The settlement of one bilateral contract.",
    "ReservedPower": "Power in watts reserved in advance and not released.",
    "RequestedPower": "Reserved power in watts that a FlexRequest asked for; absent without "
                      "request.",
    "AvailablePower": "Power in watts that the FlexRequest showed as available.",
    "OfferedPower": "Reserved and requested power in watts that an offer covered; absent "
                    "without offer.",
    "OrderedPower": "Power in watts ordered under this contract; absent without order.",
    "FlexOrderSettlementStatus": "The AGR's verdict on one order's settlement.",
    "DisputeReason": "Why the AGR disputes the settlement, in words (only with Disputed).",
    # metering
    "EAN": "EAN code of the connection (meter) the data belongs to.",
    "Profile": "A series of metered values of one kind, one per ISP.",
    "ProfileType": "Kind of values: Power, ImportEnergy, ExportEnergy, ImportMeterReading "
                   "or ExportMeterReading.",
    "Unit": "Unit of the values: kW for power, kWh for energy and meter readings.",
    "Value": "The metered value for the ISP, in Unit.",
}

FIELD_OVERRIDES: dict[str, str] = {
    "AGRPortfolioUpdate:Connection": "A connection on which the AGR represents a prosumer.",
    "AGRPortfolioUpdate:Connection/StartPeriod": "First day the AGR represents the connection.",
    "AGRPortfolioUpdate:Connection/EndPeriod": "Last day the AGR represents the connection; "
                                               "absent while open-ended.",
    "AGRPortfolioQuery:Period": "The day the AGR asks its portfolio for.",
    "AGRPortfolioQueryResponse:Period": "The day the portfolio is valid for.",
    "DSO-Portfolio/CongestionPoint": "A congestion point with at least one connection of "
                                     "the AGR.",
    "DSO-View/Connection": "A connection of the AGR on no registered congestion point.",
    "DSOPortfolioUpdate:CongestionPoint": "A congestion point on which the DSO trades "
                                          "flexibility.",
    "DSOPortfolioUpdate:CongestionPoint/StartPeriod": "First day the DSO trades on the "
                                                      "congestion point.",
    "DSOPortfolioUpdate:CongestionPoint/EndPeriod": "Last day the DSO trades on it; absent "
                                                    "while open-ended.",
    "DSOPortfolioUpdate:Connection/StartPeriod": "First day the connection is part of the "
                                                 "congestion point.",
    "DSOPortfolioUpdate:Connection/EndPeriod": "Last day the connection is part of it; "
                                               "absent while open-ended.",
    "DSOPortfolioQuery:EntityAddress": "Entity address of the congestion point asked about.",
    "DSOPortfolioQuery:Period": "The day the DSO asks the portfolio for.",
    "DSOPortfolioQueryResponse:Period": "The day queried; the portfolio is valid for it.",
    "DSOPortfolioQueryResponse:CongestionPoint": "The congestion point queried; absent when "
                                                 "the query failed.",
    "D-PrognosisResponse:D-PrognosisMessageID": "MessageID of the D-Prognosis answered.",
    "FlexOffer:OfferOption/ISP/Power": "Change in power in watts that the option delivers in "
                                       "each ISP covered, against the prognosis (positive: more "
                                       "consumption; negative: less consumption or more "
                                       "production).",
    "FlexOrder:ISP/Power": "Change in power in watts ordered for each ISP covered, against the "
                           "prognosis (positive: more consumption; negative: less consumption "
                           "or more production).",
    "D-Prognosis:ISP/Power": "Expected power in watts of the portfolio in each ISP covered.",
    "FlexOfferResponse:FlexOfferMessageID": "MessageID of the FlexOffer answered.",
    "FlexOfferRevocation:FlexOfferMessageID": "MessageID of the FlexOffer withdrawn.",
    "FlexOrder:FlexOfferMessageID": "MessageID of the FlexOffer ordered (required unless "
                                    "unsolicited).",
    "FlexOrderResponse:FlexOrderMessageID": "MessageID of the FlexOrder answered.",
    "FlexRequestResponse:FlexRequestMessageID": "MessageID of the FlexRequest answered.",
    "FlexOffer:FlexRequestMessageID": "MessageID of the FlexRequest the offer answers "
                                      "(required unless unsolicited).",
    "OfferOption/Price": "Asking price for the whole option, in Currency.",
    "FlexOffer:OfferOption/ISP": "The flexibility offered in one ISP or a run of ISPs.",
    "FlexOrder:Price": "Price of the order, in Currency; usually the offer's price scaled by "
                       "the activation factor.",
    "FlexOrder:OptionReference": "OptionReference of the offer option chosen.",
    "FlexOrder:ISP": "The flexibility ordered in one ISP or a run of ISPs.",
    "FlexOffer:ExpirationDateTime": "Until when the offer may be ordered.",
    "FlexRequest:ExpirationDateTime": "Until when the request is valid: offers must come "
                                      "before.",
    "FlexRequest:Period": "The day the requested ISPs belong to.",
    "FlexReservationUpdate:ISP/Power": "Power in watts still reserved in the ISPs covered; "
                                       "0 releases them.",
    "FlexSettlement:Currency": "ISO 4217 code of all amounts in the settlement.",
    "FlexSettlement:Result": "Accepted or Rejected (the schemas derive FlexSettlement from "
                             "the response type).",
    "FlexSettlement:RejectionReason": "Why (only with Rejected; a settlement is normally not "
                                      "a rejection).",
    "FlexOrderSettlement/Period": "The day of the FlexOrder settled.",
    "FlexOrderSettlement/ContractID": "The bilateral contract of the order, if it has one.",
    "FlexOrderSettlement/D-PrognosisMessageID": "MessageID of the D-Prognosis the order's "
                                                "baseline is.",
    "FlexOrderSettlement/OrderReference": "OrderReference of the FlexOrder settled.",
    "FlexOrderSettlement/CongestionPoint": "Congestion point of the FlexOrder settled.",
    "FlexOrderSettlement/Price": "Price agreed in the FlexOrder, in Currency.",
    "FlexOrderSettlement/ISP": "The power figures of one ISP or a run of ISPs.",
    "ContractSettlement/ContractID": "Reference of the bilateral contract settled.",
    "ContractSettlement/Period": "One day of the contract with reservations.",
    "Period/Period": "The day this part of the contract settlement covers.",
    "Period/ISP": "The reserved, requested, offered and ordered power of one ISP or a run.",
    "FlexSettlementResponse:FlexSettlementMessageID": "MessageID of the FlexSettlement "
                                                      "answered.",
    "FlexOrderSettlementStatus/OrderReference": "OrderReference of the FlexOrder this verdict "
                                                "is about.",
    "FlexOrderSettlementStatus/Disposition": "Accepted (the AGR will invoice so) or Disputed.",
    "Metering:Period": "The day the metered data covers.",
    "Metering:Revision": "Sequence number, raised with each corrected version of the data.",
    "Metering:Currency": "No longer used (kept in the schemas).",
    "Profile/ISP": "The value of one ISP.",
    "Profile/ISP/Start": "Number of the ISP; the day's first ISP is 1.",
}


def field_meaning(message_type: str, path: tuple[str, ...], xml_name: str) -> str:
    """What the attribute or child element ``xml_name`` means, inside the elements ``path``
    (XML names below the root) of ``message_type``. KeyError if nothing says."""
    parent = path[-1] if path else ""
    candidates = [f"{message_type}:{'/'.join(path + (xml_name,))}"]
    if parent:
        candidates.append(f"{message_type}:{parent}/{xml_name}")
        if len(path) > 1:
            candidates.append(f"{path[-2]}/{parent}/{xml_name}")
        candidates.append(f"{parent}/{xml_name}")
    candidates.append(f"{message_type}:{xml_name}")
    for key in candidates:
        if key in FIELD_OVERRIDES:
            return FIELD_OVERRIDES[key]
    return FIELDS[xml_name]


#: The Python type of each field type of :mod:`pyuftp.message.fields`, as a payload holds it.
PYTHON_TYPES: dict[str, str] = {
    "string": "str", "integer": "int", "nonnegative": "int", "positive": "int", "long": "int",
    "decimal": "decimal.Decimal", "amount": "decimal.Decimal",
    "nonnegative_amount": "decimal.Decimal", "factor": "decimal.Decimal",
    "datetime": "datetime.datetime (with tzinfo)", "date": "datetime.date",
    "duration": "datetime.timedelta", "boolean": "bool",
}


def python_type(field_type: str) -> str:
    """``'amount'`` -> ``'decimal.Decimal'``; pattern and choice types are ``str``."""
    return PYTHON_TYPES.get(field_type, "str")
