"""``eventually()``: wait for a condition with a deadline, on the simulated clock or on the wall clock.

Executions of the local cloud run in background threads, so a test that waits for one of their side effects polls
in real time; the emulator's controllers move only when the simulated clock does, so a test that waits for a rollout
advances that clock. Both waits share one helper: a generous deadline (a loaded 2-core machine is slow, a hung
test is slower), and a failure that names what was awaited and what the last check saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WALL_TIMEOUT_S = 120.0
"""Real seconds: generous, a passing wait returns as soon as the probe does; only a broken test waits this long."""

_FIRST_PAUSE_S = 0.01
_MAX_PAUSE_S = 0.25


def eventually(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float | None = None,
    advance: Callable[[float], object] | None = None,
    step: float = 1.0,
) -> T:
    """Call ``probe`` until it returns something other than None or False (or stops raising AssertionError).

    Without ``advance`` the wait is in real time: pauses grow from 10 ms to 250 ms, the deadline is ``timeout`` real
    seconds (default :data:`WALL_TIMEOUT_S`). With ``advance`` (``cluster.advance``, ``clock.advance``) the probe
    runs between simulated steps of ``step`` seconds and ``timeout`` (required) counts simulated seconds; nothing
    sleeps. On the deadline an AssertionError names ``what`` and the last value or assertion the probe gave.
    A probe that sees the wait is hopeless (the execution it waits on has ended) calls ``pytest.fail``: only
    AssertionError means "not yet".
    """
    if advance is not None and timeout is None:
        raise ValueError("eventually(advance=...) needs a timeout in simulated seconds")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    limit = WALL_TIMEOUT_S if timeout is None else timeout
    started = time.monotonic()
    elapsed = 0.0
    pause = _FIRST_PAUSE_S
    sleeper = threading.Event()
    last: object = None
    while True:
        try:
            value = probe()
        except AssertionError as error:
            last = error
        else:
            if value is not None and value is not False:
                return value
            last = value
        if advance is None:
            elapsed = time.monotonic() - started
            if elapsed >= limit:
                break
            sleeper.wait(min(pause, limit - elapsed))
            pause = min(pause * 2, _MAX_PAUSE_S)
        else:
            if elapsed >= limit:
                break
            advance(step)
            elapsed += step
    unit = "simulated" if advance is not None else "real"
    raise AssertionError(f"gave up waiting for {what} after {elapsed:.1f} {unit} seconds; last check: {last!r}")
