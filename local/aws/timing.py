"""How Step Functions waits pass time in the harness.

``simulated``: a wait of N seconds moves the shared :class:`SimClock` forward to ``entered + N`` and returns at once,
so the Kubernetes emulator's controllers (subscribed to the clock) progress exactly as much as the wait asked for.
Concurrent waits (Parallel branches, Map iterations) that end at the same instant advance the clock once, not once
each: a wait advances the clock only up to its own target.

``realtime``: the clock runs on its own (``SimClock.run_realtime(acceleration)``) and a wait blocks until the clock
reaches its target, so a 30 s Wait takes 30 s / ``acceleration`` of wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from local.cluster.clock import SimClock

TimeMode = Literal["simulated", "realtime"]

_REALTIME_TICK = 0.02
_REALTIME_SLACK_S = 5.0


class ClockTimekeeper:
    """Implements the harness's sleep over a :class:`SimClock` in either time mode."""

    def __init__(self, clock: SimClock, mode: TimeMode = "simulated", acceleration: float = 1.0) -> None:
        if acceleration <= 0:
            raise ValueError("acceleration must be positive")
        self.clock = clock
        self.mode: TimeMode = mode
        self.acceleration = acceleration
        self._advance_lock = threading.Lock()
        self.waited_s = 0.0

    def now(self) -> float:
        return self.clock.now()

    def sleep(
        self,
        seconds: float,
        *,
        interrupt: threading.Event | None = None,
        running: Callable[[], bool] | None = None,
    ) -> None:
        """Let ``seconds`` of clock time pass (see the module docstring for the two modes)."""
        if seconds <= 0:
            return
        target = self.clock.now() + seconds
        self.waited_s += seconds
        if self.mode == "simulated":
            with self._advance_lock:
                remaining = target - self.clock.now()
                if remaining > 0:
                    self.clock.advance(remaining)
            return
        # Real time: the clock is advanced by its own thread; give up a few seconds after the wall-time deadline so a
        # stopped clock cannot hang an execution forever.
        deadline = time.monotonic() + seconds / self.acceleration + _REALTIME_SLACK_S
        waiter = interrupt or threading.Event()
        while (remaining := target - self.clock.now()) > 0 and time.monotonic() < deadline:
            if running is not None and not running():
                return
            waiter.wait(min(_REALTIME_TICK, remaining / self.acceleration))
