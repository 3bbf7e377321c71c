"""One direction of a proxied connection: bytes read from a source, written to a sink.

With no fault on its flow and nothing queued, a chunk is written as it
arrives. Otherwise it goes through a delay queue: each chunk (and the end of
stream, as ``None``) is stamped with the time it may leave, arrival + latency,
later if a bandwidth bucket says so, never before the chunk ahead of it (order
is kept). One timer per pipe waits for the head of the queue, so delays do not
add up however many chunks are in flight; the timers are the proxy's
(:mod:`timers`), accurate to tens of microseconds.

Backpressure: reading the source is paused while the sink's write buffer is
above its high-water mark, while the queue holds more than ``QUEUE_LIMIT``
bytes, while a partition withholds the flow, and until the sink exists.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from test_coordinator.netfault.plan import FlowPlan
from test_coordinator.netfault.shaping import TokenBucket, slice_size
from test_coordinator.netfault.timers import Cancellable, now

if TYPE_CHECKING:
    from test_coordinator.netfault.link import Link

QUEUE_LIMIT = 1 << 20
WITHHELD_LIMIT = 64 * 1024
"""Bytes read from a source whose flow is withheld (partition) or has no sink yet."""
"""Bytes a delay queue may hold before the source is paused (bounds memory per pipe)."""

_RELEASE_SLACK_S = 50e-6
"""A chunk due within this of now leaves with the ones due now (one write, one timer fewer)."""


class Pipe:
    __slots__ = (
        "_buckets",
        "_eof_held",
        "_last_release",
        "_queue",
        "_queued_bytes",
        "_reading_paused",
        "_sink_full",
        "_timer",
        "eof_in",
        "eof_out",
        "index",
        "link",
        "sink",
        "source",
    )

    def __init__(self, link: Link, index: int) -> None:
        self.link = link
        self.index = index  # 0: client → server (upstream), 1: server → client (downstream)
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None
        self.eof_in = False  # the source sent its end of stream
        self.eof_out = False  # ... and it was passed on to the sink
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._queued_bytes = 0
        self._last_release = 0.0
        self._timer: Cancellable | None = None
        self._sink_full = False
        self._reading_paused = False
        self._eof_held = False
        self._buckets: dict[int, TokenBucket] = {}

    @property
    def buffered_bytes(self) -> int:
        """Bytes the proxy holds for this flow: queued, and in the sink's write buffer."""
        sink = self.sink
        in_sink = sink.get_write_buffer_size() if sink is not None else 0
        return self._queued_bytes + in_sink

    # --- from the transports ----------------------------------------------------

    def feed(self, view: memoryview) -> None:
        """Bytes read into the proxy's shared read buffer, which the next read reuses.

        Passed through, they are written from that buffer: no copy in Python.
        A sink that cannot send them at once keeps a reference to the buffer,
        which the proxy then lends it (:meth:`NetfaultProxy.lend_read_buffer`).
        The delay queue keeps a copy.
        """
        proxy = self.link.proxy
        proxy.bytes_in[self.index] += len(view)
        plan = proxy.flow_plans[self.index]
        sink = self.sink
        if plan is None and not self._queue and sink is not None:
            sink.write(view)
            if sink.get_write_buffer_size():
                proxy.lend_read_buffer(sink)
            return
        self._take(bytes(view), plan)

    def feed_eof(self) -> None:
        self.eof_in = True
        plan = self.link.proxy.flow_plans[self.index]
        delay_s = 0.0
        if plan is not None:
            if plan.drop:  # a blackhole swallows the end of stream too, until it is cleared
                self._eof_held = True
                return
            for entry in plan.withhold:  # a partition holds it until it heals
                entry.stats.eofs_delayed += 1
            delay_s = sum(fault.ms for _, fault in plan.latency) / 1000
            for entry, close in plan.slow_close:
                entry.touch(self.link.touched)
                entry.stats.eofs_delayed += 1
                delay_s += close.delay_ms / 1000
        self._enqueue(now() + delay_s, None)

    def set_sink_full(self, full: bool) -> None:
        self._sink_full = full
        self._update_reading()

    # --- from the proxy -----------------------------------------------------------

    def attach(self, source: asyncio.Transport | None, sink: asyncio.Transport | None) -> None:
        if source is not None:
            self.source = source
        if sink is not None:
            self.sink = sink
        self._release()

    def replan(self, plan: FlowPlan | None) -> None:
        """The faults on this flow changed: release what no longer waits, pause or resume."""
        if plan is not None:
            for entry in plan.withhold:
                entry.touch(self.link.touched)
            keep = {entry.serial for entry, _ in plan.bandwidth}
            for serial in [s for s in self._buckets if s not in keep]:
                del self._buckets[serial]
        else:
            self._buckets.clear()
        if plan is None or not plan.delays:
            self._last_release = 0.0
            self._release(force=True)
        else:
            self._release()
        if self._eof_held and (plan is None or not plan.drop):
            self._eof_held = False
            self.feed_eof()

    def stop(self) -> None:
        """The connection is gone: drop what is queued, stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._queued_bytes = 0

    # --- the delay queue -----------------------------------------------------------

    def _take(self, data: bytes, plan: FlowPlan | None) -> None:
        arrived = now()
        if plan is None or plan.withhold:  # behind queued bytes, or held by a partition
            if plan is not None:
                for entry in plan.withhold:
                    entry.stats.bytes_delayed += len(data)
            self._enqueue(arrived, data)
            return
        size = len(data)
        if plan.drop:
            for entry in plan.drop:
                entry.touch(self.link.touched)
                entry.stats.bytes_dropped += size
            return
        leave = arrived
        for entry, latency in plan.latency:
            delay_ms = latency.ms
            if latency.jitter_ms:
                delay_ms += entry.rng.uniform(-latency.jitter_ms, latency.jitter_ms)
            if delay_ms > 0:
                entry.touch(self.link.touched)
                entry.stats.bytes_delayed += size
                leave += delay_ms / 1000
        if not plan.bandwidth:
            self._enqueue(leave, data)
            return
        step = min(slice_size(fault.bytes_per_s) for _, fault in plan.bandwidth)
        for start in range(0, size, step):
            piece = data if size <= step else data[start : start + step]
            self._enqueue(self._shaped(plan, len(piece), leave, arrived), piece)

    def _shaped(self, plan: FlowPlan, size: int, ready: float, arrived: float) -> float:
        """When ``size`` bytes ready at ``ready`` may leave, given every bandwidth fault."""
        leave = ready
        for entry, fault in plan.bandwidth:
            bucket = self._buckets.get(entry.serial)
            if bucket is None:
                burst = slice_size(fault.bytes_per_s)
                bucket = self._buckets[entry.serial] = TokenBucket(
                    fault.bytes_per_s, burst, arrived
                )
            allowed = bucket.reserve(size, leave)
            if allowed > leave + _RELEASE_SLACK_S:
                entry.touch(self.link.touched)
                entry.stats.bytes_delayed += size
            leave = allowed
        return leave

    def _enqueue(self, leave: float, item: bytes | None) -> None:
        if leave < self._last_release:
            leave = self._last_release
        self._last_release = leave
        queue = self._queue
        queue.append((leave, item))
        if item is not None:
            self._queued_bytes += len(item)
        if len(queue) == 1 and self._timer is None:
            self._release()
        elif self._queued_bytes > QUEUE_LIMIT:
            self._update_reading()

    def _on_timer(self) -> None:
        self._timer = None
        self._release()

    def _release(self, *, force: bool = False) -> None:
        """Write what is due (everything if ``force``), then wait for the next head."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sink = self.sink
        plan = self.link.proxy.flow_plans[self.index]
        queue = self._queue
        if sink is not None and queue and not (plan is not None and plan.withhold):
            due = now() + _RELEASE_SLACK_S
            while queue and (force or queue[0][0] <= due):
                item = queue.popleft()[1]
                if item is None:
                    self._send_eof()
                    return
                self._queued_bytes -= len(item)
                if not sink.is_closing():
                    sink.write(item)
            if queue:
                self._timer = self.link.proxy.timers.call_at(queue[0][0], self._on_timer)
        self._update_reading()

    def _send_eof(self) -> None:
        self.eof_out = True
        sink = self.sink
        if sink is not None and not sink.is_closing() and sink.can_write_eof():
            sink.write_eof()
        self.link.pipe_finished()

    def _update_reading(self) -> None:
        source = self.source
        if source is None or self.eof_in:  # after an end of stream, resuming would read it again
            return
        plan = self.link.proxy.flow_plans[self.index]
        waiting = self.sink is None or (plan is not None and bool(plan.withhold))
        # Bytes that cannot leave yet (no upstream yet, a partition) are still read, up to
        # about a socket buffer's worth: a client that gives up and closes is seen, and its
        # connection freed, instead of held until the partition heals.
        pause = self._sink_full or self._queued_bytes > (WITHHELD_LIMIT if waiting else QUEUE_LIMIT)
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                source.pause_reading()
            else:
                source.resume_reading()
