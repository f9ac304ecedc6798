"""The commands about the cluster's state: ``diff`` (a release against the cluster, by server-side dry run) and
``drift`` (the drift state machine's latest report, or a check started now).

They connect as the caller (an EKS token signed with the caller's credentials, ``ControlPlane.cluster``): the caller's
IAM principal needs an EKS access entry. A dry run is authorized like the write it simulates, so ``diff`` needs the
``patch`` verb on what the release holds (the deploy role's RBAC, or an operator group bound to the same rules).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from controlplane import platform
from controlplane.aws.drift import DriftReports
from controlplane.errors import ControlPlaneError, KubernetesForbiddenError
from controlplane.kube.apply import diff_objects
from controlplane.models.drift import DriftFinding, DriftReport
from controlplane.models.kube import ObjectDiff
from controlplane.render import load_bundle, render

from trialstudio import render as text
from trialstudio.control import CliError, ControlPlane, parse_services
from trialstudio.follow import follow
from trialstudio.output import FAILED, OK, Out

_RELEASE = re.compile(r"^rel-[0-9a-f]{20}$")
REPO_MANIFESTS = Path(__file__).resolve().parents[1] / "manifests" / "kubernetes"
"""The manifests a release not yet applied is rendered from (the bundle the ManifestsLayer ships)."""
SHOWN_VALUE_CHARS = 120


@contextmanager
def kubernetes_errors(doing: str) -> Iterator[None]:
    """The control plane's Kubernetes errors -> one CliError line saying what to check."""
    try:
        yield
    except KubernetesForbiddenError as exc:
        raise CliError(
            f"{doing}: {exc} (your IAM principal needs an EKS access entry with these rights; README 'Operating')", 2
        ) from None
    except ControlPlaneError as exc:
        raise CliError(f"{doing}: {type(exc).__name__}: {exc}", 1) from None


def release_objects(cp: ControlPlane, environment: str, release_id: str, manifests: Path) -> list[dict[str, Any]]:
    """What ``release_id`` gives the cluster: the objects the ledger recorded when it was applied (verified against
    their digests), or, for a release never applied (planned, refused, awaiting approval), its images rendered from
    ``manifests``."""
    record = cp.ledger.get_release(release_id)
    if record is None:
        raise CliError(f"release {release_id} is not in the ledger (see `trialstudio history`)", 1)
    if record.environment != environment:
        raise CliError(f"release {release_id} is a {record.environment} release, not {environment} (pass -e)", 2)
    with kubernetes_errors(f"reading release {release_id}"):
        objects = cp.ledger.applied_objects(release_id)
    if objects:
        return objects
    return rendered(cp, environment, record.images, manifests, what=f"release {release_id} (never applied)")


def rendered(
    cp: ControlPlane, environment: str, images: Mapping[str, str], manifests: Path, *, what: str
) -> list[dict[str, Any]]:
    """``images`` rendered from the bundle in ``manifests`` for ``environment`` (what a plan would apply)."""
    if not manifests.is_dir():
        raise CliError(f"--manifests {manifests}: no such directory (needed to render {what})", 2)
    account = cp.outputs["DeployStateMachineArn"].split(":")[4]  # the control plane's account, as the plan uses
    with kubernetes_errors(f"rendering {what} from {manifests}"):
        return render(load_bundle(manifests), environment, dict(images), account_id=account, region=cp.region)


def proposed(cp: ControlPlane, base: Mapping[str, str], pairs: Sequence[str]) -> dict[str, str]:
    """``base`` images with ``service=tag|digest`` overrides, tags resolved to digests in ECR (as PlanRelease does)."""
    images = dict(base)
    for service, ref in parse_services(pairs).items():
        repository = f"{platform.REPOSITORY_PREFIX}{service}"
        image_id = {"imageDigest": ref} if ref.startswith("sha256:") else {"imageTag": ref}
        try:
            found = cp.client("ecr").describe_images(repositoryName=repository, imageIds=[image_id])["imageDetails"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"ImageNotFoundException", "RepositoryNotFoundException"}:
                raise CliError(f"{service}={ref}: {repository}:{ref} is not in ECR", 2) from None
            raise
        images[service] = str(found[0]["imageDigest"])
    return images


def _value(value: Any) -> str:
    text = "-" if value is None else json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def diff_lines(diffs: Sequence[ObjectDiff]) -> list[str]:
    lines: list[str] = []
    for d in diffs:
        if d.action == "unchanged":
            continue
        ns = f"{d.ref.namespace}/" if d.ref.namespace else ""
        lines.append(f"  {d.action:<11}{d.ref.kind} {ns}{d.ref.name}")
        lines += [f"      {c.op:<8}{c.path}: {_value(c.live)} -> {_value(c.desired)}" for c in d.changes]
    return lines


