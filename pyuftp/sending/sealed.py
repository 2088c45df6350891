"""A message sealed for one recipient and not sent yet: what sealing makes and sending takes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sealed:
    """A message sealed for one recipient, not sent yet: what
    :meth:`Courier.seal <pyuftp.sending.delivery.Courier.seal>` makes and
    :meth:`Courier.send <pyuftp.sending.delivery.Courier.send>` takes."""

    data: bytes               # the SignedMessage envelope, exactly as it will be POSTed
    payload: dict[str, Any]   # the payload as sent, metadata filled in
    xml: bytes                # the payload's XML (signed inside ``data``)
    message_type: str
    recipient_domain: str
    recipient_role: str


__all__ = ["Sealed"]
