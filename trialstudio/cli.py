"""``trialstudio``: the release workflow of one environment from a terminal (README "Operating").

Exit codes: 0 ok; 1 failed (an execution that did not succeed, an AWS error); 2 refused or usage (bad arguments, the
operator API said no, missing credentials). ``--output json`` prints one JSON document on stdout for scripts; the
live progress of ``follow``/``deploy``/``rollback`` goes to stderr then, so stdout stays parseable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from controlplane import platform
from controlplane.aws.approval import Approvals
from controlplane.models.approval import ApprovalOutcome
from controlplane.models.lock import LockRecord
from controlplane.models.offhours import SleepRecord, StayAwake
from controlplane.models.release import Degraded, LastKnownGood, ReleaseRecord

from trialstudio import cluster, pushes, render
from trialstudio.control import (
    REQUIRED_OUTPUTS,
    CliError,
    ControlPlane,
    Outputs,
    Running,
    aws_error,
    parse_services,
)
from trialstudio.follow import follow
from trialstudio.output import FAILED, OK, REFUSED, Out

DECISIONS = ("approve", "reject")
FOLLOW_TIMEOUT_S = 1800.0
_RELEASE = re.compile(r"^rel-[0-9a-f]{20}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def release_json(r: ReleaseRecord) -> dict[str, Any]:
    data: dict[str, Any] = r.model_dump(mode="json")
    data["healthy_after_s"] = (r.healthy_at - r.started_at).total_seconds() if r.healthy_at else None
    data["duration_s"] = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
    return data


# -- commands --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Status:
    environment: str
    records: list[ReleaseRecord]
    lkg: LastKnownGood | None
    lkg_record: ReleaseRecord | None
    running: list[Running]
    lock: LockRecord | None
    sleep: SleepRecord | None
    stay_awake: StayAwake | None
    quarantined: dict[str, str]
    degraded: Degraded | None

    @property
    def services(self) -> dict[str, str]:
        """digest -> service, over every release of the environment."""
        return {d: s for r in self.records for s, d in r.images.items()}

    @property
    def offhours(self) -> str:
        return self.sleep.status.value.lower() if self.sleep else "awake"

    @property
    def latest(self) -> ReleaseRecord | None:
        return self.records[-1] if self.records else None

    @classmethod
    def read(cls, cp: ControlPlane, environment: str) -> Status:
        records = cp.releases(environment)
        lkg = cp.ledger.last_known_good(environment)
        digests = {d for r in records for d in r.images.values()}
        return cls(
            environment=environment,
            records=records,
            lkg=lkg,
            lkg_record=cp.ledger.get_release(lkg.release_id) if lkg else None,
            running=cp.running(),
            lock=cp.locks.read(environment),
            sleep=cp.sleep.read(environment),
            stay_awake=cp.sleep.stay_awake(environment),
            quarantined=cp.ledger.quarantined(digests),
            degraded=cp.ledger.degraded(environment),
        )

    def document(self) -> dict[str, Any]:
        lkg, services = self.lkg, self.services
        return {
            "environment": self.environment,
            "last_known_good": (
                {**lkg.model_dump(mode="json"), "images": self.lkg_record.images if self.lkg_record else {}}
                if lkg
                else None
            ),
            "latest_release": release_json(self.latest) if self.latest else None,
            "running": [
                {"execution_arn": r.arn, "state_machine": r.state_machine, "started": r.started, "state": r.state}
                for r in self.running
            ],
            "lock": self.lock.model_dump(mode="json") if self.lock else None,
            "quarantined": {d: {"service": services.get(d), "cause": why} for d, why in self.quarantined.items()},
            "offhours": self.offhours,
            "stay_awake_until": _iso(self.stay_awake.until) if self.stay_awake else None,
            "degraded": self.degraded.model_dump(mode="json") if self.degraded else None,
        }

    def rows(self) -> list[tuple[str, str]]:
        rows = [("environment", self.environment)]
        if self.degraded is not None:
            d = self.degraded
            rows.append(("DEGRADED", f"since {d.since:%Y-%m-%d %H:%M:%S} ({render.execution_label(d.execution_arn)})"))
            rows.append(("", render.wrap(d.cause, "", " " * 17)))
            rows.append(("", "automatic deploys queue: `trialstudio rollback` or `trialstudio rollback --acknowledge`"))
        lkg, latest = self.lkg, self.latest
        if lkg is None:
            rows.append(("last known-good", "none (nothing deployed yet)"))
        else:
            at, by = f"{lkg.updated_at:%Y-%m-%d %H:%M:%S}", render.execution_label(lkg.execution_arn)
            rows.append(("last known-good", f"{lkg.release_id} (set {at} by {by})"))
        if self.lkg_record:
            rows += [("", f"{s}@{render.digest12(d)}") for s, d in sorted(self.lkg_record.images.items())]
        if latest is not None and (lkg is None or latest.release_id != lkg.release_id):
            rows.append(
                ("latest release", f"{latest.release_id} {latest.status.value} ({render.trigger_text(latest)})")
            )
        rows += [("running", self._running(r)) for r in self.running] or [("running", "nothing")]
        rows.append(("lock", self._lock()))
        rows.append(("quarantined", f"{len(self.quarantined)} digest(s)" if self.quarantined else "none"))
        rows += [("", f"{self.services.get(d, '?')}@{render.digest12(d)}") for d in sorted(self.quarantined)]
        awake_until = f" (stay awake until {self.stay_awake.until:%Y-%m-%d %H:%M} UTC)" if self.stay_awake else ""
        rows.append(("off-hours", self.offhours + awake_until))
        return rows

    @staticmethod
    def _running(r: Running) -> str:
        since = (datetime.now(UTC) - r.started).total_seconds() if isinstance(r.started, datetime) else 0.0
        return f"{r.state_machine} {render.execution_label(r.arn)} in {r.state or '-'} ({since:.0f} s)"

    def _lock(self) -> str:
        if self.lock is None:
            return "free"
        queued = f", {len(self.lock.pending)} push(es) queued" if self.lock.pending else ""
        return f"held for {self.lock.purpose.value} by {render.execution_label(self.lock.owner)}{queued}"


def cmd_status(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    status = Status.read(cp, args.environment)
    out.document(status.document())
    out.lines([f"{k:<17}{v}".rstrip() for k, v in status.rows()])
    return OK


def cmd_history(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    records = list(reversed(cp.releases(args.environment)))[: args.limit]
    out.document({"environment": args.environment, "releases": [release_json(r) for r in records]})
    if not records:
        out.lines([f"no releases of {args.environment} in the ledger yet"])
        return OK
    lines = render.release_table(records)
    lines += [f"   {r.release_id}: by {r.trigger.requested_by}" for r in records if r.trigger.requested_by is not None]
    out.lines(lines)
    return OK


def cmd_show(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    release_id = args.release
    if not _RELEASE.match(release_id):
        raise CliError(f"release: {release_id!r} is not a release id (rel- and 20 hex digits; see `history`)", 2)
    record = cp.ledger.get_release(release_id)
    if record is None:
        raise CliError(f"release {release_id} is not in the ledger (see `trialstudio history`)", 1)
    approval = Approvals(cp.table, client=cp.client("dynamodb")).outcome(release_id)
    events = _history_or_empty(cp, record.execution_arn)
    out.document(
        {
            **release_json(record),
            "approval": approval.model_dump(mode="json") if approval else None,
            "timeline": [asdict(t) for t in render.state_times(events)],
        }
    )
    out.lines(show_lines(record, approval, events))
    return OK


def show_lines(record: ReleaseRecord, approval: ApprovalOutcome | None, events: Sequence[render.Event]) -> list[str]:
    t = record.trigger
    rows = [
        ("release", f"{record.release_id} ({record.environment})"),
        ("status", record.status.value),
        ("trigger", f"{render.trigger_text(record)}" + (" (forced)" if t.force else "")),
        ("reason", t.reason),
        ("requested by", t.requested_by or "-"),
        ("bundle", record.bundle_hash),
        ("previous", record.previous_release_id or "-"),
        ("started", f"{record.started_at:%Y-%m-%d %H:%M:%S}"),
        ("healthy", render.after(record.started_at, record.healthy_at)),
        ("ended", render.after(record.started_at, record.finished_at)),
        ("execution", record.execution_arn),
    ]
    if record.rolled_back_to:
        rows.append(("rolled back to", record.rolled_back_to))
    if approval is not None:
        rows.append(
            ("approval", f"{approval.status.value}" + (f" by {approval.approver}" if approval.approver else ""))
        )
    lines = [f"{k:<15}{v}" for k, v in rows]
    lines.append("images")
    lines += [
        f"  {s:<26}{d}" + ("  (changed)" if s in record.changed else "") for s, d in sorted(record.images.items())
    ]
    if record.cause:
        lines.append(render.wrap(record.cause, "cause          ", " " * 15))
    if events:
        lines.append(f"timeline ({render.elapsed(events):.0f} s)")
        lines += render.timeline(events)
    return lines


def _history_or_empty(cp: ControlPlane, arn: str) -> list[render.HistoryEvent]:
    """The execution's history, or nothing when Step Functions no longer has it (90 days after it ended)."""
    try:
        return cp.history(arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return []
        raise


def cmd_follow(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    return follow(cp, args.execution, out, timeout=args.timeout)


def _refused(status: int, answer: dict[str, Any], out: Out) -> int:
    error = answer.get("error") or answer.get("Message") or f"HTTP {status}"
    message = answer.get("message") or ""
    hint = {403: " (your identity may not do this: see README 'The operator API')"}.get(status, "")
    out.document({"ok": False, "status": status, **answer})
    out.stderr.write(f"refused by the operator API: {error}: {message}{hint}\n")
    return REFUSED if status < 500 else FAILED


def _start(cp: ControlPlane, body: dict[str, Any], args: argparse.Namespace, out: Out) -> int:
    status, answer = cp.operator(body)
    if status != 200 or not answer.get("ok"):
        return _refused(status, answer, out)
    arn = str(answer["execution_arn"])
    done = f"{answer.get('action')} {answer['status']}" if answer.get("status") else f"{answer.get('action')} started"
    if args.no_wait:
        out.document(answer)
        out.lines([f"{done} as {answer.get('principal')}: {render.execution_label(arn)}", arn])
        return OK
    out.progress.write(f"{done} as {answer.get('principal')}\n")
    return follow(cp, arn, out, timeout=args.timeout)


def cmd_deploy(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    services = parse_services(args.services)
    body: dict[str, Any] = {
        "action": "deploy",
        "environment": args.environment,
        "services": services,
        "reason": args.reason,
    }
    if args.force:
        body["force"] = True
    return _start(cp, body, args, out)


def cmd_rollback(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    body: dict[str, Any] = {"action": "rollback", "environment": args.environment, "reason": args.reason}
    if args.acknowledge:
        if args.release:
            raise CliError("--acknowledge re-applies nothing: leave the release out", 2)
        body["acknowledge"] = True
    if args.release:
        if not _RELEASE.match(args.release):
            raise CliError(f"release: {args.release!r} is not a release id (rel- and 20 hex digits)", 2)
        body["release_id"] = args.release
    return _start(cp, body, args, out)


def cmd_decide(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    """approve / reject a pending production release, then follow its execution."""
    if not _RELEASE.match(args.release):
        raise CliError(f"release: {args.release!r} is not a release id (rel- and 20 hex digits)", 2)
    body: dict[str, Any] = {"action": args.command, "release_id": args.release}
    if args.comment:
        body["comment"] = args.comment
    return _start(cp, body, args, out)


def cmd_unquarantine(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    """unquarantine SERVICE@DIGEST: through the operator API, which records who released it and why."""
    service, sep, digest = args.image.partition("@")
    if not sep or service not in platform.SERVICE_NAMES or not _DIGEST.match(digest):
        raise CliError(
            f"{args.image!r}: expected <service>@sha256:<64 hex> (a service of {', '.join(platform.SERVICE_NAMES)}; "
            "`trialstudio status` lists the quarantined digests)",
            2,
        )
    body = {"action": "unquarantine", "environment": args.environment, "service": service, "digest": digest}
    status, answer = cp.operator(body | {"reason": args.reason})
    if status != 200 or not answer.get("ok"):
        return _refused(status, answer, out)
    out.document(answer)
    out.lines([f"{service}@{render.digest12(digest)} released from quarantine by {answer.get('principal')}"])
    return OK


def cmd_offhours(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    """sleep / wake / stay-awake: the off-hours state machine through the operator API, then follow it."""
    mode = {"sleep": "down", "wake": "up", "stay-awake": "stay_awake"}[args.command]
    body: dict[str, Any] = {"action": "offhours", "environment": args.environment, "mode": mode}
    if args.command == "stay-awake":
        until = _until(args.until)
        body["until"] = until.isoformat().replace("+00:00", "Z")
    return _start(cp, body, args, out)


def _until(text: str) -> datetime:
    try:
        until = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--until {text!r}: not an RFC 3339 time (e.g. 2026-12-01T23:00:00Z)", 2) from None
    if until.tzinfo is None:
        raise CliError(f"--until {text!r}: give a time zone (Z or +01:00)", 2)
    if until <= datetime.now(UTC):
        raise CliError(f"--until {text!r}: is in the past", 2)
    return until.astimezone(UTC)


# -- arguments -------------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trialstudio", description="Operate the SyntheticTrialStudio control plane.")
    p.add_argument(
        "-e",
        "--environment",
        default=os.environ.get("TRIALSTUDIO_ENVIRONMENT", "staging"),
        choices=list(platform.ENVIRONMENTS),
        help="the environment (default: $TRIALSTUDIO_ENVIRONMENT or staging)",
    )
    p.add_argument(
        "--stack",
        default=os.environ.get("TRIALSTUDIO_STACK", "synthetictrialstudio"),
        help="the control plane's CloudFormation stack, read for its outputs",
    )
    p.add_argument(
        "--outputs",
        type=Path,
        default=os.environ.get("TRIALSTUDIO_OUTPUTS") or None,
        help="a JSON file of the stack's outputs instead of --stack ($TRIALSTUDIO_OUTPUTS)",
    )
    p.add_argument(
        "--cluster",
        default=os.environ.get("TRIALSTUDIO_CLUSTER") or None,
        help="the EKS cluster for diff/drift (default: the stack's ClusterName output)",
    )
    p.add_argument("--region", default=None, help="AWS region (default: boto3's, e.g. $AWS_REGION)")
    p.add_argument("--profile", default=None, help="AWS profile (default: boto3's, e.g. $AWS_PROFILE)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("status", help="last known-good, running executions, lock, quarantine, off-hours, degraded")
    history = sub.add_parser("history", help="the ledger's releases, newest first")
    history.add_argument("--limit", type=int, default=20)
    show = sub.add_parser("show", help="one release: images, bundle, trigger, approval, cause, timeline")
    show.add_argument("release")
    follow_p = sub.add_parser("follow", help="an execution's states as they come, then its outcome")
    follow_p.add_argument("execution", help="the execution ARN")
    follow_p.add_argument("--timeout", type=float, default=FOLLOW_TIMEOUT_S, help="seconds to follow (default 1800)")
    deploy = sub.add_parser("deploy", help="deploy service=tag|digest ... through the operator API, then follow")
    deploy.add_argument("services", nargs="+", metavar="SERVICE=TAG|DIGEST")
    deploy.add_argument("--reason", default="deployed with trialstudio")
    deploy.add_argument("--force", action="store_true", help="through a freeze window or a quarantine")
    rollback = sub.add_parser("rollback", help="roll back (to the previous good release or RELEASE), then follow")
    rollback.add_argument("release", nargs="?")
    rollback.add_argument("--reason", default="operator rollback")
    rollback.add_argument(
        "--acknowledge", action="store_true", help="acknowledge a degraded environment (re-applies nothing)"
    )
    unquarantine = sub.add_parser("unquarantine", help="release SERVICE@DIGEST from quarantine (recorded)")
    unquarantine.add_argument("image", metavar="SERVICE@DIGEST")
    unquarantine.add_argument("--reason", required=True, help="why (recorded in the ledger with your identity)")
    cluster.add_parsers(sub)
    pushes.add_parsers(sub)
    decide = [sub.add_parser(a, help=f"{a} a release waiting for approval, then follow it") for a in DECISIONS]
    for parser_ in decide:
        parser_.add_argument("release")
        parser_.add_argument("--comment", default=None)
    offhours = [
        sub.add_parser("sleep", help="scale the environment down now (off-hours), then follow it"),
        sub.add_parser("wake", help="scale the environment back up now, then follow it"),
        sub.add_parser("stay-awake", help="keep the scheduled scale-down away until --until"),
    ]
    offhours[2].add_argument("--until", required=True, help="RFC 3339, e.g. 2026-12-01T23:00:00Z")
    for starter in (deploy, rollback, *decide, *offhours):
        starter.add_argument("--no-wait", action="store_true", help="print the execution ARN and return")
        starter.add_argument("--timeout", type=float, default=FOLLOW_TIMEOUT_S)
    return p


COMMANDS = {
    "status": cmd_status,
    "history": cmd_history,
    "show": cmd_show,
    "follow": cmd_follow,
    "deploy": cmd_deploy,
    "rollback": cmd_rollback,
    "approve": cmd_decide,
    "reject": cmd_decide,
    "sleep": cmd_offhours,
    "wake": cmd_offhours,
    "stay-awake": cmd_offhours,
    "unquarantine": cmd_unquarantine,
    **cluster.COMMANDS,
    **pushes.COMMANDS,
}


def connect(args: argparse.Namespace) -> ControlPlane:
    try:
        session = boto3.Session(region_name=args.region, profile_name=args.profile)
    except BotoCoreError as exc:
        raise CliError(f"--profile {args.profile}: {exc}", 2) from None
    outputs = Outputs.from_file(args.outputs) if args.outputs else Outputs.from_stack(session, args.stack)
    return ControlPlane(outputs, session, cluster_name=args.cluster)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage: 2 for an error, 0 for --help
        return int(exc.code or 0)
    out = Out(args.output == "json", stdout, stderr)
    try:
        cp = connect(args)
        return COMMANDS[args.command](cp, args, out)
    except CliError as exc:
        out.document({"ok": False, "error": str(exc)})
        stderr.write(f"trialstudio: {exc}\n")
        return exc.code
    except (ClientError, BotoCoreError) as exc:
        error = aws_error(exc, args.command)
        out.document({"ok": False, "error": str(error)})
        stderr.write(f"trialstudio: {error}\n")
        return error.code
    except KeyboardInterrupt:
        stderr.write("interrupted: the execution goes on; `trialstudio status` shows it\n")
        return FAILED


__all__ = ["REQUIRED_OUTPUTS", "main"]
