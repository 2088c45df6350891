"""Blocking facades for scripts and frameworks without an event loop (Django views, cron jobs,
a notebook cell): the async client and service run on a private event loop in a private
thread, and each call waits for its result.

    from pyuftp.clients import ShapeshifterAgrDsoClient
    from pyuftp.sync import SyncClient

    with SyncClient(ShapeshifterAgrDsoClient, "agr.example.com", private_key,
                    "dso.example.com", "https://dso.example.com/shapeshifter/api/v3/message") as c:
        sent = c.send("FlexOffer", {...})          # or c.send_flex_offer({...})

    with SyncService(ShapeshifterAgrService, "agr.example.com", private_key, keys, endpoints,
                     port=8081) as agr:            # listening while the block runs
        sent, answer = agr.request("dso.example.com", "DSO", "FlexOfferRevocation", {...})

Limits:

- One thread and one event loop per facade, made when it is built and ended by
  :meth:`close` (or leaving the ``with`` block). Build one per process (or per long-lived
  component) and share it between threads: calls may come from several threads at once and
  run concurrently on the private loop.
- Do not call a facade from inside a running event loop (async code): it would block that
  loop, so it raises RuntimeError; use the async classes there.
- Callbacks (a service's handlers, ``on_delivery_failed``) run on the private thread, as
  they would on the event loop: they must not call the facade that runs them and wait.
- Every call waits at most ``timeout`` seconds (then TimeoutError; the operation is
  cancelled). A client with a store returns once the message is committed, as the async
  one does; :meth:`close` then stops delivery and undelivered messages stay stored.
- When the interpreter exits without :meth:`close`, the daemon thread just stops: close
  the facade to let the HTTP session and the store close cleanly.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, TypeVar

from .clients.client import ShapeshifterClient
from .server.service import ShapeshifterService

__all__ = ["SyncClient", "SyncService"]

T = TypeVar("T")
Wrapped = TypeVar("Wrapped", ShapeshifterClient, ShapeshifterService)
DEFAULT_TIMEOUT = 120.0  # above a client's send_timeout (60 s) and a request's timeout (60 s)


class _LoopThread:
    """An event loop running forever on a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            # stopped by close(): end what is left, so nothing is destroyed while pending
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop in this thread: blocking is fine
        else:
            coroutine.close()
            raise RuntimeError("a pyuftp.sync facade was called from a running event loop; "
                               "await the async client or service there instead")
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("this pyuftp.sync facade is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout:g} s") from None

    def stop(self, timeout: float) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


class _Facade(Generic[Wrapped]):
    """What both facades share: the private loop, building the wrapped object on it,
    blocking versions of its coroutine methods, close and ``with``."""

    def __init__(self, cls: Callable[..., Wrapped], args: tuple[Any, ...],
                 kwargs: dict[str, Any], timeout: float) -> None:
        self.timeout = timeout
        self._runner = _LoopThread(f"pyuftp-sync-{getattr(cls, '__name__', 'object')}")
        self._closed = False

        async def build() -> Wrapped:  # on the loop: whatever binds to it binds to ours
            return cls(*args, **kwargs)

        try:
            self.wrapped: Wrapped = self._runner.call(build(), timeout)
        except BaseException:
            self._runner.stop(timeout)
            raise

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._runner.call(coroutine, self.timeout if timeout is None else timeout)

    def __getattr__(self, name: str) -> Any:
        # send_flex_offer(...), endpoint(), drain(...): each coroutine method, blocking
        if name == "wrapped":  # not built (yet): no recursion through self.wrapped
            raise AttributeError(name)
        attribute = getattr(self.wrapped, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._call(attribute(*args, **kwargs))
        blocking.__name__ = name
        blocking.__doc__ = attribute.__doc__
        return blocking

    def _stop(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the wrapped object (its delivery, its listening), then the private loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._stop())
        finally:
            self._runner.stop(self.timeout)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SyncClient(_Facade[ShapeshifterClient]):
    """A role client (``client_class(*args, **kwargs)``, e.g. ShapeshifterAgrDsoClient)
    that blocks: :meth:`send`, every ``send_*`` method, :meth:`close`. ``timeout``: the
    most seconds a call waits."""

    def __init__(self, client_class: type[ShapeshifterClient], *args: Any,
                 timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(client_class, args, kwargs, timeout)

    @property
    def client(self) -> ShapeshifterClient:
        return self.wrapped

    def start(self) -> None:
        """Start delivering from the client's outbox (with a store); ``with`` does it."""
        self._call(self.wrapped.start())

    def send(self, message_type: str, payload: Any) -> Any:
        """Validate, sign and send one message; the payload as sent."""
        return self._call(self.wrapped.send(self.wrapped.seal(message_type, payload)))

    def _stop(self) -> Coroutine[Any, Any, None]:
        return self.wrapped.close()

    def __enter__(self) -> SyncClient:
        self.start()
        return self


class SyncService(_Facade[ShapeshifterService]):
    """A service (``service_class(*args, **kwargs)``) listening on a private thread, that
    blocks: :meth:`request` (send and wait for the answer), ``drain``, :meth:`close`.
    Handlers are added with ``add_handler`` before :meth:`start`."""

    def __init__(self, service_class: type[ShapeshifterService], *args: Any,
                 timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(service_class, args, kwargs, timeout)

    @property
    def service(self) -> ShapeshifterService:
        return self.wrapped

    def start(self) -> None:
        """Listen (and resume an earlier run's work); ``with`` does it."""
        self._call(self.wrapped.start())

    def request(self, domain: str, role: str, message_type: str, payload: Any,
                timeout: float = 60.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a request and wait for its response: ``(sent, response)``; TimeoutError
        when none comes within ``timeout`` seconds."""
        # the inbox's request: the type is a str here, not one of the typed overloads' literals
        return self._call(
            self.wrapped.inbox.request(domain, role, message_type, payload, timeout),
            timeout + 5.0)

    def _stop(self) -> Coroutine[Any, Any, None]:
        return self.wrapped.stop()

    def __enter__(self) -> SyncService:
        self.start()
        return self
