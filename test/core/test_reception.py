"""The order of steps for one received request, as the core decides it (#17.3): a sync
state machine walked here with values only: no event loop, no socket (the receiving layer's
driver is tested in test/receiving/)."""
from __future__ import annotations

import ast
import datetime as dt
import pathlib
import uuid

import pytest

import pyuftp
from pyuftp.core.decisions import (Accept, Admit, Answer, AwaitRules, CheckRules, Done, Drop,
                                   Handle, MarkHandled, Record, Refuse)
from pyuftp.core.exchange import Exchange, Waiting
from pyuftp.core.reception import STORE_RETRY, AnsweredMemory, Reception
from pyuftp.exceptions import MessageError, StoreError
from pyuftp.rules import Rules
from pyuftp.signing.envelope import open_envelope, seal_message
from pyuftp.store import MemoryStore
from pyuftp.store.archiving import StoreLookups

from conftest import fresh

AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)
CORE = pathlib.Path(pyuftp.__file__).parent / "core"


def exchange(**options) -> Exchange:
    return Exchange("dso.example.com", "DSO", clock=lambda: NOW.timestamp(), **options)


def reception(message_type: str = "FlexOffer", key: str = AGR_PUBLIC, memory=None,
              waiting=None, **options) -> Reception:
    payload = fresh(message_type, sender_domain="agr.example.com",
                    recipient_domain="dso.example.com", time_stamp=NOW)
    data = seal_message(message_type, payload, AGR_KEY, "AGR")[0]
    core = exchange(**options)
    verdict = core.judge(open_envelope(data), key, data)
    return Reception(core, verdict, memory or AnsweredMemory(), waiting or {})


def accepted(r: Reception) -> Reception:
    assert isinstance(r.start(), Admit)
    step = r.admitted(True)
    assert isinstance(step, Record) and step.message_id == r.received.message_id
    assert step.entry.message_type == r.received.message_type
    assert isinstance(r.recorded("new"), Accept)
    return r


