"""Clients of the coordinator's APIs: :class:`CoordinatorClient` for the gRPC runs API."""

from test_coordinator.client.grpc_client import (
    CoordinatorClient,
    CoordinatorError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Problem,
    ResourceExhausted,
    Run,
    RunEvent,
    RunPage,
    RunRejected,
    Scenario,
    Unauthenticated,
    Unavailable,
    Validation,
)
from test_coordinator.ports.storage import RunStatus

__all__ = [
    "CoordinatorClient",
    "CoordinatorError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Problem",
    "ResourceExhausted",
    "Run",
    "RunEvent",
    "RunPage",
    "RunRejected",
    "RunStatus",
    "Scenario",
    "Unauthenticated",
    "Unavailable",
    "Validation",
]
