"""The exchange core without sockets: every HTTP status, every functional rejection, the
response to a request, and which waiting request a response settles."""
from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

import pyuftp
from pyuftp.signing.envelope import Received, open_envelope, seal_message, wrap
from pyuftp.exceptions import MalformedXML, Rejected
from pyuftp.core.decisions import Accept, Admit, Drop, Record
from pyuftp.core.exchange import MAX_REASON, Exchange, Waiting
from pyuftp.core.reception import AnsweredMemory, Reception

from conftest import fresh

AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)


def exchange(**options) -> Exchange:
    return Exchange("dso.example.com", "DSO", clock=lambda: NOW.timestamp(), **options)


def sealed(message_type: str = "FlexOffer", key: str = AGR_KEY, role: str = "AGR",
           **fields) -> bytes:
    fields.setdefault("time_stamp", NOW)
    payload = fresh(message_type, sender_domain="agr.example.com",
                    recipient_domain="dso.example.com", **fields)
    if fields.get("version") == "3.0.0":
        payload.pop("unsolicited", None)
    return seal_message(message_type, payload, key, role)[0]


def judge(data: bytes, key=AGR_PUBLIC, **options):
    return exchange(**options).judge(open_envelope(data), key, data)


# --- HTTP status codes -----------------------------------------------------------------------


@pytest.mark.parametrize("content_type,charset,length,status", [
    ("text/html", None, 10, 400),
    (None, None, 10, 400),
    ("text/xml", "latin-1", 10, 400),
    ("text/xml", "utf-8", None, 411),
    ("text/xml", "utf-8", 4 * 1024 * 1024 + 1, 413),
])
def test_bad_heads_are_refused_with_their_status(content_type, charset, length, status):
    refused = exchange().check_head(content_type, charset, length)
    assert refused is not None and refused.http_status == status


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml"])
def test_good_heads_pass(content_type):
    assert exchange().check_head(content_type, "UTF-8", 100) is None
    assert exchange(max_body=10).check_head(content_type, None, 11).http_status == 413


def test_200_for_a_verified_message():
    verdict = judge(sealed())
    assert (verdict.status, verdict.problems, verdict.record) == (200, (), True)
    assert verdict.received.message_type == "FlexOffer"


def test_400_for_an_unparsable_envelope():
    with pytest.raises(MalformedXML) as caught:
        exchange().open(b"<SignedMessage")
    assert caught.value.http_status == 400


def test_400_for_an_invalid_inner_message():
    bad = wrap(b"<FlexOffer/>", AGR_KEY, "agr.example.com", "AGR")
    verdict = judge(bad)
    assert verdict.status == 400 and verdict.text.startswith("invalid message:")


def test_401_for_a_signature_by_another_key():
    verdict = judge(sealed(key=DSO_KEY))
    assert verdict.status == 401


def test_419_when_no_key_is_found():
    verdict = judge(sealed(), key=None)
    assert verdict.status == 419 and "agr.example.com (AGR)" in verdict.text


def test_419_for_an_unusable_key_without_quoting_it():
    verdict = judge(sealed(), key="not a key at all")
    assert verdict.status == 419 and "not a key" not in verdict.text


def test_sender_mismatch_is_answered_but_not_recorded():
    xml = pyuftp.create_message("TestMessage", fresh(
        "TestMessage", sender_domain="other.example.com", recipient_domain="dso.example.com",
        time_stamp=NOW))
    verdict = judge(wrap(xml, AGR_KEY, "agr.example.com", "AGR"))
    assert verdict.status == 200 and not verdict.record
    assert "other.example.com" in verdict.problems[0]


# --- functional rejections -------------------------------------------------------------------


def test_a_type_the_role_does_not_receive():
    verdict = judge(sealed("FlexRequest"))  # a DSO sends FlexRequests, never receives them
    assert verdict.problems == ("a DSO does not accept FlexRequest messages",)


