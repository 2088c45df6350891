"""A scriptable counterparty: a pyuftp service that behaves by a
:class:`~pyuftp.conformance.scenario.Scenario` (``pyuftp simulate``).

    simulator = Simulator(load("dso.toml"), key, directory.key, directory.endpoint, port=8443)
    async with simulator:
        await simulator.finished(timeout=60)     # the scheduled sends are done
    print(simulator.timeline())

It answers by the scenario (Accepted, Rejected with a reason, after a delay, or not at all),
refuses requests for a while (5xx, or 429 with Retry-After), sends messages on a schedule and,
as a DSO, orders the cheapest option offered for its FlexRequests. What it sent and got is in
its service's archive (``store``: a SQLite file keeps it after the run).

Hooks: ``[hooks] module = "hooks.py"``; the module may define ``async def on_message(simulator,
message_type, payload)`` (called for every message handled; return extra response fields, or
raise :class:`~pyuftp.exceptions.Rejected`) and ``async def on_start(simulator)``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..exceptions import Rejected, excerpt
from ..message.catalog import spec
from ..message.codec import parse_xml
from ..message.examples import example
from ..server.service import SERVICES, ShapeshifterService
from ..signing.crypto import SIGNATURE_BYTES, SigningKey
from ..signing.envelope import Received, open_envelope
from .messages import order_for, settlement_for
from .runner import new_id
from .scenario import Scenario, Send

logger = logging.getLogger(__name__)

__all__ = ["Simulator"]


class Simulator:
    """A service of the scenario's role that behaves by the scenario."""

    def __init__(self, scenario: Scenario, signing_key: str | SigningKey,
                 key_lookup: Callable[[str, str], Any], endpoint_lookup: Callable[[str, str], Any],
                 *, host: str = "127.0.0.1", port: int = 0, store: Any = None,
                 request_timeout: float = 30.0, **service_options: Any) -> None:
        self.scenario = scenario
        self.request_timeout = request_timeout
        self.service: ShapeshifterService = SERVICES[scenario.role](
            scenario.domain, signing_key, key_lookup, endpoint_lookup, host=host, port=port,
            version=scenario.version, store=store, **service_options)
        self.hooks = _hooks(scenario.hooks)
        #: requests refused by the faults, answers dropped, results of the scheduled sends
        self.faulted = 0
        self.dropped: list[str] = []
        self.results: list[tuple[str, str, str]] = []  # (type, message id, outcome)
        self._requests = 0
        self._started = 0.0
        self._offers: dict[str, list[dict[str, Any]]] = {}
        self._ordered: dict[str, list[dict[str, Any]]] = {}  # AGR -> its Accepted orders
        self._tasks: set[asyncio.Task[Any]] = set()
        self._schedule: list[asyncio.Task[Any]] = []
        for message_type in spec(scenario.version).accepted_by(scenario.role):
            self.service.add_handler(message_type, self._handle)
        if scenario.fault_status or scenario.drop:
            self.service.app.middlewares.append(self._middleware)

    @property
    def url(self) -> str:
        return self.service.url

    async def start(self) -> None:
        self._started = time.monotonic()
        await self.service.start()
        if "on_start" in self.hooks:
            await _call(self.hooks["on_start"], self)
        self._schedule = [self._spawn(self._sends(send)) for send in self.scenario.sends]
        if self.scenario.settle_after:
            self._schedule.append(self._spawn(self._settle()))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.service.stop()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    async def finished(self, timeout: float) -> bool:
        """Wait until every scheduled send (and the orders they led to) is done; False after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(not t.done() for t in self._tasks):
                return True
            await asyncio.sleep(0.05)
        return False

    # --- answering ---------------------------------------------------------------------------

    async def _handle(self, payload: dict[str, Any], received: Received) -> Any:
        kind = received.message_type
        extra = None
        if self.scenario.delay:  # every answer, Accepted or Rejected, comes this much later
            await asyncio.sleep(self.scenario.delay)
        if "on_message" in self.hooks:
            extra = await _call(self.hooks["on_message"], self, kind, payload)
        if kind in self.scenario.reject:
            raise Rejected(self.scenario.reject[kind])
        if kind == "FlexOffer" and self.scenario.best_offer:
            self._offered(payload, received.sender_domain)
        if kind == "FlexRequest" and self.scenario.offer_on_request:
            self._spawn(self._offer(payload))
        if kind == "FlexSettlement" and extra is None:  # every order settled: accepted
            extra = {"flex_order_settlement_statuses": [
                {"order_reference": order["order_reference"], "disposition": "Accepted"}
                for order in payload["flex_order_settlements"] if "order_reference" in order]}
        return extra

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        s = self.scenario
        self._requests += 1
        if s.fault_status and (self._requests <= s.fault_first or
                               time.monotonic() - self._started < s.fault_seconds):
            self.faulted += 1
            headers = {"Retry-After": str(s.retry_after)} if s.fault_status == 429 else None
            return web.Response(status=s.fault_status, text="simulated fault", headers=headers)
        if s.drop:
            # the body is read within the app's size limit; the service reads it again
            kind = _inner_type(await request.read())
            if kind in s.drop:
                self.dropped.append(kind)
                logger.info("simulator: dropped a %s (taken, never answered)", kind)
                return web.Response(status=200)
        return await handler(request)

    # --- sending -----------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sends(self, send: Send) -> None:
        await asyncio.sleep(send.at)
        for index in range(send.count):
            if index:
                await asyncio.sleep(send.every)
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            payload = example(send.message_type, self.scenario.version, now=now)
            payload.update(sender_domain=self.scenario.domain, recipient_domain=send.to,
                           message_id=new_id(), conversation_id=new_id(), time_stamp=now)
            payload.update(send.fields)
            await self.send(send.to, send.role, send.message_type, payload)

    async def send(self, to: str, role: str, message_type: str, payload: dict[str, Any]) -> str:
        """Send a request and wait for its answer; the outcome (Accepted, Rejected: why,
        no answer, or the error), also kept in :attr:`results`."""
        try:
            sent, answer = await self.service.inbox.request(to, role, message_type, payload,
                                                      self.request_timeout)
            outcome = str(answer.get("result", "Accepted"))
            if answer.get("rejection_reason"):
                outcome += f": {excerpt(answer['rejection_reason'], 200)}"
            message_id = str(sent["message_id"])
            if message_type == "FlexOrder" and outcome == "Accepted":
                self._ordered.setdefault(to, []).append(sent)
        except TimeoutError:
            outcome, message_id = "no answer", str(payload.get("message_id"))
        except Exception as exc:  # noqa: BLE001 - a scenario's send fails, the run goes on
            outcome = f"not sent: {type(exc).__name__}: {excerpt(exc, 200)}"
            message_id = str(payload.get("message_id"))
        self.results.append((message_type, message_id, outcome))
        logger.info("simulator: %s %s to %s: %s", message_type, message_id, to, outcome)
        return outcome

    async def _settle(self) -> None:
        """At "month end" (``settlement.after`` seconds in), a FlexSettlement to each AGR of
        the orders it accepted."""
        await asyncio.sleep(self.scenario.settle_after)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        for agr, orders in list(self._ordered.items()):
            settlement = settlement_for(orders, self.scenario.version, now)
            settlement["sender_domain"] = self.scenario.domain
            await self.send(agr, "AGR", "FlexSettlement", settlement)

    def _offered(self, offer: dict[str, Any], sender: str) -> None:
        request = str(offer.get("flex_request_message_id") or offer["message_id"])
        offers = self._offers.setdefault(request, [])
        offers.append({**offer, "_sender": sender})
        if len(offers) == 1:
            self._spawn(self._order_best(request))

    async def _order_best(self, request: str) -> None:
        await asyncio.sleep(self.scenario.order_wait)
        options = [(option["price"], offer, option) for offer in self._offers.get(request, [])
                   for option in offer.get("offer_options", [])]
        if not options:
            return
        _, offer, option = min(options, key=lambda item: item[0])
        order = order_for(offer, option, self.scenario.version)
        await self.send(offer["_sender"], "AGR", "FlexOrder", order)

    async def _offer(self, request: dict[str, Any]) -> None:
        """An AGR's offer on a FlexRequest: the example offer, for the requested day and
        congestion point, in the request's conversation; revoked later if the scenario says."""
        await asyncio.sleep(self.scenario.offer_wait)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        offer = example("FlexOffer", self.scenario.version, now=now)
        offer.pop("d_prognosis_message_id", None)  # it names no prognosis it sent
        offer.update({key: request[key] for key in
                      ("period", "congestion_point", "isp_duration", "time_zone")})
        offer.update(sender_domain=self.scenario.domain,
                     recipient_domain=request["sender_domain"], message_id=new_id(),
                     conversation_id=request["conversation_id"], time_stamp=now,
                     flex_request_message_id=request["message_id"])
        if "contract_id" in request:
            offer["contract_id"] = request["contract_id"]
        outcome = await self.send(request["sender_domain"], "DSO", "FlexOffer", offer)
        if self.scenario.revoke_after and outcome == "Accepted":
            await asyncio.sleep(self.scenario.revoke_after)
            revocation = {"version": self.scenario.version, "message_id": new_id(),
                          "recipient_domain": request["sender_domain"],
                          "conversation_id": request["conversation_id"],
                          "flex_offer_message_id": offer["message_id"]}
            await self.send(request["sender_domain"], "DSO", "FlexOfferRevocation", revocation)

    # --- after the run -----------------------------------------------------------------------

    def timeline(self) -> str:
        """Every message the simulator sent and got, oldest first, one line each."""
        lines = []
        for m in sorted(self.service.store.query(), key=lambda m: m.archived_at):
            stamp = dt.datetime.fromtimestamp(m.time_stamp, dt.timezone.utc).strftime("%H:%M:%S")
            arrow = "->" if m.direction == "out" else "<-"
            outcome = f"  {m.outcome}" if m.outcome else ""
            lines.append(f"{stamp} {arrow} {m.message_type:<28} {m.counterparty:<24} "
                         f"conversation {m.conversation_id[:8]}{outcome}")
        return "\n".join(lines) if lines else "no messages"


def _inner_type(body: bytes) -> str | None:
    """The type of the message sealed in a SignedMessage (unverified: only to drop it)."""
    try:
        return str(parse_xml(open_envelope(body).sealed[SIGNATURE_BYTES:]).tag)
    except Exception:  # noqa: BLE001 - the service says what is wrong with it
        return None


def _hooks(path: str | None) -> dict[str, Callable[..., Any]]:
    if path is None:
        return {}
    loader = importlib.util.spec_from_file_location("pyuftp_scenario_hooks", path)
    if loader is None or loader.loader is None:
        raise ValueError(f"scenario key 'hooks.module': cannot load {path!r}")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"scenario key 'hooks.module': cannot load {path!r}: {exc}") from None
    return {name: getattr(module, name) for name in ("on_message", "on_start")
            if callable(getattr(module, name, None))}


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    return await result if inspect.isawaitable(result) else result
