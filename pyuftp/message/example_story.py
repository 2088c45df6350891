"""The story the example payloads tell (see :mod:`pyuftp.message.examples`): its parties,
ids, dates, envelopes and the content of each of the 26 message types. Data only: the
examples are made from it by :func:`pyuftp.message.examples.example`."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

# --- the shared pieces ----------------------------------------------------------------------

DOMAINS = {"AGR": "agr.example.com", "CRO": "cro.example.com", "DSO": "dso.example.com"}

UTC = timezone.utc
AMSTERDAM_WINTER = timezone(timedelta(hours=1))  # the UTC offset of Europe/Amsterdam in November
TIME_ZONE = "Europe/Amsterdam"
ISP_DURATION = timedelta(minutes=15)
PERIOD = date(2026, 11, 24)  # the day that is traded
CONGESTION_POINT = "ea1.2019-04.com.example.dso:cp-utrecht-0042"
CONNECTIONS = (  # 1 and 2: AGR's prosumers on the congestion point; 3: AGR's, elsewhere;
    "ean.871685900012636543",  # 4: on the congestion point, not represented by this AGR
    "ean.871685900012636550",
    "ean.871685900012636567",
    "ean.871685900012636574",
)
METER_EAN = "E8716859000127401"  # the official schema wants E and 16 digits
CONTRACT_ID = "BC-2026-0042"  # the bilateral contract between DSO and AGR
ORDER_REFERENCE = "DSO-2026-11-0193"  # the order placed in this story
EARLIER_ORDER_REFERENCE = "DSO-2026-11-0117"  # an order of 12 November, settled with it

FLEX = {  # the attributes that every Flex* message and the D-Prognosis share
    "isp_duration": ISP_DURATION,
    "time_zone": TIME_ZONE,
    "period": PERIOD,
    "congestion_point": CONGESTION_POINT,
}

# The MessageID of every example, and of the few earlier messages that examples refer to.
MESSAGE_IDS = {
    "TestMessage": "ac9a509c-9dfd-4321-9732-1a3a6b260939",
    "TestMessageResponse": "703b7b1f-d68b-4c37-9dae-e4fa148ab14d",
    "DSOPortfolioUpdate": "02d6dd95-ce6e-4636-8c94-fc9981d124ce",
    "DSOPortfolioUpdateResponse": "84cfdc2c-157e-4219-8e0f-9c37dde4c58c",
    "AGRPortfolioUpdate": "d15c823e-46dd-45a8-bcc0-fc92e3024835",
    "AGRPortfolioUpdateResponse": "6c135915-e952-45ae-9bde-5b112ea2e9f0",
    "AGRPortfolioQuery": "8e7442dc-2381-4e96-aacf-0f9bccab6623",
    "AGRPortfolioQueryResponse": "11bec518-a920-4c54-b9ec-d8d039f9ecc7",
    "DSOPortfolioQuery": "654a7efa-7bea-4acc-97b5-c1c7572afc69",
    "DSOPortfolioQueryResponse": "dc89ca1d-0af4-43c9-8b65-c1d1b6110128",
    "FlexReservationUpdate": "efa7ff34-c651-4755-be89-b1177e5454ab",
    "FlexReservationUpdateResponse": "42af6958-aaa3-46c8-958e-5969af155e13",
    "FlexRequest": "e4027c46-e228-4d04-802d-9bf07e8f7668",
    "FlexRequestResponse": "2b192d28-4d66-4f2c-ba8f-8c08ec94fc99",
    "FlexOffer": "3d526705-c3fa-464c-9532-e05b3d01905b",
    "FlexOfferResponse": "447de031-fc12-41d2-978b-19aa7eefbfbb",
    "FlexOrder": "db308e21-2eff-45a1-b788-12befccc1af9",
    "FlexOrderResponse": "f37593f1-ffb7-46b8-94f3-eee75dad648b",
    "FlexOfferRevocation": "05efbfd7-aad0-4e2d-a3e7-6be3c7f5a4a1",
    "FlexOfferRevocationResponse": "68da09d3-70dd-4b47-83b5-a67301d574f2",
    "D-Prognosis": "902ef3cc-66b9-4a03-ab38-3bd9c8e447cf",
    "D-PrognosisResponse": "dfff4583-fbd9-4157-9a3b-54a744c057e9",
    "Metering": "dc623810-9e1c-453d-834d-21ecf25ccf84",
    "MeteringResponse": "4846e152-f436-492e-9f10-60b269909d39",
    "FlexSettlement": "d630f6ca-324c-4410-968b-1952035a5212",
    "FlexSettlementResponse": "92fe5846-1144-4838-9c0e-52359ddccfab",
    # not examples themselves:
    "D-Prognosis revision 1": "ffd56330-b137-4b62-a02c-a3320674c4c3",  # the baseline
    "FlexOffer 96": "09c06484-25cd-4497-ad14-4ca1b20feded",  # flex_offer_96()
}

CONVERSATION_IDS = {
    "test": "81907a8d-2c9d-4fb5-bba3-65323e1035f9",
    "dso-portfolio-update": "c908308b-e3f8-4c74-bc27-57954312edcd",
    "agr-portfolio-update": "76268fe4-05d2-40c7-9c42-0a6b7f119e94",
    "agr-portfolio-query": "c680e6a7-484a-4afd-b1f1-3a83d5c22e24",
    "dso-portfolio-query": "437f38d8-bc46-4a84-8eae-b40b75207379",
    "reservation": "c126a5e9-c941-4a95-b6ba-b0f47688099a",
    "flex-trade": "1c3779ce-0526-4dd5-8fb7-fb077a017b9d",  # request, offer, order, revocation
    "d-prognosis": "fb3f3e1c-1c42-4bb1-b644-07dcaa5d8a85",
    "metering": "7b16eb5b-f228-4887-970d-aede1769b9ae",
    "settlement": "1ae51dd3-7bb6-43f1-8269-6853a27ffdc5",
}

# message type -> (sender role, recipient role, conversation, time stamp in UTC).
# A response goes back the way its request came, in the same conversation.
ENVELOPES = {
    "DSOPortfolioUpdate": ("DSO", "CRO", "dso-portfolio-update", (2026, 10, 26, 10, 0, 0)),
    "DSOPortfolioUpdateResponse": ("CRO", "DSO", "dso-portfolio-update", (2026, 10, 26, 10, 0, 2)),
    "AGRPortfolioUpdate": ("AGR", "CRO", "agr-portfolio-update", (2026, 10, 27, 8, 30, 0)),
    "AGRPortfolioUpdateResponse": ("CRO", "AGR", "agr-portfolio-update", (2026, 10, 27, 8, 30, 3)),
    "AGRPortfolioQuery": ("AGR", "CRO", "agr-portfolio-query", (2026, 11, 23, 6, 0, 0)),
    "AGRPortfolioQueryResponse": ("CRO", "AGR", "agr-portfolio-query", (2026, 11, 23, 6, 0, 2)),
    "DSOPortfolioQuery": ("DSO", "CRO", "dso-portfolio-query", (2026, 11, 23, 6, 5, 0)),
    "DSOPortfolioQueryResponse": ("CRO", "DSO", "dso-portfolio-query", (2026, 11, 23, 6, 5, 2)),
    "TestMessage": ("AGR", "DSO", "test", (2026, 11, 23, 7, 0, 0)),
    "TestMessageResponse": ("DSO", "AGR", "test", (2026, 11, 23, 7, 0, 1)),
    "FlexReservationUpdate": ("DSO", "AGR", "reservation", (2026, 11, 23, 7, 30, 0)),
    "FlexReservationUpdateResponse": ("AGR", "DSO", "reservation", (2026, 11, 23, 7, 30, 4)),
    "FlexRequest": ("DSO", "AGR", "flex-trade", (2026, 11, 23, 9, 15, 0)),
    "FlexRequestResponse": ("AGR", "DSO", "flex-trade", (2026, 11, 23, 9, 15, 4)),
    "FlexOffer": ("AGR", "DSO", "flex-trade", (2026, 11, 23, 9, 40, 0)),
    "FlexOfferResponse": ("DSO", "AGR", "flex-trade", (2026, 11, 23, 9, 40, 3)),
    "FlexOrder": ("DSO", "AGR", "flex-trade", (2026, 11, 23, 10, 5, 0)),
    "FlexOfferRevocation": ("AGR", "DSO", "flex-trade", (2026, 11, 23, 10, 5, 1)),
    "FlexOfferRevocationResponse": ("DSO", "AGR", "flex-trade", (2026, 11, 23, 10, 5, 2)),
    "FlexOrderResponse": ("AGR", "DSO", "flex-trade", (2026, 11, 23, 10, 5, 3)),
    "D-Prognosis": ("AGR", "DSO", "d-prognosis", (2026, 11, 23, 10, 20, 0)),
    "D-PrognosisResponse": ("DSO", "AGR", "d-prognosis", (2026, 11, 23, 10, 20, 2)),
    "Metering": ("AGR", "DSO", "metering", (2026, 11, 25, 6, 0, 0)),
    "MeteringResponse": ("DSO", "AGR", "metering", (2026, 11, 25, 6, 0, 3)),
    "FlexSettlement": ("DSO", "AGR", "settlement", (2026, 12, 2, 9, 0, 0)),
    "FlexSettlementResponse": ("AGR", "DSO", "settlement", (2026, 12, 3, 14, 10, 0)),
}


def _rows(keys: str, *rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    """``_rows("start duration power", (1, 68, 380_000), ...)`` -> a list of ISP dicts;
    a ``None`` in a row leaves that (optional) field out."""
    names = keys.split()
    return [{k: v for k, v in zip(names, row) if v is not None} for row in rows]


def _connections(*addresses: str, **dates: date) -> list[dict[str, Any]]:
    return [{"entity_address": address, **dates} for address in addresses]


_START, _END = date(2026, 11, 1), date(2027, 10, 31)  # the DSO's trading season
_OFFER_A = _rows("start duration power",
                 (69, None, -200_000), (70, 2, -250_000), (72, None, -200_000))
_ORDER_A = _rows("start duration power",  # option A at activation factor 0.80
                 (69, None, -160_000), (70, 2, -200_000), (72, None, -160_000))
_ACCEPTED = {"result": "Accepted"}

# --- what each message says, besides its envelope -------------------------------------------
# Responses get the reference to their request (``flex_offer_message_id`` ...) added from
# MESSAGE_IDS, by the name the schema gives it (pyuftp.message.catalog.reference_key).

CONTENT: dict[str, dict[str, Any]] = {
    "TestMessage": {},
    "TestMessageResponse": {},  # the released schemas give it no Result and no reference
    "DSOPortfolioUpdate": {
        "time_zone": TIME_ZONE,
        "congestion_points": [{
            "entity_address": CONGESTION_POINT,
            "start_period": _START,
            "end_period": _END,
            "mutex_offers_supported": True,
            "day_ahead_redispatch_by": "DSO",
            "intraday_redispatch_by": "AGR",
            "connections": _connections(CONNECTIONS[0], CONNECTIONS[1], CONNECTIONS[3],
                                        start_period=_START, end_period=_END),
        }],
    },
    "DSOPortfolioUpdateResponse": _ACCEPTED,
    "AGRPortfolioUpdate": {
        "time_zone": TIME_ZONE,
        "connections": [
            *_connections(CONNECTIONS[0], CONNECTIONS[1], start_period=_START),
            *_connections(CONNECTIONS[2], start_period=_START, end_period=date(2027, 3, 31)),
        ],
    },
    "AGRPortfolioUpdateResponse": _ACCEPTED,
    "AGRPortfolioQuery": {"time_zone": TIME_ZONE, "period": PERIOD},
    "AGRPortfolioQueryResponse": {
        **_ACCEPTED,
        "time_zone": TIME_ZONE,
        "period": PERIOD,
        "dso_views": [{
            "dso_portfolios": [{
                "dso_domain": DOMAINS["DSO"],
                "congestion_points": [{
                    "entity_address": CONGESTION_POINT,
                    "mutex_offers_supported": True,
                    "day_ahead_redispatch_by": "DSO",
                    "intraday_redispatch_by": "AGR",
                    "connections": _connections(CONNECTIONS[0], CONNECTIONS[1]),
                }],
            }],
            "connections": _connections(CONNECTIONS[2]),  # on no registered congestion point
        }],
    },
    "DSOPortfolioQuery": {"time_zone": TIME_ZONE, "period": PERIOD,
                          "entity_address": CONGESTION_POINT},
    "DSOPortfolioQueryResponse": {
        **_ACCEPTED,
        "time_zone": TIME_ZONE,
        "period": PERIOD,
        "congestion_point": {
            "entity_address": CONGESTION_POINT,
            "connections": [
                *[{"entity_address": c, "agr_domain": DOMAINS["AGR"]} for c in CONNECTIONS[:2]],
                {"entity_address": CONNECTIONS[3]},  # no AGR represents this one
            ],
        },
    },
    "FlexReservationUpdate": {
        **FLEX,
        "contract_id": CONTRACT_ID,
        "reference": "FRU-2026-11-24-01",
        # keep 250 kW of downward flex reserved for the evening peak, release the rest
        "isps": _rows("start duration power", (1, 68, 0), (69, 4, -250_000), (73, 24, 0)),
    },
    "FlexReservationUpdateResponse": _ACCEPTED,
    "FlexRequest": {
        **FLEX,
        "revision": 1,
        "expiration_date_time": datetime(2026, 11, 23, 12, 0, tzinfo=AMSTERDAM_WINTER),
        "contract_id": CONTRACT_ID,
        "service_type": "congestion-management",
        # at least 150 kW less consumption (at most 400 kW) from 17:00 to 18:00, room elsewhere
        "isps": _rows(
            "disposition min_power max_power start duration",
            ("Available", -300_000, 200_000, 1, 68),
            ("Requested", -400_000, -150_000, 69, 2),
            ("Requested", -400_000, -150_000, 71, 2),
            ("Available", -300_000, 250_000, 73, 24),
        ),
    },
    "FlexRequestResponse": _ACCEPTED,
    "FlexOffer": {
        **FLEX,
        "expiration_date_time": datetime(2026, 11, 23, 11, 30, tzinfo=AMSTERDAM_WINTER),
        "unsolicited": False,
        "flex_request_message_id": MESSAGE_IDS["FlexRequest"],
        "contract_id": CONTRACT_ID,
        "d_prognosis_message_id": MESSAGE_IDS["D-Prognosis revision 1"],
        "currency": "EUR",
        "offer_options": [
            {"option_reference": "A", "price": Decimal("180.00"),
             "min_activation_factor": Decimal("0.50"), "isps": _OFFER_A},
            {"option_reference": "B", "price": Decimal("100.00"),
             "isps": _rows("start duration power", (69, 4, -150_000))},
        ],
    },
    "FlexOfferResponse": _ACCEPTED,
    "FlexOrder": {
        **FLEX,
        "unsolicited": False,
        "flex_offer_message_id": MESSAGE_IDS["FlexOffer"],
        "service_type": "congestion-management",
        "contract_id": CONTRACT_ID,
        "d_prognosis_message_id": MESSAGE_IDS["D-Prognosis revision 1"],
        "price": Decimal("144.00"),  # 80 % of option A, ISPs and price alike
        "currency": "EUR",
        "order_reference": ORDER_REFERENCE,
        "option_reference": "A",
        "activation_factor": Decimal("0.80"),
        "isps": _ORDER_A,
    },
    "FlexOrderResponse": _ACCEPTED,
    "FlexOfferRevocation": {"flex_offer_message_id": MESSAGE_IDS["FlexOffer"]},
    "FlexOfferRevocationResponse": {
        "result": "Rejected",
        "rejection_reason": f"FlexOffer {MESSAGE_IDS['FlexOffer']} has already been ordered "
                            f"({ORDER_REFERENCE}); an ordered offer cannot be revoked",
    },
    "D-Prognosis": {
        **FLEX,
        "revision": 2,  # revision 1 was the baseline; this one includes the order
        "isps": _rows("start duration power", (1, 68, 380_000), (69, 3, 560_000),
                      (72, None, 540_000), (73, 24, 410_000)),
    },
    "D-PrognosisResponse": {
        **_ACCEPTED,
        "flex_order_statuses": [
            {"flex_order_message_id": MESSAGE_IDS["FlexOrder"], "is_validated": True},
        ],
    },
    "Metering": {
        "revision": 1,
        "isp_duration": ISP_DURATION,
        "time_zone": TIME_ZONE,
        "period": PERIOD,
        "ean": METER_EAN,
        "profiles": [
            {"profile_type": "Power", "unit": "kW",
             "isps": _rows("start value", (69, Decimal("38.4")), (70, Decimal("36.0")),
                           (71, Decimal("35.2")), (72, Decimal("37.6")))},
            {"profile_type": "ImportEnergy", "unit": "kWh",
             "isps": _rows("start value", (69, Decimal("9.6")), (70, Decimal("9.0")),
                           (71, Decimal("8.8")), (72, Decimal("9.4")))},
        ],
    },
    "MeteringResponse": _ACCEPTED,
    "FlexSettlement": {
        **_ACCEPTED,  # the schema derives FlexSettlement from the response type
        "period_start": date(2026, 11, 1),
        "period_end": date(2026, 11, 30),
        "currency": "EUR",
        "flex_order_settlements": [
            {
                "order_reference": ORDER_REFERENCE,
                "period": PERIOD,
                "contract_id": CONTRACT_ID,
                "d_prognosis_message_id": MESSAGE_IDS["D-Prognosis revision 1"],
                "congestion_point": CONGESTION_POINT,
                "price": Decimal("144.00"),
                "net_settlement": Decimal("144.00"),
                "isps": _rows(
                    "start baseline_power ordered_flex_power actual_power delivered_flex_power",
                    (69, 720_000, -160_000, 555_000, -165_000),
                    (70, 760_000, -200_000, 556_000, -204_000),
                    (71, 760_000, -200_000, 558_000, -202_000),
                    (72, 700_000, -160_000, 536_000, -164_000),
                ),
            },
            {
                "order_reference": EARLIER_ORDER_REFERENCE,
                "period": date(2026, 11, 12),
                "baseline_reference": "BL-CP0042-2026-11-12-r3",
                "congestion_point": CONGESTION_POINT,
                "price": Decimal("95.00"),
                "penalty": Decimal("12.50"),
                "net_settlement": Decimal("82.50"),
                "isps": _rows(
                    "start duration baseline_power ordered_flex_power actual_power "
                    "delivered_flex_power power_deficiency",
                    (70, 2, 690_000, -120_000, 590_000, -100_000, 20_000),
                ),
            },
        ],
        "contract_settlements": [{
            "contract_id": CONTRACT_ID,
            "periods": [{
                "period": PERIOD,
                "isps": _rows(
                    "start duration reserved_power requested_power available_power "
                    "offered_power ordered_power",
                    (69, None, -250_000, -150_000, -400_000, -200_000, -160_000),
                    (70, 2, -250_000, -150_000, -400_000, -250_000, -200_000),
                    (72, None, -250_000, -150_000, -400_000, -200_000, -160_000),
                ),
            }],
        }],
    },
    "FlexSettlementResponse": {
        **_ACCEPTED,
        "flex_order_settlement_statuses": [
            {"order_reference": ORDER_REFERENCE, "disposition": "Accepted"},
            {"order_reference": EARLIER_ORDER_REFERENCE, "disposition": "Disputed",
             "dispute_reason": "Our meter data shows the full 120 kW delivered in ISPs "
                               "70-71, so no penalty is due"},
        ],
    },
}
