"""The simulated clock shared by the emulator's controllers, the kubelet simulator and the AWS harness.

Tests advance it explicitly (:meth:`SimClock.advance`); the demo runs it in real time or accelerated
(:meth:`SimClock.run_realtime`). Listeners are told after every advance so controllers can reconcile.

A client waiting on the API server (a watch with nothing to report) waits for simulated time to pass. Who moves it:
the clock's thread in real time; the test otherwise; and, once :meth:`SimClock.drive_by_waiters` is on (the AWS
harness's ``simulated`` time mode, where nothing else runs while a Lambda waits), the waiter itself: each second of
simulated time costs a waiter :data:`IDLE_PACE` of wall time with nothing to report, and a waiter moves the clock only
if nobody moved it meanwhile and no waiter moved it within the last :data:`IDLE_PACE` (so several waiters do not make
time pass several times as fast, and a client has that long to read what the last second brought).

Idle stretches are crossed in one step. A listener may say when it next has something to do (``due``: the earliest
simulated time at which it could act with nothing else happening; ``math.inf`` for never); while every listener
has said so, :meth:`SimClock.advance` skips the ticks before the earliest of those times and tells the listeners at
the first tick (of the same ``step`` grid) at or after it. The ticks skipped are exactly those at which every
listener would have done nothing, so what the listeners see and do is the same as ticking through; a listener
without ``due`` (a test's hook) is told every tick, as before. This is how a simulated day of EventBridge back-off
or an environment asleep overnight costs a handful of reconciles instead of one per second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

Listener = Callable[[float], None]
Due = Callable[[float], float]
"""Given the clock's reading, when the listener next acts (at or before it: tick as usual; ``math.inf``: never)."""

IDLE_PACE = 0.02
"""Wall seconds a waiter waits for something to report before it lets one simulated second pass (driven mode)."""


class SimClock:
    """A monotonic clock in seconds that only moves when told to (or in real time when started)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.RLock()
        self._listeners: list[tuple[Listener, Due | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._driven = False
        self._drive_lock = threading.Lock()
        self._last_idle_pass = 0.0
        self.tick_seconds = 1.0
        """The ``step`` of the advance under way (after it, the last one's): how far apart the ticks it makes or skips
        are."""

    def now(self) -> float:
        with self._lock:
            return self._now

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def subscribe(self, listener: Listener, *, due: Due | None = None) -> None:
        """Tell ``listener`` the time after every tick; with ``due``, only at the ticks it says it acts (module
        docstring)."""
        with self._lock:
            self._listeners.append((listener, due))

    def advance(self, seconds: float, *, step: float = 1.0) -> None:
        """Move time forward by ``seconds`` in increments of at most ``step``, telling listeners after each (ticks at
        which every listener says it has nothing to do are skipped: see the module docstring)."""
        if seconds < 0:
            raise ValueError("the clock never goes backwards")
        remaining = seconds
        self.tick_seconds = step
        while remaining > 0:
            delta = min(step, remaining)
            with self._lock:
                listeners = list(self._listeners)
                start = self._now
            idle_until = self._idle_until(listeners, start)
            if idle_until > start + delta:  # the first tick at or after it, or the end
                ticks = math.ceil((idle_until - start) / step) if idle_until < start + remaining else math.inf
                delta = min(ticks * step, remaining)
            with self._lock:
                self._now += delta
                now = self._now
            for listener, _ in listeners:
                listener(now)
            remaining -= delta

    @staticmethod
    def _idle_until(listeners: list[tuple[Listener, Due | None]], now: float) -> float:
        """The earliest time a listener acts; ``now`` when one of them cannot say."""
        earliest = math.inf
        for _, due in listeners:
            if due is None:
                return now
            earliest = min(earliest, due(now))
        return earliest

    def drive_by_waiters(self, on: bool = True) -> None:
        """Let waiters with nothing to report move the clock themselves (see the module docstring)."""
        self._driven = on

    @property
    def driven_by_waiters(self) -> bool:
        return self._driven and self._thread is None

    def pass_idle(self, seen: float, target: float) -> bool:
        """A waiter that saw the clock at ``seen`` and had nothing to report since: in driven mode, move the clock to
        ``target`` unless someone moved it meanwhile. Whether the clock moved (by anyone) since ``seen``."""
        if not self.driven_by_waiters:
            return self.now() > seen
        with self._drive_lock:
            now = self.now()
            paced = time.monotonic() - self._last_idle_pass >= IDLE_PACE
            if now == seen and target > now and paced:
                self.advance(target - now)
                self._last_idle_pass = time.monotonic()
        return self.now() > seen

    def run_realtime(self, factor: float = 1.0, tick: float = 0.05) -> None:
        """Advance in a background thread: ``factor`` simulated seconds per real second."""
        if self._thread is not None:
            return

        def loop() -> None:
            last = time.monotonic()
            while not self._stop.wait(tick):
                current = time.monotonic()
                self.advance((current - last) * factor, step=max(tick * factor, 0.001))
                last = current

        self._thread = threading.Thread(target=loop, name="sim-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