def test_the_core_has_no_async_code_and_imports_no_event_loop():
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [node.name for node in ast.walk(tree) if isinstance(node, ast.AsyncFunctionDef)]
        found += [f"await at line {node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith))]
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not found, f"{path.name}: {found}"
        assert not {"asyncio", "aiohttp", "socket"} & imported, f"{path.name}: {imported}"
    assert len(list(CORE.glob("*.py"))) >= 4  # the check read the core's modules


def test_a_good_request_runs_every_step_in_order_and_is_answered_once():
    store = MemoryStore()
    r = accepted(reception())
    assert isinstance(r.begin(), CheckRules)
    step = r.check_rules(StoreLookups(store))
    assert isinstance(step, Handle) and step.settles is None and step.note is None
    answer = r.handled({"result": "Accepted"})
    assert isinstance(answer, Answer) and answer.message_type == "FlexOfferResponse"
    assert answer.answers == ("agr.example.com", r.received.message_id)
    assert answer.payload["flex_offer_message_id"] == r.received.message_id
    assert answer.outcome == ("Accepted", None)
    assert isinstance(r.answered(), Done)
    assert isinstance(r.finish(), Done)  # the answer marked it handled, in its transaction


def test_a_refused_request_goes_no_further():
    r = reception(key=None)
    step = r.start()
    assert isinstance(step, Refuse) and step.status == 419 and step.retry_after is None


def test_no_admission_slot_in_time_is_a_503_with_retry_after():
    r = reception()
    assert isinstance(r.start(), Admit)
    step = r.admitted(False)
    assert isinstance(step, Refuse) and (step.status, step.retry_after) == (503, 1)


@pytest.mark.parametrize("error", [StoreError("disk full"), RuntimeError("bug")])
def test_a_store_that_cannot_record_is_a_503_while_it_lasts(error):
    r = reception()
    r.start(), r.admitted(True)
    step = r.recorded(error=error)
    assert isinstance(step, Refuse) and step.status == 503
    assert step.retry_after == STORE_RETRY and type(error).__name__ in step.text


def test_a_resend_is_dropped_and_a_reused_id_answered_rejected_once():
    memory = AnsweredMemory()
    r = reception(memory=memory)
    r.start(), r.admitted(True)
    assert isinstance(r.recorded("duplicate"), Drop)
    first = reception(memory=memory)
    first.start(), first.admitted(True)
    assert isinstance(first.recorded("conflict"), Accept)
    assert first.problems[0].startswith("duplicate message id") and not first.record
    answer = first.begin()
    assert isinstance(answer, Answer) and answer.answers is None  # not recorded: not marked
    assert answer.payload["result"] == "Rejected"
    again = Reception(first.exchange, first.verdict, memory, {})
    again.start(), again.admitted(True)
    assert isinstance(again.recorded("conflict"), Drop)  # the same bytes: answered before


def test_a_sender_mismatch_is_answered_unrecorded_and_its_replay_dropped():
    payload = fresh("FlexOffer", sender_domain="agr.example.com",
                    recipient_domain="dso.example.com", time_stamp=NOW)
    data = seal_message("FlexOffer", payload, AGR_KEY, "AGR")[0]
    forged = data.replace(b'SenderDomain="agr.example.com"', b'SenderDomain="agr2.example.com"')
    core, memory = exchange(), AnsweredMemory()
    verdict = core.judge(open_envelope(forged), AGR_PUBLIC, forged)
    assert verdict.accepted and not verdict.record
    r = Reception(core, verdict, memory, {})
    assert isinstance(r.start(), Admit)
    assert isinstance(r.admitted(True), Accept)
    assert isinstance(r.begin(), Answer)
    assert isinstance(Reception(core, verdict, memory, {}).start(), Drop)


def test_problems_of_the_rules_are_answered_rejected_and_a_failing_store_too():
    rules = Rules(rules=[])

    @rules.rule("offer.never", ["FlexOffer"], "no offers")
    def never(ctx):
        return ["no offers, please"]
    r = accepted(reception(rules=rules))
    step = r.check_rules(None)
    assert isinstance(step, Answer) and "no offers, please" in step.payload["rejection_reason"]

    class Broken:
        def find(self, *args, **kwargs):
            raise StoreError("the archive is gone")

    lookups_rules = Rules(rules=[])

    @lookups_rules.rule("offer.looks", ["FlexOffer"], "looks up", stateful=True)
    def looks(ctx):
        return ["found"] if ctx.lookups.find("x", "y") else []
    r = accepted(reception(rules=lookups_rules))
    step = r.check_rules(Broken())
    assert isinstance(step, Answer)
    assert step.payload["rejection_reason"] == "rules could not be checked: StoreError"


def test_an_async_rule_of_the_users_is_left_to_the_driver():
    rules = Rules(rules=[])

    @rules.rule("offer.later", ["FlexOffer"], "awaits")
    async def later(ctx):
        return []
    r = accepted(reception(rules=rules))
    step = r.check_rules(None)
    assert isinstance(step, AwaitRules) and step.rules is rules
    assert isinstance(r.rules_awaited(["too late"]), Answer)


def test_a_handler_that_raises_is_answered_and_an_unsendable_answer_replaced_once():
    r = accepted(reception(rules=False))
    assert isinstance(r.begin(), Handle)
    step = r.handled(RuntimeError("boom"))
    assert step.payload["rejection_reason"] == "processing failed: RuntimeError"
    fallback = r.unsendable(MessageError("no"))
    assert isinstance(fallback, Answer) and fallback.payload["result"] == "Rejected"
    assert isinstance(r.unsendable(MessageError("no")), Done)  # once only
    assert isinstance(r.finish(), MarkHandled)  # never answered: marked handled anyway


def test_a_response_settles_our_request_and_notes_its_outcome():
    core = Exchange("agr.example.com", "AGR", clock=lambda: NOW.timestamp(), rules=False)
    request_id, conversation = (str(uuid.uuid4()) for _ in range(2))
    waiting = {request_id: Waiting("FlexOffer", request_id, conversation, "dso.example.com",
                                   "DSO")}
    dso_key, dso_public = pyuftp.generate_keypair()
    payload = fresh("FlexOfferResponse", sender_domain="dso.example.com",
                    recipient_domain="agr.example.com", time_stamp=NOW,
                    conversation_id=conversation, flex_offer_message_id=request_id,
                    result="Rejected", rejection_reason="too dear")
    data = seal_message("FlexOfferResponse", payload, dso_key, "DSO")[0]
    r = Reception(core, core.judge(open_envelope(data), dso_public, data), AnsweredMemory(),
                  waiting)
    accepted(r)
    step = r.begin()
    assert isinstance(step, Handle) and step.settles == request_id
    assert step.note == ("out", "dso.example.com", request_id, "Rejected", "too dear")
    assert isinstance(r.handled(found=False), Done)  # a response is not answered
    assert isinstance(r.finish(), MarkHandled)


def test_a_failure_handing_the_answer_over_ends_the_reception_without_a_loop():
    r = accepted(reception(rules=False))
    r.begin()
    assert isinstance(r.failed(RuntimeError("note failed")), Answer)  # answered with it
    assert isinstance(r.failed(StoreError("queue failed")), Done)  # not a second answer
    assert isinstance(r.finish(), MarkHandled)
