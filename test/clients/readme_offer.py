"""The FlexOffer of the README's "Sending and receiving" example (an unsolicited offer)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyuftp.types.payloads import FlexOfferPayload


def offer(currency: str = "EUR") -> FlexOfferPayload:
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "isp_duration": dt.timedelta(minutes=15),
        "time_zone": "Europe/Amsterdam",
        "period": (now + dt.timedelta(days=1)).date(),
        "congestion_point": "ean.871685900012636543",
        "expiration_date_time": now + dt.timedelta(hours=2),
        "unsolicited": True,
        "currency": currency,
        "offer_options": [{"option_reference": "A", "price": Decimal("12.50"),
                           "isps": [{"power": 250_000, "start": 69, "duration": 4}]}],
    }
