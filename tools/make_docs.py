"""Write docs/representations.rst, the reference of every message's XML and dict, from the code.

    python tools/make_docs.py          # rewrite docs/representations.rst
    python tools/make_docs.py --check  # exit 1 if the committed page differs from the code

Every example on the page is rendered by ``pyuftp.create_message`` from
``pyuftp.examples.example`` and every dict is what ``pyuftp.parse_message`` makes of that XML,
so the page shows what the code does, not what someone remembered it to do. The differences
between versions are read from the field-type table (``pyuftp/catalog.py``).
"""
from __future__ import annotations

import pprint
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyuftp import create_message, parse_message  # noqa: E402
from pyuftp.catalog import DEFAULT_VERSION, MESSAGE_TYPES, MESSAGES, Node  # noqa: E402
from pyuftp.examples import example  # noqa: E402

PAGE = ROOT / "docs" / "representations.rst"
COMMAND = "python tools/make_docs.py"

# What each message is for: who sends it to whom, why, and what answers it.
ROLES = {
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

INTRO = """\
.. This page is generated by tools/make_docs.py from pyuftp's code: do not edit it by hand.

.. _representations:

=======================
Payload representations
=======================

pyuftp represents every UFTP message as a plain Python dict, so that a message can be written
as one literal and read without walking an XML tree. This page is the reference for those
dicts: for each of the {count} message types it shows a real XML payload and the dict that
pyuftp makes of it, side by side. The page is generated from the code
(``{command}``), so it shows what pyuftp actually does.

All payloads are checked before they are sent: :func:`pyuftp.create_message` refuses a dict that
does not fit the message type, with an error that names the field in dict terms (for example
``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``), and validates the XML
it renders against the schema of the UFTP version.

The representation follows a few rules:

- A message is the pair ``(message_type, payload)``. The message type is the name of the XML
  root element, unchanged: ``'FlexOffer'``, ``'D-Prognosis'``, ``'AGRPortfolioQuery'``.
  :func:`pyuftp.parse_message` returns this pair; :func:`pyuftp.create_message` takes it.

- Attribute and element names become snake_case keys: ``MessageID`` becomes ``message_id``,
  ``ISP-Duration`` becomes ``isp_duration``, ``D-PrognosisMessageID`` becomes
  ``d_prognosis_message_id`` and ``AGR-Domain`` becomes ``agr_domain``.

- A child element that may occur more than once becomes a list under the plural key, even when
  the XML holds just one: ``ISP`` elements are the list ``isps``, ``OfferOption`` elements
  ``offer_options``, ``FlexOrderStatus`` elements ``flex_order_statuses``. A child element that
  occurs at most once becomes a dict under the singular key, like the ``congestion_point`` of a
  :ref:`DSOPortfolioQueryResponse`.

- Values get the Python type that fits them:

  - date-times (``TimeStamp``, ``ExpirationDateTime``) are timezone-aware
    ``datetime.datetime`` objects. A naive datetime is refused when creating a message, and a
    date-time without UTC offset in received XML is refused when parsing;
  - days (``Period``, ``StartPeriod``, ``PeriodEnd``) are ``datetime.date``;
  - durations (``ISP-Duration``) are ``datetime.timedelta``;
  - prices, amounts, activation factors and metered values are ``decimal.Decimal``;
  - power in watts, ISP numbers, durations counted in ISPs and revisions are ``int``;
  - booleans (``Unsolicited``, ``MutexOffersSupported``) are ``bool``;
  - everything else is ``str``: ids, domains, entity addresses, currencies and enumerated
    values such as ``'Accepted'``, ``'Requested'`` or ``'AGR'``.

- The metadata attributes are ordinary keys of the payload: ``version``, ``sender_domain``,
  ``recipient_domain``, ``time_stamp``, ``message_id`` and ``conversation_id``. When creating a
  message, ``version`` (3.1.0 unless asked otherwise), ``message_id`` and ``conversation_id``
  (new UUIDs) and ``time_stamp`` (the current time in UTC) are filled in if the payload leaves
  them out; the sender and recipient domains must be given.

- An optional attribute that is absent from the XML is absent from the dict: nothing is
  invented, and no schema default is filled in. When creating a message, leaving a key out
  and giving it the value ``None`` both mean "absent".

- Parsing the XML that pyuftp rendered gives back the dict it was rendered from, for every
  message type and every supported version.

The examples come from :mod:`pyuftp.examples` (``example('FlexOffer')`` returns a fresh copy
of the payload; ``python -m pyuftp example FlexOffer`` prints both forms). They use UFTP
{version} and tell one story between ``dso.example.com``, ``agr.example.com`` and
``cro.example.com``: the DSO and the AGR register their portfolios with the CRO; on
23 November 2026 the DSO expects congestion on congestion point ``cp-utrecht-0042`` in the
evening peak of the next day (ISPs 69 to 72, 17:00 to 18:00 in Europe/Amsterdam) and requests
flexibility; the AGR offers two options, the DSO orders 80 % of option A, and the AGR sends a
new D-Prognosis that includes the order; in December the DSO settles the month. Each response
names the message it answers and shares its ``conversation_id``. ISP lists are kept short with
``duration``, which covers a run of ISPs.

The messages follow in alphabetical order; what differs in version 3.0.0 is listed
:ref:`at the end <representations-3.0.0>`.
"""

OUTRO_HEAD = """\
.. _representations-3.0.0:

Differences in version 3.0.0
============================

pyuftp also speaks UFTP 3.0.0: pass ``version='3.0.0'`` to :func:`pyuftp.create_message`
(the XML then says ``Version="3.0.0"``), and :func:`pyuftp.parse_message` reads the version
from the XML. The dicts follow the same rules; these fields differ from 3.1.0:
"""


assert set(ROLES) == set(MESSAGE_TYPES), "every message type needs a role description"


def _fill(text: str, indent: str = "") -> str:
    # Never break inside a word or at a hyphen: RST roles and literals must stay whole.
    return textwrap.fill(text, width=96, initial_indent=indent,
                         subsequent_indent=" " * len(indent),
                         break_on_hyphens=False, break_long_words=False)


def _code(language: str, text: str) -> str:
    return f".. code-block:: {language}\n\n{textwrap.indent(text, '   ')}\n"


def section(message_type: str) -> str:
    """The page section of one message type: label, title, role, XML and dict."""
    xml = create_message(message_type, example(message_type, DEFAULT_VERSION),
                         version=DEFAULT_VERSION)
    parsed_type, payload = parse_message(xml)
    assert parsed_type == message_type
    return "\n".join([
        f".. _{message_type}:",
        "",
        message_type,
        "=" * len(message_type),
        "",
        _fill(ROLES[message_type]),
        "",
        "XML payload:",
        "",
        _code("xml", xml.rstrip("\n")),
        f"pyuftp representation (``message_type == {message_type!r}``):",
        "",
        _code("python3", pprint.pformat(payload, width=100, sort_dicts=True)),
    ])


def _differences(new: Node, old: Node, path: str) -> list[str]:
    """How ``old`` (3.0.0) differs from ``new`` (3.1.0), one bullet text per field."""
    lines = []
    old_attrs = {a.xml: a for a in old.attrs}
    new_attrs = {a.xml: a for a in new.attrs}
    for xml_name, attr in new_attrs.items():
        before = old_attrs.get(xml_name)
        where = f"``{path}{attr.key}`` (``{xml_name}``)"
        if before is None:
            lines.append(f"{where} does not exist in 3.0.0.")
        elif before.required != attr.required:
            lines.append(f"{where} is {'required' if before.required else 'optional'} in "
                         f"3.0.0, {'required' if attr.required else 'optional'} in 3.1.0.")
    for xml_name, attr in old_attrs.items():
        if xml_name not in new_attrs:
            lines.append(f"``{path}{attr.key}`` (``{xml_name}``) exists only in 3.0.0.")
    old_children = {c.xml: c for c in old.children}
    new_children = {c.xml: c for c in new.children}
    for xml_name, child in new_children.items():
        before = old_children.get(xml_name)
        item = f"{path}{child.key}{'[i]' if child.many else ''}."
        if before is None:
            lines.append(f"``{path}{child.key}`` (``{xml_name}``) does not exist in 3.0.0.")
        elif (before.min, before.max) != (child.min, child.max):
            lines.append(f"``{path}{child.key}`` (``{xml_name}``) occurs {before.min} to "
                         f"{before.max or 'any number of'} times in 3.0.0.")
        else:
            lines += _differences(child.node, before.node, item)
    for xml_name, child in old_children.items():
        if xml_name not in new_children:
            lines.append(f"``{path}{child.key}`` (``{xml_name}``) exists only in 3.0.0.")
    return lines


def version_section() -> str:
    bullets = []
    for message_type in MESSAGE_TYPES:
        new, old = MESSAGES["3.1.0"][message_type], MESSAGES["3.0.0"].get(message_type)
        if old is None:
            bullets.append(_fill(f":ref:`{message_type}` does not exist in 3.0.0.", "- "))
            continue
        for text in _differences(new, old, ""):
            bullets.append(_fill(f":ref:`{message_type}`: {text}", "- "))
    for message_type in sorted(set(MESSAGES["3.0.0"]) - set(MESSAGES["3.1.0"])):
        bullets.append(_fill(f"``{message_type}`` exists only in 3.0.0.", "- "))
    tail = _fill(
        "All other message types are the same in both versions. "
        "With ``version='3.0.0'``, :func:`pyuftp.examples.example` gives the 3.0.0 form of "
        "each example: the same dict, less the fields that 3.0.0 lacks."
    )
    return OUTRO_HEAD + "\n" + "\n".join(bullets) + "\n\n" + tail + "\n"


RECEIVING = """
.. _receiving:

Receiving from other implementations
====================================

pyuftp writes exactly what the official schemas allow. When it reads, it validates just as
strictly, with a few harmless exceptions, because rejecting a real counterpart's message over
a formality helps nobody:

- White space around attribute values is trimmed (some peers pad them).
- Date-times may end in ``Z`` or carry more than six decimals of a second (kept to the
  microsecond); a date-time without a UTC offset is refused, never guessed.
- An XML declaration is welcome; a DOCTYPE is refused, and entities are never expanded.
- A patch version (``3.1.2``) is read with the schema of its minor version (3.1.0); the
  ``version`` in the dict stays as sent.
- ``shapeshifter-uftp`` 2.4.0, the most used Python peer, writes two things the official
  schemas do not allow. pyuftp reads both and keeps them in the dict, but never writes them:

  - a ``Result`` (and ``RejectionReason``) on :ref:`TestMessageResponse`, which then appear as
    ``result`` and ``rejection_reason``;
  - the full 18-digit EAN in :ref:`Metering` (``E`` and 18 digits, where the schemas say 16).

  It also asks a :ref:`FlexOffer` for ``flex_request_message_id`` unless ``unsolicited`` is
  true, in 3.0.0 as well; give one when sending to it.
"""


def render_page() -> str:
    """The full text of docs/representations.rst."""
    parts = [INTRO.format(count=len(MESSAGE_TYPES), command=COMMAND, version=DEFAULT_VERSION)]
    parts += [section(message_type) for message_type in sorted(MESSAGE_TYPES)]
    parts.append(version_section())
    parts.append(RECEIVING)
    return "\n".join(parts)


def is_current(path: Path | None = None) -> bool:
    """True if the page at ``path`` (default: the committed page) is exactly what the code
    generates now."""
    path = PAGE if path is None else path
    return path.is_file() and path.read_text(encoding="utf-8") == render_page()


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if is_current(PAGE):
            return 0
        print(f"{_shown(PAGE)} is out of date with the code; regenerate it with:\n"
              f"    {COMMAND}")
        return 1
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render_page(), encoding="utf-8", newline="\n")
    print(f"wrote {_shown(PAGE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
