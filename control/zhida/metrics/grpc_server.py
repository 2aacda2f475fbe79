"""gRPC server metrics for grpc.aio servers, named as go-grpc-prometheus names them.

Pass the interceptor when creating the server (interceptors cannot be added later)::

    server = grpc.aio.server(interceptors=[ServerMetricsInterceptor()])

Labels: grpc_type (unary, client_stream, server_stream, bidi_stream), grpc_service, grpc_method, grpc_code.
A server stream is timed from its start until its last message (or its cancellation).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_type", "grpc_service", "grpc_method"]
)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC, until the last response message.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0),
)


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if handler.unary_unary:
            labels = ("unary", service, method)
            return grpc.unary_unary_rpc_method_handler(
                _wrap(handler.unary_unary, labels),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            labels = ("server_stream", service, method)
            return grpc.unary_stream_rpc_method_handler(
                _wrap(handler.unary_stream, labels),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            labels = ("client_stream", service, method)
            return grpc.stream_unary_rpc_method_handler(
                _wrap(handler.stream_unary, labels),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        labels = ("bidi_stream", service, method)
        return grpc.stream_stream_rpc_method_handler(
            _wrap(handler.stream_stream, labels),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap(behavior: Callable[..., Any], labels: tuple[str, str, str]) -> Callable[..., Any]:
    """Wraps a handler, keeping its shape: async generators stay generators, coroutines stay coroutines."""
    if inspect.isasyncgenfunction(behavior):

        async def stream_wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = _start(labels)
            code = grpc.StatusCode.OK
            try:
                async for response in behavior(request, context):
                    yield response
                code = _code(context, grpc.StatusCode.OK)
            except BaseException as exc:
                code = _code_of(exc, context)
                raise
            finally:
                _finish(labels, code, started)

        return stream_wrapper

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = _start(labels)
        code = grpc.StatusCode.OK
        try:
            result = behavior(request, context)
            if inspect.isawaitable(result):
                result = await result
            code = _code(context, grpc.StatusCode.OK)
            return result
        except BaseException as exc:
            code = _code_of(exc, context)
            raise
        finally:
            _finish(labels, code, started)

    return wrapper


def _start(labels: tuple[str, str, str]) -> float:
    STARTED.labels(*labels).inc()
    return time.perf_counter()


def _finish(labels: tuple[str, str, str], code: grpc.StatusCode, started: float) -> None:
    HANDLED.labels(*labels, code.name).inc()
    HANDLING_SECONDS.labels(*labels).observe(time.perf_counter() - started)


def _code(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The status the handler set (context.set_code / abort), else `default`."""
    try:
        code = context.code()
    except Exception:  # older grpc releases lack code() on aio contexts
        return default
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code
    for candidate in grpc.StatusCode:  # some releases return the integer value
        if candidate.value[0] == code:
            return candidate
    return default


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AbortError):
        return _code(context, grpc.StatusCode.UNKNOWN)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
