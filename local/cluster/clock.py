"""The simulated clock shared by the emulator's controllers, the kubelet simulator and the AWS harness.

Tests advance it explicitly (:meth:`SimClock.advance`); the demo runs it in real time or accelerated
(:meth:`SimClock.run_realtime`). Listeners are told after every advance so controllers can reconcile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

Listener = Callable[[float], None]


class SimClock:
    """A monotonic clock in seconds that only moves when told to (or in real time when started)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        with self._lock:
            return self._now

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def advance(self, seconds: float, *, step: float = 1.0) -> None:
        """Move time forward by ``seconds`` in increments of at most ``step``, telling listeners after each."""
        if seconds < 0:
            raise ValueError("the clock never goes backwards")
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
            with self._lock:
                self._now += delta
                now = self._now
                listeners = list(self._listeners)
            for listener in listeners:
                listener(now)
            remaining -= delta

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
