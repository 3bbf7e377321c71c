from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_QUEUED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_PASSED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_ABORTED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_QUEUED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_PASSED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_ERROR: RunStatus
RUN_STATUS_ABORTED: RunStatus
RUN_STATUS_CANCELLED: RunStatus

class StartRunRequest(_message.Message):
    __slots__ = ("scenario", "document", "vars", "seed")
    class VarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VARS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    scenario: str
    document: str
    vars: _containers.ScalarMap[str, str]
    seed: int
    def __init__(self, scenario: _Optional[str] = ..., document: _Optional[str] = ..., vars: _Optional[_Mapping[str, str]] = ..., seed: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "scenario", "status", "submitted_at_ms", "started_at_ms", "ended_at_ms", "outcome", "reason", "seed", "source", "vars", "queue_position", "waiting_for", "cancel_requested", "detail")
    class VarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VARS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    scenario: str
    status: RunStatus
    submitted_at_ms: int
    started_at_ms: int
    ended_at_ms: int
    outcome: str
    reason: str
    seed: int
    source: str
    vars: _containers.ScalarMap[str, str]
    queue_position: int
    waiting_for: str
    cancel_requested: bool
    detail: RunDetail
    def __init__(self, run_id: _Optional[str] = ..., scenario: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., submitted_at_ms: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., ended_at_ms: _Optional[int] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., seed: _Optional[int] = ..., source: _Optional[str] = ..., vars: _Optional[_Mapping[str, str]] = ..., queue_position: _Optional[int] = ..., waiting_for: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., detail: _Optional[_Union[RunDetail, _Mapping]] = ...) -> None: ...

class RunDetail(_message.Message):
    __slots__ = ("setup", "steady_state", "steps", "checks", "recoveries", "undos")
    SETUP_FIELD_NUMBER: _ClassVar[int]
    STEADY_STATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    UNDOS_FIELD_NUMBER: _ClassVar[int]
    setup: StepResult
    steady_state: _containers.RepeatedCompositeFieldContainer[StepResult]
    steps: _containers.RepeatedCompositeFieldContainer[StepResult]
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    recoveries: _containers.RepeatedCompositeFieldContainer[Recovery]
    undos: _containers.RepeatedCompositeFieldContainer[UndoResult]
    def __init__(self, setup: _Optional[_Union[StepResult, _Mapping]] = ..., steady_state: _Optional[_Iterable[_Union[StepResult, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[StepResult, _Mapping]]] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., recoveries: _Optional[_Iterable[_Union[Recovery, _Mapping]]] = ..., undos: _Optional[_Iterable[_Union[UndoResult, _Mapping]]] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("step_id", "name", "kind", "status", "started_at_ms", "ended_at_ms", "detail", "targets", "value_json")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    name: str
    kind: str
    status: str
    started_at_ms: float
    ended_at_ms: float
    detail: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    value_json: str
    def __init__(self, step_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., started_at_ms: _Optional[float] = ..., ended_at_ms: _Optional[float] = ..., detail: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., value_json: _Optional[str] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("index", "name", "kind", "status", "detail", "value_json")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    kind: str
    status: str
    detail: str
    value_json: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class Recovery(_message.Message):
    __slots__ = ("service", "step_id", "step_name", "fault", "injected_at_ms", "recovered_at_ms", "detail", "restore", "restored_at_ms", "restored_by", "recovery_ms", "recovery_from_restore_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    INJECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    RESTORED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESTORED_BY_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_MS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FROM_RESTORE_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    step_id: str
    step_name: str
    fault: str
    injected_at_ms: float
    recovered_at_ms: float
    detail: str
    restore: str
    restored_at_ms: float
    restored_by: str
    recovery_ms: float
    recovery_from_restore_ms: float
    def __init__(self, service: _Optional[str] = ..., step_id: _Optional[str] = ..., step_name: _Optional[str] = ..., fault: _Optional[str] = ..., injected_at_ms: _Optional[float] = ..., recovered_at_ms: _Optional[float] = ..., detail: _Optional[str] = ..., restore: _Optional[str] = ..., restored_at_ms: _Optional[float] = ..., restored_by: _Optional[str] = ..., recovery_ms: _Optional[float] = ..., recovery_from_restore_ms: _Optional[float] = ...) -> None: ...

class UndoResult(_message.Message):
    __slots__ = ("undo_id", "service", "action", "status", "detail")
    UNDO_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    undo_id: str
    service: str
    action: str
    status: str
    detail: str
    def __init__(self, undo_id: _Optional[str] = ..., service: _Optional[str] = ..., action: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("scenario", "statuses", "started_from_ms", "started_to_ms", "limit", "cursor")
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    STARTED_FROM_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_TO_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    scenario: str
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    started_from_ms: int
    started_to_ms: int
    limit: int
    cursor: str
    def __init__(self, scenario: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., started_from_ms: _Optional[int] = ..., started_to_ms: _Optional[int] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_cursor")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_cursor: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_seq")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_seq: int
    def __init__(self, run_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("seq", "at_ms", "kind", "data_json", "run")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at_ms: float
    kind: str
    data_json: str
    run: Run
    def __init__(self, seq: _Optional[int] = ..., at_ms: _Optional[float] = ..., kind: _Optional[str] = ..., data_json: _Optional[str] = ..., run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListScenariosRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Scenario(_message.Message):
    __slots__ = ("name", "file")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    def __init__(self, name: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class ListScenariosResponse(_message.Message):
    __slots__ = ("scenarios",)
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    scenarios: _containers.RepeatedCompositeFieldContainer[Scenario]
    def __init__(self, scenarios: _Optional[_Iterable[_Union[Scenario, _Mapping]]] = ...) -> None: ...

class ValidateScenarioRequest(_message.Message):
    __slots__ = ("scenario", "document", "vars")
    class VarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VARS_FIELD_NUMBER: _ClassVar[int]
    scenario: str
    document: str
    vars: _containers.ScalarMap[str, str]
    def __init__(self, scenario: _Optional[str] = ..., document: _Optional[str] = ..., vars: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("file", "line", "column", "path", "message")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    column: int
    path: str
    message: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ..., path: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ValidateScenarioResponse(_message.Message):
    __slots__ = ("valid", "problems")
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    def __init__(self, valid: _Optional[bool] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ...) -> None: ...

class ScenarioProblems(_message.Message):
    __slots__ = ("problems", "total")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    total: int
    def __init__(self, problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...
