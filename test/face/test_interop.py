"""Interoperability with the peer implementation shapeshifter-uftp 2.4.0, over real sockets.

Both directions, UFTP 3.0.0 and 3.1.0, every message type, on 127.0.0.1 only:

* the peer's clients send to pyuftp services: the pyuftp handler gets a dict equal, field by
  field, to the peer's message object; for a request, pyuftp's automatic ``...Response``
  reaches a peer service of the sending role (its ``process_*`` method is called with it);
* pyuftp clients send to the peer's services: the peer's ``process_*`` method gets an object
  equal, field by field, to the dict pyuftp sent; a TestMessage is answered by the peer's
  automatic TestMessageResponse, which reaches a pyuftp service of the sending role.

Payloads are the realistic, fully populated examples of ``peer_examples`` (built with the
peer's own classes; for pyuftp clients read into dicts with ``pyuftp.parse_message``), and for
pyuftp clients also pyuftp's own ``pyuftp.message.examples``. Every server is started per test on a
free port of 127.0.0.1 and stopped when the test ends; every wait has a deadline.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import enum
import logging
import socket
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable

import pytest

try:
    import shapeshifter_uftp as peer
    import shapeshifter_uftp.uftp as peer_uftp
    from shapeshifter_uftp.service.base_service import snake_case as peer_snake_case
    from nacl.bindings import crypto_sign_keypair
    from xsdata.models.datatype import XmlDate, XmlDuration
except ImportError as exc:  # the peer (and fastapi, uvicorn, xsdata) come with '.[peer]'
    pytest.skip(
        f"interoperability tests need shapeshifter-uftp 2.4.0 (pip install '.[peer]'): {exc}",
        allow_module_level=True,
    )

import pyuftp
from pyuftp.message.catalog import ROUTES, VERSIONS, reference_key, response_type
from pyuftp.clients import CLIENTS
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import wrap
from pyuftp.server.service import SERVICES, Rejected

from conftest import run as run_bounded

RULES = "none"  # the peer examples carry fixed 2024 dates (see conftest.business_rules)
from peer_examples import peer_message, peer_xml

from pyuftp.message.examples import example as pyuftp_example

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

HOST = "127.0.0.1"
PATH = "/shapeshifter/api/v3/message"
DOMAIN = {"AGR": "agr.example.com", "DSO": "dso.example.com", "CRO": "cro.example.com"}
ROLE_PAIRS = [("AGR", "DSO"), ("DSO", "AGR"), ("AGR", "CRO"), ("CRO", "AGR"), ("DSO", "CRO"),
              ("CRO", "DSO")]

START_TIMEOUT = 10.0   # seconds for a peer server to come up
STOP_TIMEOUT = 10.0    # ... and to go down
WAIT = 10.0            # for a message to arrive
TEST_TIMEOUT = 30.0    # for the whole body of one test
HTTP_TIMEOUT = 10      # for one HTTP request of either side

PEER_SERVICES = {
    "AGR": peer.ShapeshifterAgrService,
    "CRO": peer.ShapeshifterCroService,
    "DSO": peer.ShapeshifterDsoService,
}
PEER_CLIENTS = {
    ("AGR", "CRO"): peer.ShapeshifterAgrCroClient,
    ("AGR", "DSO"): peer.ShapeshifterAgrDsoClient,
    ("CRO", "AGR"): peer.ShapeshifterCroAgrClient,
    ("CRO", "DSO"): peer.ShapeshifterCroDsoClient,
    ("DSO", "AGR"): peer.ShapeshifterDsoAgrClient,
    ("DSO", "CRO"): peer.ShapeshifterDsoCroClient,
}

# message type -> (sender role, recipient role), from pyuftp's catalog
ROUTE = {t: pair for pair, types in ROUTES.items() for t in types}
ROUTE["TestMessageResponse"] = ("DSO", "AGR")  # any pair; the role-pair tests cover the rest
# every message type but TestMessage, which test_test_message_* send between all six pairs
ROUTED_TYPES = sorted(ROUTE)

HEADER = ("version", "sender_domain", "recipient_domain", "time_stamp", "message_id",
          "conversation_id")
PYUFTP_METERING_EAN = "E8716859000126365"  # pyuftp writes E + 16 digits, as the schemas say


# --- comparing the peer's objects with pyuftp's dicts ------------------------------------------

# pyuftp's dict key for a field the peer names otherwise
PEER_FIELD_ALIASES = {"dso_portfolio_update_message_id": "dso_portfolio_update_response_message_id"}


def _plain(value: Any) -> Any:
    """A peer value as pyuftp's dicts hold it."""
    if isinstance(value, XmlDate):
        return value.to_date()
    if isinstance(value, XmlDuration):
        assert not value.years and not value.months, f"calendar duration {value}"
        span = dt.timedelta(days=value.days or 0, hours=value.hours or 0,
                            minutes=value.minutes or 0, seconds=float(value.seconds or 0))
        return -span if value.negative else span
    if isinstance(value, enum.Enum):
        return value.value
    return value


