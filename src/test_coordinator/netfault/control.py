"""The control channel's requests, one JSON object a line, and their replies.

Requests, each answered by one line ``{"ok": true, ...}``:

* ``{"op": "set", "id": "f1", "fault": {"kind": "latency", "ms": 20}}``, optionally
  with ``"pulse": {"on_ms": 500, "off_ms": 1500}``: ``"replaced"`` says whether
  a fault of that id was there (it is replaced, stats and all). With
  ``"owner": "run-1"`` it is refused while a fault whose id does not start with
  ``run-1`` is set (another run's: two runs must not fault one proxy at once);
* ``{"op": "clear", "id": "f1"}``: ``"cleared": true`` and the fault's final
  ``"stats"``, or ``"cleared": false`` if no such fault (an undo may be repeated),
  with the ``"stats"`` of the one cleared before under that id, if the proxy has them;
* ``{"op": "clear_all"}``: the ``"cleared"`` ids;
* ``{"op": "state"}``: where it listens and forwards, and ``"faults"``: each
  one's id, fault, pulse, whether it acts now, and stats;
* ``{"op": "stats"}``: the proxy's counters and each fault's stats by id.

Anything else gets ``{"ok": false, "error": "..."}``, and the connection stays usable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from test_coordinator.netfault.errors import FaultSpecError, ProxyBusy
from test_coordinator.netfault.model import fault_from_json, pulse_from_json
from test_coordinator.netfault.proxy import NetfaultProxy

Reply = dict[str, object]


def _fault_id(request: Mapping[str, object]) -> str:
    fault_id = request.get("id")
    if not isinstance(fault_id, str):
        raise FaultSpecError('"id" must be a string naming the fault')
    return fault_id


def _set(proxy: NetfaultProxy, request: Mapping[str, object]) -> Reply:
    fault_id = _fault_id(request)
    if "fault" not in request:
        raise FaultSpecError('"set" needs a "fault"')
    fault = fault_from_json(request["fault"])
    pulse = None if request.get("pulse") is None else pulse_from_json(request["pulse"])
    owner = request.get("owner")
    if owner is not None:
        if not isinstance(owner, str) or not owner or not fault_id.startswith(owner):
            raise FaultSpecError('"owner" must be a string that starts the fault\'s "id"')
        others = proxy.fault_ids_not_of(owner)
        if others:
            raise ProxyBusy(
                f"faults of another owner are set: {', '.join(others)}; "
                "one run at a time faults a proxy"
            )
    return {"id": fault_id, "replaced": proxy.set_fault(fault_id, fault, pulse)}


def _clear(proxy: NetfaultProxy, request: Mapping[str, object]) -> Reply:
    fault_id = _fault_id(request)
    stats = proxy.clear_fault(fault_id)
    if stats is None:
        earlier = proxy.cleared_stats(fault_id)
        if earlier is None:
            return {"id": fault_id, "cleared": False}
        return {"id": fault_id, "cleared": False, "stats": earlier.to_json()}
    return {"id": fault_id, "cleared": True, "stats": stats.to_json()}


def _clear_all(proxy: NetfaultProxy, request: Mapping[str, object]) -> Reply:
    return {"cleared": proxy.clear_all()}


def _state(proxy: NetfaultProxy, request: Mapping[str, object]) -> Reply:
    return proxy.state()


def _stats(proxy: NetfaultProxy, request: Mapping[str, object]) -> Reply:
    return proxy.stats()


_Op = Callable[[NetfaultProxy, Mapping[str, object]], Reply]

OPS: dict[str, tuple[_Op, frozenset[str]]] = {
    "set": (_set, frozenset({"op", "id", "fault", "pulse", "owner"})),
    "clear": (_clear, frozenset({"op", "id"})),
    "clear_all": (_clear_all, frozenset({"op"})),
    "state": (_state, frozenset({"op"})),
    "stats": (_stats, frozenset({"op"})),
}


def error_reply(message: str) -> Reply:
    return {"ok": False, "error": message}


def handle_request(proxy: NetfaultProxy, line: bytes) -> Reply:
    """The reply to one request line; never raises for bad input."""
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        return error_reply(f"invalid JSON: {exc}")
    if not isinstance(request, dict):
        return error_reply('a request is a JSON object with an "op"')
    op = request.get("op")
    known = OPS.get(op) if isinstance(op, str) else None
    if known is None:
        return error_reply(f"unknown op {op!r} (one of: {', '.join(OPS)})")
    handler, fields = known
    unknown = sorted(set(request) - fields)
    if unknown:
        return error_reply(f"{op}: unknown field(s) {', '.join(unknown)}")
    try:
        return {"ok": True, **handler(proxy, request)}
    except ProxyBusy as exc:
        return {**error_reply(str(exc)), "busy": True}
    except FaultSpecError as exc:
        return error_reply(str(exc))


def encode_reply(reply: Reply) -> bytes:
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"
