"""RED metrics for gRPC: a grpc.aio server interceptor over the metrics port.

Every RPC is counted and timed by its full method name
(``/grpc.health.v1.Health/Check``) and the status code it ended with. Calls to
methods the server does not have share one method label, ``<unknown>``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from test_coordinator.ports.metrics import Counter, Histogram, Metrics

UNKNOWN_METHOD = "<unknown>"
GRPC_LABELS = ("grpc_method", "grpc_code")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_HANDLER_KINDS = {
    # (request_streaming, response_streaming): (behaviour attribute, handler factory)
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def status_code(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """How the RPC ended: the code set on the context (abort sets it too), else by outcome."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class _Recorder:
    __slots__ = ("_duration", "_handled", "_method")

    def __init__(self, method: str, handled: Counter, duration: Histogram) -> None:
        self._method = method
        self._handled = handled
        self._duration = duration

    def record(self, started: float, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - started
        self._handled.inc(1.0, grpc_method=self._method, grpc_code=code.name)
        self._duration.observe(elapsed, grpc_method=self._method, grpc_code=code.name)

    def wrap(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """The same kind of callable (coroutine, async generator, generator, function), timed."""
        if inspect.isasyncgenfunction(behaviour):
            return self._wrap_async_generator(behaviour)
        if inspect.iscoroutinefunction(behaviour):
            return self._wrap_coroutine(behaviour)
        if inspect.isgeneratorfunction(behaviour):
            return self._wrap_generator(behaviour)
        return self._wrap_function(behaviour)

    def _wrap_coroutine(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await behaviour(request, context)
            except BaseException as error:
                self.record(started, status_code(context, error))
                raise
            self.record(started, status_code(context, None))
            return response

        return timed

    def _wrap_async_generator(
        self, behaviour: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., Any]:
        async def timed(request: Any, context: grpc.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in behaviour(request, context):
                    yield response
            except BaseException as error:
                self.record(started, status_code(context, error))
                raise
            self.record(started, status_code(context, None))

        return timed

    def _wrap_generator(self, behaviour: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def timed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                yield from behaviour(request, context)
            except BaseException as error:
                self.record(started, status_code(context, error))
                raise
            self.record(started, status_code(context, None))

        return timed

    def _wrap_function(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = behaviour(request, context)
            except BaseException as error:
                self.record(started, status_code(context, error))
                raise
            self.record(started, status_code(context, None))
            return response

        return timed


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Counts every RPC (``grpc_server_handled_total``) and times it (``..._handling_seconds``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._handled = metrics.counter(
            "grpc_server_handled_total", "RPCs completed on the server", GRPC_LABELS
        )
        self._duration = metrics.histogram(
            "grpc_server_handling_seconds",
            "Time to complete an RPC on the server",
            GRPC_LABELS,
            buckets=LATENCY_BUCKETS,
        )
        self._unknown = _Recorder(UNKNOWN_METHOD, self._handled, self._duration)
        # method -> (the handler grpc gave, its timed twin); bounded by the methods served.
        self._timed: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            # grpc answers UNIMPLEMENTED; the method name is the caller's, so not a label.
            self._unknown.record(time.perf_counter(), grpc.StatusCode.UNIMPLEMENTED)
            return handler
        method: str = handler_call_details.method
        cached = self._timed.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        timed = _timed_handler(handler, _Recorder(method, self._handled, self._duration))
        self._timed[method] = (handler, timed)
        return timed


def _timed_handler(handler: grpc.RpcMethodHandler, recorder: _Recorder) -> grpc.RpcMethodHandler:
    attribute, factory = _HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, attribute)
    return factory(
        recorder.wrap(behaviour),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
