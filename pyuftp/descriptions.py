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
        "the change in power it can deliver, at a price. An offer answers a "
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