def test_a_type_from_the_wrong_role():
    verdict = judge(sealed("FlexOffer", role="CRO"))
    assert verdict.problems == ("a CRO may not send FlexOffer to a DSO",)


def test_not_addressed_to_us():
    payload = fresh("FlexOffer", sender_domain="agr.example.com",
                    recipient_domain="elsewhere.example.com", time_stamp=NOW)
    verdict = judge(seal_message("FlexOffer", payload, AGR_KEY, "AGR")[0])
    assert verdict.problems == ("addressed to elsewhere.example.com, not to dso.example.com",)


@pytest.mark.parametrize("offset,problem", [
    (dt.timedelta(hours=-25), "is older than 86400 s"),
    (dt.timedelta(minutes=6), "is in the future"),
])
def test_outside_the_time_window(offset, problem):
    data = sealed(time_stamp=NOW + offset)
    verdict = judge(data)
    assert len(verdict.problems) == 1 and problem in verdict.problems[0]
    assert judge(sealed(time_stamp=NOW + offset / 10)).problems == ()


def test_all_problems_are_reported_together():
    payload = fresh("FlexOffer", sender_domain="agr.example.com",
                    recipient_domain="elsewhere.example.com",
                    time_stamp=NOW - dt.timedelta(days=2))
    verdict = judge(seal_message("FlexOffer", payload, AGR_KEY, "CRO")[0])
    assert len(verdict.problems) == 3


@pytest.mark.parametrize("result,decision", [
    ("new", None), ("duplicate", "drop"), ("conflict", "duplicate message id")])
def test_what_the_journal_says(result, decision):
    # The core's reception takes the journal's answer and says what follows (#17): handle
    # it (no problem), drop it (a resend), or answer it Rejected for this reason.
    reception = Reception(exchange(), judge(sealed()), AnsweredMemory(), {})
    assert isinstance(reception.start(), Admit)
    assert isinstance(reception.admitted(True), Record)
    step = reception.recorded(result)
    found = ("drop" if isinstance(step, Drop) else
             reception.problems[0] if reception.problems else None)
    assert isinstance(step, (Accept, Drop))
    assert found == decision or (decision and found.startswith(decision))


# --- responses -------------------------------------------------------------------------------


def received(message_type: str = "FlexOffer", **fields) -> Received:
    return judge(sealed(message_type, **fields)).received


def test_a_response_names_its_request_and_conversation():
    request = received()
    answer, payload = exchange().response(request, {"result": "Accepted"})
    assert answer == "FlexOfferResponse"
    assert payload["flex_offer_message_id"] == request.payload["message_id"]
    assert payload["conversation_id"] == request.payload["conversation_id"]
    assert (payload["sender_domain"], payload["recipient_domain"]) == (
        "dso.example.com", "agr.example.com")
    assert payload["version"] == request.payload["version"]
    pyuftp.create_message(answer, payload)  # and it is a valid message


def test_the_response_id_is_the_same_for_the_same_request():
    request = received()
    first = exchange().response(request, {"result": "Accepted"})[1]["message_id"]
    again = exchange().response(request, {"result": "Rejected"})[1]["message_id"]
    other = exchange().response(received(), {"result": "Accepted"})[1]["message_id"]
    assert first == again != other
    uuid.UUID(first)


def test_a_response_answers_in_the_version_of_the_request():
    request = received("FlexOffer", version="3.0.0")
    answer, payload = Exchange("dso.example.com", "DSO", version="3.1.0",
                               clock=lambda: NOW.timestamp()).response(request, {"result": "Accepted"})
    assert payload["version"] == "3.0.0"


def test_a_query_response_copies_the_shared_fields():
    query = judge(sealed("DSOPortfolioQuery", role="DSO"), key=AGR_PUBLIC,
                  ).received  # judged as if by anyone: only the response shape matters here
    cro = Exchange("cro.example.com", "CRO", clock=lambda: NOW.timestamp())
    answer, payload = cro.response(query, {"result": "Accepted"})
    assert payload["period"] == query.payload["period"]
    assert payload["time_zone"] == query.payload["time_zone"]


