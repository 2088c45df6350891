"""An optional JSON log formatter, for log shippers (Loki, Elasticsearch, CloudWatch …).

    import logging
    from pyuftp.logs import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger("pyuftp").addHandler(handler)

Each record becomes one JSON object on one line::

    {"time":"2026-05-01T07:00:01.250Z","level":"WARNING","logger":"pyuftp.receiving.inbox",
     "message":"...","message_type":"FlexOffer","message_id":"...","counterparty":"..."}

``message_type``, ``message_id``, ``conversation_id`` and ``counterparty`` are added when the
record carries them (pyuftp's log calls pass them as ``extra``; so can yours, with
``extra=about(received)``: :func:`about` makes them from a message), so that one
query follows a conversation. Every value is cut to a bound and the line is pure ASCII JSON:
a newline or control character a peer put into a field is escaped, never written raw, so
nobody can forge a line or fill the disk through it.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from typing import Any

from .exceptions import About, about

__all__ = ["JsonFormatter", "MESSAGE_FIELDS", "about", "About"]

#: the fields about a message that a record may carry, in the order written
MESSAGE_FIELDS = ("message_type", "message_id", "conversation_id", "counterparty")


def _bounded(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring).

    :param max_length: the most characters of any one value (the message, a field); the
        traceback of an exception gets four times as many.
    :param fields: more record attributes to write when present (e.g. ``("sender_domain",)``),
        after ``MESSAGE_FIELDS``.
    """

    def __init__(self, max_length: int = 2000, fields: Iterable[str] = ()) -> None:
        super().__init__()
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 20:
            raise ValueError(f"max_length must be an int of 20 or more, not {max_length!r}")
        self.max_length = max_length
        self.fields = MESSAGE_FIELDS + tuple(f for f in fields if f not in MESSAGE_FIELDS)

    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _bounded(record.getMessage(), self.max_length),
        }
        for name in self.fields:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = _bounded(value, self.max_length)
        if record.exc_info:
            line["exception"] = _bounded(self.formatException(record.exc_info),
                                         4 * self.max_length)
        elif record.exc_text:
            line["exception"] = _bounded(record.exc_text, 4 * self.max_length)
        # ensure_ascii: every non-ASCII and control character escaped; one record, one line
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"))