def differences(peer_value: Any, value: Any, path: str = "") -> list[str]:
    """Where a peer message object and a pyuftp payload dict disagree (empty: they agree).

    Every field of the peer object must be in the dict with an equal value, unless the peer
    leaves it unset or at its default; every key of the dict must be a field the peer set.
    """
    found: list[str] = []
    if dataclasses.is_dataclass(peer_value):
        if not isinstance(value, dict):
            return [f"{path}: the peer has a {type(peer_value).__name__}, pyuftp {value!r}"]
        seen = set()
        for field in dataclasses.fields(peer_value):
            key = PEER_FIELD_ALIASES.get(field.name, field.name)
            item = getattr(peer_value, field.name)
            if key not in value:
                default = None if field.default is dataclasses.MISSING else field.default
                if item is not None and _plain(item) != _plain(default):
                    found.append(f"{path}.{key}: the peer has {item!r}, pyuftp nothing")
                continue
            seen.add(key)
            found += differences(item, value[key], f"{path}.{key}")
        found += [f"{path}.{key}: pyuftp has {value[key]!r}, the peer no such field"
                  for key in sorted(set(value) - seen)]
        return found
    if isinstance(peer_value, list):
        if not isinstance(value, list) or len(value) != len(peer_value):
            return [f"{path}: the peer has {len(peer_value)} items, pyuftp {value!r}"]
        for index, (peer_item, item) in enumerate(zip(peer_value, value)):
            found += differences(peer_item, item, f"{path}[{index}]")
        return found
    plain = _plain(peer_value)
    if isinstance(value, dt.datetime) and isinstance(plain, str):
        plain = dt.datetime.fromisoformat(plain)  # the peer keeps date-times as strings
    if isinstance(value, Decimal) and isinstance(plain, (int, str)):
        plain = Decimal(plain)
    if plain != value or isinstance(plain, bool) != isinstance(value, bool):
        found.append(f"{path}: the peer has {peer_value!r}, pyuftp {value!r}")
    return found


def assert_same(peer_value: Any, value: Any, what: str) -> None:
    found = differences(peer_value, value, what)
    assert not found, "the peer and pyuftp disagree:\n  " + "\n  ".join(found)


# --- payloads ------------------------------------------------------------------------------------

def peer_payload(message_type: str, version: str):
    """A fresh peer message object: new ids, and a time stamp the peer's client fills in."""
    message = peer_message(message_type, version)
    message.message_id = str(uuid.uuid4())
    message.conversation_id = str(uuid.uuid4())
    message.time_stamp = None
    return message


def pyuftp_payload(message_type: str, version: str) -> dict[str, Any]:
    """The same example as a pyuftp dict, without the metadata pyuftp's client fills in."""
    _, payload = pyuftp.parse_message(peer_xml(message_type, version))
    for key in HEADER:
        payload.pop(key, None)
    payload["conversation_id"] = str(uuid.uuid4())
    if message_type == "Metering":
        payload["ean"] = PYUFTP_METERING_EAN
    if message_type == "TestMessageResponse":  # the peer's Result is tolerated, not written
        payload.pop("result", None)
        payload.pop("rejection_reason", None)
    return payload