def test_test_message_response_has_no_result():
    answer, payload = exchange().response(received("TestMessage"), {"result": "Accepted"})
    assert answer == "TestMessageResponse" and "result" not in payload


def test_a_response_is_not_answered():
    assert exchange().response(received("FlexRequestResponse"), {"result": "Accepted"}) is None


@pytest.mark.parametrize("outcome,result,reason", [
    (None, "Accepted", None),
    ({"result": "Rejected", "rejection_reason": "no"}, "Rejected", "no"),
    (Rejected("too late"), "Rejected", "too late"),
    (RuntimeError("boom"), "Rejected", "processing failed: RuntimeError"),
])
def test_handler_outcomes(outcome, result, reason):
    fields = exchange().outcome(received(), outcome)
    assert fields["result"] == result and fields.get("rejection_reason") == reason


def test_no_handler_rejects_a_request_but_answers_a_test_message():
    assert exchange().outcome(received(), handled=False)["result"] == "Rejected"
    assert exchange().outcome(received("TestMessage"), handled=False) == {"result": "Accepted"}
    assert exchange().outcome(received("FlexRequestResponse"), handled=False) is None


def test_a_long_rejection_reason_is_cut():
    fields = exchange().rejection(["x" * 3000, "y"])
    payload = exchange().response(received(), fields)[1]
    assert len(payload["rejection_reason"]) == MAX_REASON


# --- which waiting request a response settles -------------------------------------------------


def agr_exchange() -> Exchange:
    return Exchange("agr.example.com", "AGR", clock=lambda: NOW.timestamp())


def response_from(domain: str, key: str, request_id: str, conversation: str,
                  message_type: str = "FlexOfferResponse") -> Received:
    fields = {"conversation_id": conversation}
    if message_type == "FlexOfferResponse":
        fields.update(result="Accepted", flex_offer_message_id=request_id)
    payload = fresh(message_type, sender_domain=domain, recipient_domain="agr.example.com",
                    time_stamp=NOW, **fields)
    data = seal_message(message_type, payload, key, "DSO")[0]
    public = DSO_PUBLIC if key == DSO_KEY else AGR_PUBLIC
    return agr_exchange().judge(open_envelope(data), public, data).received


def waiting(message_type: str = "FlexOffer") -> dict[str, Waiting]:
    request_id, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    return {request_id: Waiting(message_type, request_id, conversation, "dso.example.com", "DSO")}


def test_the_asked_party_settles_its_request():
    asked = waiting()
    (request_id, entry), = asked.items()
    response = response_from("dso.example.com", DSO_KEY, request_id, entry.conversation_id)
    assert agr_exchange().settles(response, asked) == request_id


def test_another_party_cannot_settle_it():
    # The reply-spoofing hole: a known DSO answering a request sent to another DSO.
    asked = waiting()
    (request_id, entry), = asked.items()
    spoof = response_from("dso2.example.com", DSO_KEY, request_id, entry.conversation_id)
    assert agr_exchange().settles(spoof, asked) is None


def test_another_conversation_cannot_settle_it():
    asked = waiting()
    (request_id, _), = asked.items()
    response = response_from("dso.example.com", DSO_KEY, request_id, str(uuid.uuid4()))
    assert agr_exchange().settles(response, asked) is None


def test_a_test_message_response_settles_by_conversation():
    asked = waiting("TestMessage")
    (request_id, entry), = asked.items()
    response = response_from("dso.example.com", DSO_KEY, request_id, entry.conversation_id,
                             "TestMessageResponse")
    assert agr_exchange().settles(response, asked) == request_id
    assert agr_exchange().settles(response, waiting("TestMessage")) is None


def test_a_request_settles_nothing():
    assert agr_exchange().settles(received("TestMessage"), waiting()) is None


def test_envelope_body_is_base64_of_signature_and_xml():
    data = sealed("TestMessage")
    envelope = open_envelope(data)
    assert base64.b64encode(envelope.sealed).decode() in data.decode()
