"""The public functions on messages: dict to XML and back, with the business rules.

:func:`create_message` is the message layer's, plus the stateless business rules
(:mod:`pyuftp.rules`) on by default; the message layer itself knows no rules.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .message.codec import build_message, check_payload, parse_message
from .rules import Rules
from .rules.enforce import enforcer

__all__ = ["create_message", "parse_message", "check_payload"]


def create_message(message_type: str, payload: Mapping[str, Any], version: str | None = None,
                   *, validate_output: bool = False, rules: Rules | bool | None = None,
                   dialect: str | None = None) -> str:
    """Render ``payload`` as the XML of a UFTP ``message_type`` message.

    ``version`` defaults to the payload's own ``version``, else 3.1.0; the two may not differ.
    The payload is checked against the field-type table first (errors name the field, e.g.
    ``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``), so nothing
    invalid leaves this call. Then the stateless business rules (:mod:`pyuftp.rules`) are
    checked, as of the message's ``time_stamp``: a payload that breaks any raises one
    :class:`~pyuftp.exceptions.RuleViolation` naming them all. ``rules=False`` skips them; a
    :class:`~pyuftp.rules.Rules` uses that rule set. ``validate_output=True`` also validates
    the XML against pyuftp's schema of the version. ``dialect="java"`` writes what that
    counterparty's software accepts where it differs from the official schemas (see
    :data:`pyuftp.message.catalog.DIALECTS`).
    """
    return build_message(message_type, payload, version, validate_output=validate_output,
                         enforce=enforcer(rules), dialect=dialect)[0]