def cmd_diff(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    """``diff [RELEASE]``: what applying the release (default: the last known-good) would change in the cluster.

    0 when nothing would change, 1 when something would (as ``kubectl diff``), 2 refused or usage.
    """
    release_id = args.release
    if release_id is None:
        lkg = cp.ledger.last_known_good(args.environment)
        if lkg is None:
            raise CliError(f"{args.environment} has no last known-good release yet: name a release", 2)
        release_id = lkg.release_id
    elif not _RELEASE.match(release_id):
        raise CliError(f"release: {release_id!r} is not a release id (rel- and 20 hex digits; see `history`)", 2)
    if args.set:
        base = cp.ledger.require_release(release_id).images
        images = proposed(cp, base, args.set)
        objects = rendered(cp, args.environment, images, args.manifests, what=f"the plan {release_id} + --set")
    else:
        objects = release_objects(cp, args.environment, release_id, args.manifests)
    api = cp.cluster()
    try:
        with kubernetes_errors(f"dry-run diff of {release_id} against cluster {cp.cluster_name}"):
            diffs = diff_objects(api, objects)
    finally:
        api.close()
    differ = [d for d in diffs if d.action != "unchanged"]
    out.document(
        {
            "environment": args.environment,
            "release_id": release_id,
            "cluster": cp.cluster_name,
            "objects": len(diffs),
            "differ": len(differ),
            "diffs": [d.model_dump(mode="json") for d in differ],
        }
    )
    head = f"{release_id} against cluster {cp.cluster_name}: "
    out.lines(
        [head + f"{len(differ)} of {len(diffs)} objects would change", *diff_lines(differ)]
        if differ
        else [head + f"no differences ({len(diffs)} objects)"]
    )
    return FAILED if differ else OK


def finding_line(f: DriftFinding) -> str:
    ns = f"{f.ref.namespace}/" if f.ref.namespace else ""
    where = f"  {f.path}" if f.path else ""
    by = f" by {f.manager}" if f.manager else ""
    values = f": {_value(f.live)} (release: {_value(f.desired)})" if f.path and f.kind.value == "changed" else ""
    values = f": {_value(f.live)}" if f.path and f.kind.value == "added" else values
    return f"  {f.kind.value:<8}{f.ref.kind} {ns}{f.ref.name}{where}{by}{values}"


def drift_lines(report: DriftReport) -> list[str]:
    head = f"drift of {report.environment} at {report.checked_at:%Y-%m-%d %H:%M:%S} ({report.mode.value} mode)"
    if report.skipped:
        return [f"{head}: not compared: {report.skipped}"]
    lines = [
        f"{head} against {report.release_id}: "
        + (
            f"{report.findings_total} finding(s) in {report.drifted_objects} of {report.objects} objects"
            if report.findings_total
            else f"no drift ({report.objects} objects)"
        )
    ]
    lines += [finding_line(f) for f in report.findings]
    if report.findings_total > len(report.findings):
        lines.append(f"  ... and {report.findings_total - len(report.findings)} more (see the report)")
    if report.report_uri:
        lines.append(f"report: {report.report_uri}")
    if report.heal:
        h = report.heal
        left = f", {h.remaining} finding(s) left" if h.remaining is not None else ""
        lines.append(f"heal: rollback {text.execution_label(h.execution_arn)} {h.status.value}{left}")
        if h.cause:
            lines.append(text.wrap(h.cause, "      ", "      "))
    return lines


def cmd_drift(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    """``drift [--now]``: the latest drift report (0 no drift, 1 drift, 2 refused); ``--now`` checks first."""
    if args.now:
        machine = cp.outputs.get("DriftStateMachineArn")
        if not machine:
            raise CliError("the stack has no DriftStateMachineArn output (a control plane without drift checks)", 2)
        started = cp.sfn.start_execution(stateMachineArn=machine, input=json.dumps({"environment": args.environment}))
        progress = Out(json_mode=True, stdout=out.stderr, stderr=out.stderr)  # the check's story on stderr
        if follow(cp, str(started["executionArn"]), progress, timeout=args.timeout) != OK:
            out.stderr.write("the drift check did not succeed; the report below may be an older one\n")
    report = DriftReports(cp.table, client=cp.client("dynamodb")).latest(args.environment)
    if report is None:
        out.document({"environment": args.environment, "report": None})
        out.lines([f"no drift check of {args.environment} yet (the schedule runs hourly; `drift --now` checks now)"])
        return OK
    out.document({"environment": args.environment, "report": report.model_dump(mode="json")})
    out.lines(drift_lines(report))
    return FAILED if report.findings_total else OK


def add_parsers(sub: Any) -> None:
    diff = sub.add_parser("diff", help="server-side dry-run diff: a release (default last known-good) vs the cluster")
    diff.add_argument("release", nargs="?")
    diff.add_argument(
        "--set",
        nargs="+",
        metavar="SERVICE=TAG|DIGEST",
        help="a proposed plan: the release's images with these changed (tags resolved in ECR), rendered",
    )
    diff.add_argument(
        "--manifests",
        type=Path,
        default=REPO_MANIFESTS,
        help="the bundle a release never applied is rendered from (default: this checkout's manifests/kubernetes)",
    )

    drift = sub.add_parser("drift", help="the latest drift report (what changed in the cluster, by whom)")
    drift.add_argument("--now", action="store_true", help="start a drift check and wait for it first")
    drift.add_argument("--timeout", type=float, default=900.0)


COMMANDS = {"diff": cmd_diff, "drift": cmd_drift}
