"""``make demo`` end to end: the four-step story on the local cloud, as a reader of its output sees it."""

from __future__ import annotations

import io
import logging
import re
from contextlib import redirect_stderr

import pytest

from local import demo

# One demo run serves every test here. `make test` distributes with `--dist worksteal`, which hands each worker a
# contiguous run of tests, so these stay on one worker and the module fixture runs once per suite (with `--dist load`
# each worker that picked up one of them ran the whole demo; `loadgroup` does not group on pytest 9.2, xdist #1386).
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def story() -> tuple[int, str, str]:
    """One run of the demo (about 15 s): its exit code, what it printed, and what reached stderr or moto's loggers."""
    out, err = io.StringIO(), io.StringIO()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.WARNING)
    logging.getLogger().addHandler(keep)
    try:
        with redirect_stderr(err):
            code = demo.main(out, deploy=True)
    finally:
        logging.getLogger().removeHandler(keep)
    err.write("".join(f"{r.name}: {r.getMessage()[:200]}\n" for r in records if r.name.startswith("moto")))
    return code, out.getvalue(), err.getvalue()


def section(text: str, title: str) -> str:
    start = text.index(f"== {title}")
    end = text.find("\n== ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_demo_tells_the_four_steps_and_exits_zero(story: tuple[int, str, str]) -> None:
    code, text, _ = story
    assert code == 0, text
    assert text.rstrip().splitlines()[-1].startswith("demo OK")
    for title in ("1. first release", "2. ECR push", "3. ECR push", "4. operator rollback", "the ledger's view"):
        assert f"== {title}" in text


def test_demo_prints_each_state_with_its_simulated_offset_and_what_the_task_did(story: tuple[int, str, str]) -> None:
    _, text, _ = story
    second = section(text, "2. ECR push")
    live = second[: second.index("   timeline")]
    assert re.search(r"^   \+\s+0s  AcquireLock\s+lock on staging acquired$", live, re.MULTILINE)
    assert re.search(r"^   \+\s+0s  ApplyRelease\s+applied \d+ objects \(rel-[0-9a-f]{20}\)$", live, re.MULTILINE)
    # one CheckHealth watches the rollout until it is done (no Wait state in between) and answers within seconds
    assert re.search(r"^   \+\s+0s  CheckHealth\s+(\d+)/\1 workloads rolled out$", live, re.MULTILINE)
    healthy = re.search(r"^   \+\s+(\d+)s  IsHealthy$", live, re.MULTILINE)
    assert healthy, live
    assert 0 < int(healthy[1]) <= 20
    assert "WaitForRollout" not in second
    baking = re.search(r"^   \+\s+(\d+)s  Bake\s+healthy, (\d+) s of bake to go$", live, re.MULTILINE)
    assert baking, live
    assert int(baking[2]) <= 120
    assert re.search(r"^   \+\s+(\d+)s  Bake\s+healthy through the bake period$", live, re.MULTILINE), live
    recorded = re.search(r"^   \+\s+(\d+)s  RecordSuccess\s+rel-[0-9a-f]{20} recorded as last known-good$", live, re.M)
    assert recorded, live
    assert int(recorded[1]) - int(healthy[1]) >= 120  # the bake period counts from the healthy verdict
    assert re.search(rf"^   \+\s+{recorded[1]}s  Deployed$", live, re.MULTILINE)
    assert "WaitForBake" not in second  # Bake watches the workloads: no Wait state between its looks
    assert "   outcome: SUCCEEDED" in second


def test_demo_shows_the_crash_loop_detected_then_the_rollback(story: tuple[int, str, str]) -> None:
    _, text, _ = story
    third = section(text, "3. ECR push")
    assert re.search(r"\+\s+0s  CheckHealth\s+CrashLoopBackOff: analytics-service restarted 1 times", third)
    rolled = re.search(
        r"RecordRolledBack\s+(rel-[0-9a-f]{20}) recorded failed; rolled back to (rel-[0-9a-f]{20})", third
    )
    assert rolled, third
    assert "WaitForRollout" not in third  # the timeline: one CheckHealth watched until the crash loop showed
    assert "   outcome: FAILED (RolloutFailedError)" in third
    detected = re.search(r"fail fast: crash loop detected (\d+) s into the release", third)
    assert detected, third
    assert int(detected[1]) <= 30  # the first restart's crash, after the kubelet's first back-off
    fourth = section(text, "4. operator rollback")
    assert re.search(r"RecordRestored\s+rolled back to rel-[0-9a-f]{20}, now last known-good", fourth)


def test_the_ledger_view_lists_every_release_with_its_status_trigger_and_change(story: tuple[int, str, str]) -> None:
    _, text, _ = story
    ledger = section(text, "the ledger's view")
    rows = re.findall(
        r"^   (rel-[0-9a-f]{20})  (\w+)\s+(console|ecr_push main-\d)\s+(\S+(?: services)?)\s", ledger, re.M
    )
    assert [(status, trigger, changed) for _, status, trigger, changed in rows] == [
        ("succeeded", "console", "7 services"),
        ("succeeded", "ecr_push main-2", f"edc-service@{rows[1][3].split('@')[1]}"),
        ("rolled_back", "ecr_push main-3", f"analytics-service@{rows[2][3].split('@')[1]}"),
    ]
    first, second, failed = (row[0] for row in rows)
    assert f"{failed}: rolled back to {second}" in ledger
    assert f"last known-good: {first} (previously {second}" in ledger
    assert "quarantined digests: 1" in ledger
    assert f"analytics-service@{rows[2][3].split('@')[1]}: release {failed} failed" in ledger


def test_the_demo_keeps_moto_and_powertools_noise_off_the_terminal(story: tuple[int, str, str]) -> None:
    _, text, noise = story
    assert noise == ""  # moto's ERROR line for every Fail state, the health step's log lines echoed on its failure
    assert "FailureEventException" not in text
    assert "No application metrics to publish" not in text
    assert "TimeToDetectFailure" not in text.replace("(TimeToDetectFailure)", "")  # no EMF line echoed