def response_fields(message_type: str, version: str) -> dict[str, Any]:
    """What a pyuftp handler returns to fill the response to ``message_type``: the content
    (views, statuses, ...) of the example response; the rest pyuftp fills in itself."""
    answer = response_type(message_type)
    _, example = pyuftp.parse_message(peer_xml(answer, version))
    own = set(HEADER) | {"result", "rejection_reason", "time_zone", "period",
                         reference_key(message_type)}
    return {key: value for key, value in example.items() if key not in own}


def peer_class_name(message_type: str) -> str:
    return type(peer_message(message_type, VERSIONS[0])).__name__


def peer_method(message_type: str) -> str:
    """The peer service method that processes ``message_type``."""
    return "process_" + peer_snake_case(peer_class_name(message_type))


# --- waiting ---------------------------------------------------------------------------------------

async def eventually(find: Callable[[], Any], what: str, timeout: float = WAIT,
                     context: Callable[[], Any] | None = None) -> Any:
    """Poll ``find()`` until it returns something, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            detail = f"; meanwhile: {context()!r}" if context else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        await asyncio.sleep(0.01)


def run(coroutine) -> Any:
    return run_bounded(coroutine, TEST_TIMEOUT)


# --- the peer's side -------------------------------------------------------------------------------

def recording_service_class(base: type) -> type:
    """A concrete subclass of a peer service: every ``process_*`` method records what it gets
    in ``self.received``; TestMessage keeps the peer's automatic TestMessageResponse."""

    def recorder(name: str):
        def process(self, message, *_sender_role):
            self.received.append((name, message))
        process.__name__ = name
        return process

    def process_test_message(self, message, sender_role):
        self.received.append(("process_test_message", message))
        base.process_test_message(self, message, sender_role)

    namespace: dict[str, Any] = {name: recorder(name) for name in base.__abstractmethods__}
    namespace["process_test_message"] = process_test_message
    namespace["process_test_message_response"] = recorder("process_test_message_response")
    cls = type(f"Recording{base.__name__}", (base,), namespace)
    assert not cls.__abstractmethods__
    return cls


