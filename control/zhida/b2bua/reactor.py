"""sippy's reactor in one dedicated thread, and the two bridges between it and asyncio.

sippy keeps its event dispatcher (``ED2``) as a process-wide singleton that is created when
``sippy.Core.EventDispatcher`` is first imported: the importing thread becomes the reactor thread, and
``ED2.callFromThread`` wakes *that* thread with a signal. So the module must be imported inside the thread
that runs ``ED2.loop()``, and nothing else in the process may import sippy before the reactor has started.
Every sippy object is then touched only from that thread:

- asyncio → sippy: :meth:`Reactor.call` (fire and forget) or :meth:`Reactor.run` (await a result), both
  through ``ED2.callFromThread``;
- sippy → asyncio: ``loop.call_soon_threadsafe`` from inside the reactor thread.

An exception raised by a function handed to the reactor is logged and swallowed so that one bad call or one
malformed message never stops the thread that carries every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_START_TIMEOUT_S = 10.0


class ReactorError(RuntimeError):
    """The reactor thread is not running (never started, failed to start, or stopped)."""


class Reactor:
    """Owns the thread that runs sippy's event loop. Use :func:`get_reactor`: there is one per process."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._ed2: Any = None
        self._start_error: BaseException | None = None
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def in_reactor_thread(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def start(self) -> None:
        """Start the reactor thread once; later calls are no-ops. Raises ReactorError if it cannot start."""
        with self._lock:
            if self._stopping:
                # ED2 is bound to the thread that imported it; a stopped reactor cannot come back.
                raise ReactorError("the sippy reactor was stopped and cannot be restarted in this process")
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="sippy-reactor", daemon=True)
                self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise ReactorError("the sippy reactor did not start in time")
        if self._start_error is not None:
            err = self._start_error
            raise ReactorError(f"the sippy reactor failed to start: {err}") from err

    def _main(self) -> None:
        try:
            from sippy.Core.EventDispatcher import ED2  # created here, so this thread owns it

            if ED2.my_ident != threading.get_ident():
                raise ReactorError(
                    "sippy was imported by another thread before the reactor started; import zhida.b2bua "
                    "modules only, and let the reactor import sippy"
                )
        except BaseException as exc:  # report any import failure to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ed2 = ED2
        self._ready.set()
        log.debug("sippy reactor running")
        while not self._stopping:
            try:
                ED2.loop()
            except BaseException:
                # ED2 re-raises SystemExit/KeyboardInterrupt from thread callbacks; keep serving calls.
                log.exception("sippy reactor loop raised; continuing")
        log.debug("sippy reactor stopped")

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the reactor thread, soon; exceptions are logged, never propagated."""
        ed2 = self._require()

        def guarded() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("error in %s running in the sippy reactor", getattr(fn, "__qualname__", fn))

        if self.in_reactor_thread():
            guarded()
        else:
            ed2.callFromThread(guarded)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the reactor thread and return its result (or raise its exception) here."""
        ed2 = self._require()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, exc: BaseException | None) -> None:
            if fut.done():  # the awaiting task was cancelled meanwhile
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:
                with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is waiting
                    loop.call_soon_threadsafe(settle, None, exc)
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result, None)

        ed2.callFromThread(work)
        return await fut

    def stop(self, timeout: float = 5.0) -> None:
        """Break sippy's loop and join the thread. Final: a process gets one reactor."""
        with self._lock:
            if self._thread is None or self._stopping:
                self._stopping = True
                return
            self._stopping = True
        if self._ed2 is not None:
            self._ed2.callFromThread(self._ed2.breakLoop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("sippy reactor thread did not stop within %.1f s", timeout)

    def _require(self) -> Any:
        if self._ed2 is None or not self.running:
            raise ReactorError("the sippy reactor is not running; call get_reactor().start() first")
        return self._ed2


_REACTOR = Reactor()


def get_reactor() -> Reactor:
    """The process-wide reactor, started on first use."""
    if not _REACTOR.running:
        _REACTOR.start()
    return _REACTOR
