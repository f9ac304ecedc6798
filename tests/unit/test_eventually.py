"""The tests' one waiting helper: returns what the probe found, advances simulated time, and fails naming the wait."""

from __future__ import annotations

import pytest

from local.cluster.clock import SimClock
from tests.eventually import eventually

pytestmark = pytest.mark.unit


def test_returns_the_first_value_the_probe_accepts() -> None:
    answers = iter([None, False, "token"])

    assert eventually(lambda: next(answers), what="a token", timeout=5) == "token"


def test_on_the_simulated_clock_it_advances_between_probes_and_never_sleeps() -> None:
    clock = SimClock(start=1000.0)

    def ready() -> bool:
        assert clock.now() >= 1030, f"only at {clock.now()}"
        return True

    assert eventually(ready, what="t=1030", timeout=60, advance=clock.advance, step=5)
    assert clock.now() == 1030


def test_a_wait_that_never_ends_names_what_it_awaited_and_the_last_check() -> None:
    clock = SimClock(start=0.0)

    def never() -> bool:
        raise AssertionError("replicas 0/3")

    with pytest.raises(AssertionError, match=r"waiting for api to roll out after 10\.0 simulated seconds.*0/3"):
        eventually(never, what="api to roll out", timeout=10, advance=clock.advance)
    assert clock.now() == 10


def test_the_wall_clock_deadline_holds() -> None:
    with pytest.raises(AssertionError, match=r"waiting for nothing after 0\.[1-9].* real seconds; last check: None"):
        eventually(lambda: None, what="nothing", timeout=0.1)


def test_simulated_waits_need_a_deadline() -> None:
    with pytest.raises(ValueError, match="timeout"):
        eventually(lambda: True, what="x", advance=SimClock().advance)
