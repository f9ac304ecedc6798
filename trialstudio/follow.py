"""Following an execution live: its states as they come, then the timeline and the outcome (an exit code)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict

from botocore.exceptions import ClientError

from trialstudio import render
from trialstudio.control import CliError, ControlPlane
from trialstudio.output import FAILED, OK, Out

POLL_S = 0.5
EXECUTION = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[\w.-]+:[\w.-]+$")


def follow(cp: ControlPlane, arn: str, out: Out, *, timeout: float) -> int:
    """Print the execution's states as they come until it ends (or ``timeout``); the exit code of its outcome."""
    if not EXECUTION.match(arn):
        raise CliError(
            f"execution: {arn!r} is not an execution ARN (arn:aws:states:<region>:<account>:execution:...)", 2
        )
    try:
        cp.describe(arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            raise CliError(f"execution {arn} does not exist (check the ARN and the region)", 1) from None
        raise
    progress = out.progress
    progress.write(f"following {render.execution_label(arn)} ({arn})\n")
    follower = render.Follower(progress)
    started, deadline = time.perf_counter(), time.monotonic() + timeout
    while True:
        events = cp.history(arn)
        follower.feed(events)
        if any(e.type in render.END_EVENTS for e in events):
            break
        if time.monotonic() >= deadline:
            out.document({"execution_arn": arn, "status": "RUNNING", "state": follower.current})
            progress.write(
                f"\nstill running after {timeout:.0f} s in {follower.current}: "
                f"`trialstudio follow {arn}` picks it up again\n"
            )
            return FAILED
        time.sleep(POLL_S)
    described = cp.describe(arn)
    status, error, cause = str(described["status"]), described.get("error"), described.get("cause")
    out.document(
        {
            "execution_arn": arn,
            "status": status,
            "error": error,
            "cause": cause,
            "output": json.loads(described["output"]) if described.get("output") else None,
            "elapsed_s": render.elapsed(events),
            "timeline": [asdict(t) for t in render.state_times(events)],
        }
    )
    lines = [f"timeline ({render.elapsed(events):.0f} s, followed {time.perf_counter() - started:.1f} s):"]
    lines += render.timeline(events)
    lines.append(f"outcome: {status}" + (f" ({error})" if error else ""))
    if cause:
        lines.append(render.wrap(cause, "cause: ", "       "))
    progress.write("\n".join(lines) + "\n")
    return OK if status == "SUCCEEDED" else FAILED
