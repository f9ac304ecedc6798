"""The Job controller (pkg/controller/job): parallelism, completions, backoffLimit.

Failures are counted by pod phase only (restarts of an OnFailure pod do not count against backoffLimit).
"""

from __future__ import annotations

from local.cluster.controllers.base import Context, int_field
from local.cluster.objects import (
    JOBS,
    PODS,
    condition_true,
    fmt_time,
    is_deleting,
    name_of,
    namespace_of,
    omit_zero,
    pod_active,
    uid_of,
)
from local.cluster.store import Obj


def _condition(type_: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _phase_count(pods: list[Obj], phase: str) -> int:
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == phase)


class JobController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, job: Obj, now: float) -> None:
        if is_deleting(job):
            return
        spec = job.get("spec") or {}
        old_status: Obj = job.get("status") or {}
        finished = condition_true(job, "Complete") or condition_true(job, "Failed")
        pods = self.ctx.cache.owned(uid_of(job), PODS)
        active = [p for p in pods if pod_active(p)]
        succeeded = _phase_count(pods, "Succeeded")
        failed = _phase_count(pods, "Failed")
        conditions: list[Obj] = list(old_status.get("conditions") or [])
        status: Obj = {"startTime": old_status.get("startTime") or fmt_time(now)}
        stamp = fmt_time(now)
        if not finished and not spec.get("suspend"):
            completions = int(spec.get("completions") or 1)
            if failed > int_field(spec, "backoffLimit", 6):
                for pod in active:
                    self.ctx.delete(PODS, pod)
                active = []
                message = "Job has reached the specified backoff limit"
                conditions += [
                    _condition("FailureTarget", "BackoffLimitExceeded", message, stamp),
                    _condition("Failed", "BackoffLimitExceeded", message, stamp),
                ]
            elif succeeded >= completions:
                message = "Reached expected number of succeeded pods"
                conditions += [
                    _condition("SuccessCriteriaMet", "CompletionsReached", message, stamp),
                    _condition("Complete", "CompletionsReached", message, stamp),
                ]
                status["completionTime"] = stamp
            else:
                want = min(int_field(spec, "parallelism", 1), completions - succeeded)
                active += self._start(job, want - len(active), now)
        if old_status.get("completionTime"):
            status["completionTime"] = old_status["completionTime"]
        status.update(
            {
                "active": len(active),
                "succeeded": succeeded,
                "failed": failed,
                "ready": sum(1 for p in active if condition_true(p, "Ready")),
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        )
        if conditions:
            status["conditions"] = conditions
        self.ctx.set_status(JOBS, job, omit_zero(status, ("active", "succeeded", "failed")))

    def _start(self, job: Obj, count: int, now: float) -> list[Obj]:
        template = (job.get("spec") or {}).get("template") or {}
        labels = {
            "batch.kubernetes.io/controller-uid": uid_of(job),
            "batch.kubernetes.io/job-name": name_of(job),
            "controller-uid": uid_of(job),
            "job-name": name_of(job),
        }
        started = []
        for _ in range(count):
            name = self.ctx.unique_pod_name(namespace_of(job), name_of(job))
            started.append(self.ctx.new_pod(job, "Job", template, name=name, extra_labels=labels, now=now))
        return started
