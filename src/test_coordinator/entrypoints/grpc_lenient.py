"""A gRPC service whose requests that do not parse are refused with INVALID_ARGUMENT.

grpcio answers a request that is not a valid protobuf message with UNKNOWN and logs
a traceback: the deserializer's exception escapes before any handler runs. Here the
deserializer keeps what went wrong (:class:`MalformedRequest`), and the handler,
after the service's own authorization, refuses it with the message type it expected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

Authorize = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    """A request's bytes that are not a ``message_type``."""

    message_type: str
    error: str

    def describe(self) -> str:
        return f"the request is not a valid {self.message_type} message: {self.error}"


def add_lenient_service(
    server: grpc.aio.Server,
    descriptor: ServiceDescriptor,
    messages: ModuleType,
    servicer: object,
    authorize: Authorize,
) -> None:
    """Serve ``servicer`` (a method per RPC of ``descriptor``, named as in the proto) on
    ``server``; ``messages``: the generated ``_pb2`` module of the message classes."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in descriptor.methods:
        request_class = getattr(messages, method.input_type.name)
        response_class = getattr(messages, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        if method.client_streaming:
            raise ValueError(f"{method.full_name}: client streaming is not supported here")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _checked_stream(behaviour, authorize),
                request_deserializer=_lenient(request_class),
                response_serializer=response_class.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _checked(behaviour, authorize),
                request_deserializer=_lenient(request_class),
                response_serializer=response_class.SerializeToString,
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )
    server.add_registered_method_handlers(descriptor.full_name, handlers)


def _lenient(request_class: Any) -> Callable[[bytes], Any]:
    name = request_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return request_class.FromString(data)
        except DecodeError as exc:
            return MalformedRequest(name, str(exc).rpartition(": ")[2] or "unreadable")

    return parse


def _checked(behaviour: Any, authorize: Authorize) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            await authorize(context)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        return await behaviour(request, context)

    return handle


def _checked_stream(behaviour: Any, authorize: Authorize) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, MalformedRequest):
            await authorize(context)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        async for response in behaviour(request, context):
            yield response

    return handle