RECORDING_SERVICES = {role: recording_service_class(base) for role, base in PEER_SERVICES.items()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop_peer_service(service) -> None:
    service.server.should_exit = True
    thread = service.server_thread
    if thread is not None:
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive(), "the peer's server did not stop"
    service.server_thread = None
    # its workers may still be answering a TestMessage (HTTP-timeout bounded)
    service.inbound_executor.shutdown(wait=True, cancel_futures=True)
    service.outbound_executor.shutdown(wait=True, cancel_futures=True)


class CurrentDirectory:
    """The Directory of the test that runs now: peer services outlive a test (starting and
    stopping uvicorn costs 0.2 s a time), so they look keys and endpoints up through this."""

    directory: Directory | None = None

    def key(self, domain: str, role: str) -> str | None:
        return self.directory.key(domain, role) if self.directory else None

    def endpoint(self, domain: str, role: str) -> str | None:
        return self.directory.endpoint(domain, role) if self.directory else None


CURRENT = CurrentDirectory()
# (role, version) -> (service, private key, public key): started once per module
PEER_POOL: dict[tuple[str, str], tuple[Any, str, str]] = {}


def pooled_peer_service(role: str, version: str) -> tuple[Any, str, str]:
    if (role, version) not in PEER_POOL:
        public, secret = crypto_sign_keypair()  # as the peer's own key generator makes them
        private_key = base64.b64encode(secret).decode()
        public_key = base64.b64encode(public).decode()
        service = start_peer_service(role, private_key, CURRENT, version)
        PEER_POOL[(role, version)] = (service, private_key, public_key)
    return PEER_POOL[(role, version)]


@pytest.fixture(scope="module", autouse=True)
def stop_pooled_peer_services():
    yield
    for service, _, _ in PEER_POOL.values():
        stop_peer_service(service)
    PEER_POOL.clear()


def start_peer_service(role: str, signing_key: str, directory: Any, version: str):
    """Run a recording peer service for ``role`` in a thread; return it (``.url`` added)."""
    last_error = "?"
    for _attempt in range(3):  # another process may take the probed port first
        port = free_port()
        service = RECORDING_SERVICES[role](
            DOMAIN[role], signing_key,
            key_lookup_function=directory.key, endpoint_lookup_function=directory.endpoint,
            host=HOST, port=port, path=PATH, version=version,
        )
        service.received = []
        service.url = f"http://{HOST}:{port}{PATH}"
        # like the peer's run_in_thread(), but with a deadline and a daemon thread
        thread = threading.Thread(target=service.run, name=f"peer-{role}-{port}", daemon=True)
        service.server_thread = thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not service.server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if service.server.started:
            return service
        last_error = "did not start in time" if thread.is_alive() else "exited"
        stop_peer_service(service)
    raise RuntimeError(f"the peer's {role} service on {HOST} {last_error}")


# --- the parties of one test -----------------------------------------------------------------------

class Network:
    """The parties of one test: each role is played by the peer or by pyuftp. Keys and
    endpoints are exchanged through one Directory; peer servers are stopped by the fixture."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.directory = Directory()
        self.private_keys: dict[str, str] = {}
        self.peer_services: dict[str, Any] = {}

    def _keys(self, role: str, implementation: str) -> str:
        if implementation == "peer":  # as the peer's own key generator makes them
            public, secret = crypto_sign_keypair()
            private_key = base64.b64encode(secret).decode()
            public_key = base64.b64encode(public).decode()
        else:
            private_key, public_key = generate_keypair()
        self.private_keys[role] = private_key
        self.directory.add(DOMAIN[role], role, public_key)
        return private_key

    def _publish(self, role: str, url: str) -> None:
        self.directory.add(DOMAIN[role], role, self.directory.key(DOMAIN[role], role), url)

    # the peer

    def peer_service(self, role: str):
        """The peer's service for ``role``, started once per module, its records cleared
        (sync: call before the async part)."""
        service, private_key, public_key = pooled_peer_service(role, self.version)
        service.received = []
        self.private_keys[role] = private_key
        self.directory.add(DOMAIN[role], role, public_key, service.url)
        self.peer_services[role] = service
        return service

    def peer_client(self, sender: str, recipient: str):
        if sender not in self.private_keys:
            self._keys(sender, "peer")
        client = PEER_CLIENTS[(sender, recipient)](
            sender_domain=DOMAIN[sender],
            signing_key=self.private_keys[sender],
            recipient_domain=DOMAIN[recipient],
            recipient_endpoint=self.directory.endpoint(DOMAIN[recipient], recipient),
            recipient_signing_key=self.directory.key(DOMAIN[recipient], recipient),
            version=self.version,
        )
        client.request_timeout = HTTP_TIMEOUT
        return client

    async def peer_send(self, sender: str, recipient: str, message) -> None:
        """Send a peer message object with the peer's client for the pair (in a thread:
        the peer's client is synchronous)."""
        client = self.peer_client(sender, recipient)
        method = "send_" + peer_snake_case(type(message).__name__)
        assert hasattr(client, method), f"{type(client).__name__} has no {method}"
        await asyncio.to_thread(getattr(client, method), message)

    # pyuftp

    def pyuftp_service(self, role: str) -> "Party":
        """A pyuftp service for ``role`` (use ``async with``) whose handlers record."""
        service = SERVICES[role](
            DOMAIN[role], self._keys(role, "pyuftp"), self.directory.key, self.directory.endpoint,
            host=HOST, port=0, path=PATH, version=self.version,
            client_options={"attempts": 1, "timeout": HTTP_TIMEOUT},
        )
        return Party(self, role, service)

    def pyuftp_client(self, sender: str, recipient: str):
        if sender not in self.private_keys:
            self._keys(sender, "pyuftp")
        return CLIENTS[(sender, recipient)](
            DOMAIN[sender], self.private_keys[sender], DOMAIN[recipient],
            self.directory.endpoint(DOMAIN[recipient], recipient),
            self.directory.key(DOMAIN[recipient], recipient),
            version=self.version, attempts=1, timeout=HTTP_TIMEOUT,
        )


class Party:
    """A running pyuftp service that records what its handlers get, answers requests with
    ``answers[type]`` (extra response fields) or rejects them with ``rejections[type]``."""

    def __init__(self, network: Network, role: str, service) -> None:
        self.network, self.role, self.service = network, role, service
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self.rejections: dict[str, str] = {}
        for message_type in service.accepted_types:
            service.add_handler(message_type, self._recorder(message_type))

    def _recorder(self, message_type: str):
        async def handle(payload: dict[str, Any]):
            self.received.append((message_type, payload))
            if message_type in self.rejections:
                raise Rejected(self.rejections[message_type])
            return self.answers.get(message_type)
        return handle

    async def __aenter__(self) -> "Party":
        await self.service.start()
        self.network._publish(self.role, self.service.url)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.wait_for(self.service.stop(), STOP_TIMEOUT)

    async def wait(self, message_type: str, conversation_id: str) -> dict[str, Any]:
        def find():
            for received_type, payload in self.received:
                if received_type == message_type and payload["conversation_id"] == conversation_id:
                    return payload
            return None
        return await eventually(find, f"a {message_type} at the pyuftp {self.role} service",
                                context=lambda: [(t, p.get("message_id")) for t, p in self.received])


async def peer_received(service, method: str, match: Callable[[Any], bool], what: str):
    def find():
        for name, message in list(service.received):
            if name == method and match(message):
                return message
        return None
    return await eventually(
        find, what,
        context=lambda: [(name, getattr(m, "result", None), getattr(m, "rejection_reason", None))
                         for name, m in list(service.received)],
    )


@pytest.fixture
def network(request):
    """The parties of one test, for the test's ``version``; peer servers stop afterwards."""
    peer_logger = logging.getLogger("shapeshifter-uftp")
    level = peer_logger.level
    peer_logger.setLevel(logging.WARNING)  # it logs every message in full at DEBUG
    callspec = getattr(request.node, "callspec", None)
    net = Network(callspec.params.get("version", "3.1.0") if callspec else "3.1.0")
    CURRENT.directory = net.directory
    try:
        yield net
    finally:
        CURRENT.directory = None
        peer_logger.setLevel(level)


# --- 0. both sides agree on who sends what ------------------------------------------------------

@pytest.mark.parametrize("message_type", sorted(set(ROUTE) - {"TestMessageResponse"}))
def test_routes_agree(message_type):
    cls = getattr(peer_uftp, peer_class_name(message_type))
    assert tuple(map(str, peer_uftp.routing_map[cls])) == ROUTE[message_type]


# --- 1. the peer's clients -> pyuftp services ----------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", ROUTED_TYPES)
def test_peer_client_to_pyuftp_service(network, message_type, version):
    sender, recipient = ROUTE[message_type]
    answer = response_type(message_type)
    # a peer service of the sending role gets pyuftp's automatic response to a request
    peer_service = network.peer_service(sender) if answer else None

    async def body():
        async with network.pyuftp_service(recipient) as party:
            if answer:
                party.answers[message_type] = response_fields(message_type, version)
            message = peer_payload(message_type, version)
            await network.peer_send(sender, recipient, message)

            payload = await party.wait(message_type, message.conversation_id)
            assert payload["message_id"] == message.message_id
            assert payload["version"] == version
            assert_same(message, payload, message_type)
            if not answer:
                return

            response = await peer_received(
                peer_service, peer_method(answer),
                lambda m: m.conversation_id == message.conversation_id,
                f"pyuftp's {answer} at the peer's {sender} service",
            )
            check_response(response, message, answer, version, sender, recipient)
            for key, value in party.answers[message_type].items():
                assert_same(getattr(response, key), value, f"{answer}.{key}")

    run(body())


def check_response(response, request, answer: str, version: str, requester: str,
                   responder: str, result: str = "Accepted", reason: str | None = None) -> None:
    """The peer's object of pyuftp's automatic response to ``request``."""
    assert type(response).__name__ == peer_class_name(answer)
    assert response.version == version
    assert response.sender_domain == DOMAIN[responder]
    assert response.recipient_domain == DOMAIN[requester]
    assert response.conversation_id == request.conversation_id
    assert response.message_id != request.message_id
    if answer == "TestMessageResponse":
        return
    reference = peer_snake_case(type(request).__name__) + "_message_id"
    assert getattr(response, reference) == request.message_id
    assert response.result == result
    assert response.rejection_reason == reason
    for key in ("time_zone", "period"):  # a query's are copied into its response
        if hasattr(request, key) and hasattr(response, key):
            assert getattr(response, key) == getattr(request, key)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", ["D-Prognosis", "DSOPortfolioQuery"])
def test_pyuftp_response_without_optional_content(network, message_type, version):
    """A handler that returns nothing: D-PrognosisResponse without FlexOrderStatus,
    DSOPortfolioQueryResponse without CongestionPoint (both optional) still suit the peer."""
    sender, recipient = ROUTE[message_type]
    answer = response_type(message_type)
    peer_service = network.peer_service(sender)

    async def body():
        async with network.pyuftp_service(recipient):
            message = peer_payload(message_type, version)
            await network.peer_send(sender, recipient, message)
            response = await peer_received(
                peer_service, peer_method(answer),
                lambda m: m.conversation_id == message.conversation_id,
                f"pyuftp's {answer} at the peer's {sender} service",
            )
            check_response(response, message, answer, version, sender, recipient)
            for key in response_fields(message_type, version):
                assert not getattr(response, key), f"{answer}.{key} should be empty"

    run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_pyuftp_rejection_reaches_the_peer(network, version):
    peer_service = network.peer_service("AGR")
    reason = "Congestion point unknown to this DSO"

    async def body():
        async with network.pyuftp_service("DSO") as party:
            party.rejections["FlexOffer"] = reason
            message = peer_payload("FlexOffer", version)
            await network.peer_send("AGR", "DSO", message)
            response = await peer_received(
                peer_service, "process_flex_offer_response",
                lambda m: m.conversation_id == message.conversation_id,
                "a rejecting FlexOfferResponse at the peer's AGR service",
            )
            check_response(response, message, "FlexOfferResponse", version, "AGR", "DSO",
                           result="Rejected", reason=reason)

    run(body())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sender,recipient", ROLE_PAIRS)
def test_test_message_from_peer(network, sender, recipient, version):
    peer_service = network.peer_service(sender)

    async def body():
        async with network.pyuftp_service(recipient) as party:
            message = peer_payload("TestMessage", version)
            await network.peer_send(sender, recipient, message)
            payload = await party.wait("TestMessage", message.conversation_id)
            assert_same(message, payload, "TestMessage")
            response = await peer_received(
                peer_service, "process_test_message_response",
                lambda m: m.conversation_id == message.conversation_id,
                f"pyuftp's TestMessageResponse at the peer's {sender} service",
            )
            check_response(response, message, "TestMessageResponse", version, sender, recipient)

    run(body())


# --- 2. pyuftp clients -> the peer's services ----------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", ROUTED_TYPES)
def test_pyuftp_client_to_peer_service(network, message_type, version):
    sender, recipient = ROUTE[message_type]
    peer_service = network.peer_service(recipient)

    async def body():
        async with network.pyuftp_client(sender, recipient) as client:
            sent = await client.send(message_type, pyuftp_payload(message_type, version))
        assert sent["version"] == version
        message = await peer_received(
            peer_service, peer_method(message_type),
            lambda m: m.message_id == sent["message_id"],
            f"pyuftp's {message_type} at the peer's {recipient} service",
        )
        assert type(message).__name__ == peer_class_name(message_type)
        assert_same(message, sent, message_type)

    run(body())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", ROUTED_TYPES)
def test_pyuftp_example_to_peer_service(network, message_type, version):
    """pyuftp's own examples (``pyuftp.message.examples``), as pyuftp's documentation shows them."""
    sender, recipient = ROUTE[message_type]
    peer_service = network.peer_service(recipient)
    payload = pyuftp_example(message_type, version)
    for key in ("message_id", "time_stamp", "version"):
        payload.pop(key, None)
    payload["conversation_id"] = str(uuid.uuid4())

    async def body():
        async with network.pyuftp_client(sender, recipient) as client:
            sent = await client.send(message_type, payload)
        message = await peer_received(
            peer_service, peer_method(message_type),
            lambda m: m.message_id == sent["message_id"],
            f"pyuftp's example {message_type} at the peer's {recipient} service",
        )
        assert_same(message, sent, message_type)

    run(body())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sender,recipient", ROLE_PAIRS)
def test_test_message_to_peer(network, sender, recipient, version):
    peer_service = network.peer_service(recipient)

    async def body():
        async with network.pyuftp_service(sender) as party:
            async with network.pyuftp_client(sender, recipient) as client:
                sent = await client.send_test_message(pyuftp_payload("TestMessage", version))
            message = await peer_received(
                peer_service, "process_test_message",
                lambda m: m.message_id == sent["message_id"],
                f"pyuftp's TestMessage at the peer's {recipient} service",
            )
            assert_same(message, sent, "TestMessage")
            # the peer answers on its own, to the endpoint of the sender's role
            answer = await party.wait("TestMessageResponse", sent["conversation_id"])
            assert answer["version"] == version
            assert answer["sender_domain"] == DOMAIN[recipient]
            assert answer["recipient_domain"] == DOMAIN[sender]
            assert answer["message_id"] != sent["message_id"]
            assert answer.get("result") == "Accepted"  # the peer writes one; pyuftp tolerates it

    run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_rejection_reaches_pyuftp(network, version):
    """The peer answers a FlexOffer whose inner sender differs from its envelope's with a
    Rejected FlexOfferResponse of its own (its only automatic rejection); it reaches pyuftp."""
    peer_service = network.peer_service("DSO")
    payload = pyuftp_payload("FlexOffer", version)
    payload.update(sender_domain="agr2.example.com", recipient_domain=DOMAIN["DSO"])
    xml = pyuftp.create_message("FlexOffer", payload, version=version)
    _, offer = pyuftp.parse_message(xml)

    async def body():
        async with network.pyuftp_service("AGR") as party:
            # signed by agr.example.com, whose envelope it comes in; the inside names agr2
            data = wrap(xml, network.private_keys["AGR"], DOMAIN["AGR"], "AGR")
            async with network.pyuftp_client("AGR", "DSO") as client:
                await client.courier.poster.post_once(data, await client.endpoint())
            response = await party.wait("FlexOfferResponse", offer["conversation_id"])
            assert response["flex_offer_message_id"] == offer["message_id"]
            assert response["result"] == "Rejected"
            assert response["rejection_reason"] == "Invalid Sender"
            assert response["version"] == version
            assert response["sender_domain"] == DOMAIN["DSO"]
        assert peer_service.received == []  # not processed

    run(body())


# --- 3. several at once ----------------------------------------------------------------

@pytest.mark.parametrize("version", ["3.1.0"])
def test_concurrent_flex_offers_from_peer(network, version):
    peer_agr = network.peer_service("AGR")
    count = 8

    async def body():
        async with network.pyuftp_service("DSO") as party:
            messages = [peer_payload("FlexOffer", version) for _ in range(count)]
            await asyncio.gather(*(network.peer_send("AGR", "DSO", m) for m in messages))
            for message in messages:
                payload = await party.wait("FlexOffer", message.conversation_id)
                assert_same(message, payload, "FlexOffer")
                response = await peer_received(
                    peer_agr, "process_flex_offer_response",
                    lambda m, c=message.conversation_id: m.conversation_id == c,
                    "a FlexOfferResponse at the peer's AGR service")
                check_response(response, message, "FlexOfferResponse", version, "AGR", "DSO")

    run(body())


@pytest.mark.parametrize("version", ["3.1.0"])
def test_concurrent_flex_requests_to_peer(network, version):
    peer_agr = network.peer_service("AGR")
    count = 8

    async def body():
        async with network.pyuftp_client("DSO", "AGR") as client:
            sent = await asyncio.gather(*(
                client.send_flex_request(pyuftp_payload("FlexRequest", version))
                for _ in range(count)))
        assert len({s["message_id"] for s in sent}) == count
        for payload in sent:
            message = await peer_received(peer_agr, "process_flex_request",
                                          lambda m, i=payload["message_id"]: m.message_id == i,
                                          "pyuftp's FlexRequest at the peer's AGR service")
            assert_same(message, payload, "FlexRequest")

    run(body())
