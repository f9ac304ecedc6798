"""The ``trialstudio`` CLI end to end on the local cloud: the real template, state machines and operator API.

The CLI runs in-process (``trialstudio.cli.main``) with its own boto3 session: a named profile in an AWS credentials
file holding a moto-issued role session, as an operator's would. JSON output is parsed; exit codes are checked.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.aws.approval import Approvals

from local.aws.eks_access import deploy_access_entry
from local.cluster import Behaviour, Cluster
from local.offhours import offhours_pipeline
from local.pipeline import REPO, Pipeline, pipeline
from tests.eventually import eventually
from trialstudio.cli import main

pytestmark = pytest.mark.e2e


READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "eks:DescribeCluster",
                "ecr:DescribeImages",
                "states:DescribeExecution",
                "states:GetExecutionHistory",
                "states:ListExecutions",
            ],
            "Resource": "*",
        }
    ],
}
"""What an operator's role needs for the CLI's reads (the actions go through the operator API; diff/drift describe
the cluster for an EKS token)."""


class Cli:
    """``trialstudio`` against one pipeline, as the named profile ``operator``."""

    def __init__(self, pipe: Pipeline, tmp: Path) -> None:
        self.pipe = pipe
        self.outputs = tmp / "outputs.json"
        self.outputs.write_text(json.dumps({k: str(v) for k, v in pipe.cloud.outputs.items()}))
        self.credentials = tmp / "credentials"
        self.as_operator("release-manager", "dana")

    def as_operator(self, role: str, session: str) -> str:
        """Write the profile ``operator`` as a session of ``role`` (which may read the ledger and executions)."""
        operator = self.pipe.operator(role, session=session)
        self.pipe.cloud.client("iam").put_role_policy(
            RoleName=role, PolicyName="trialstudio-read", PolicyDocument=json.dumps(READ_POLICY)
        )
        creds = self.pipe.cloud.iam.credentials(operator.role_arn, session)  # keys the local cloud's IAM knows
        self.credentials.write_text(
            f"[operator]\naws_access_key_id = {creds.access_key_id}\n"
            f"aws_secret_access_key = {creds.secret_access_key}\naws_session_token = {creds.session_token}\n"
        )
        return operator.session_arn

    def may_reach_the_cluster(self, role: str) -> None:
        """An EKS access entry for ``role`` in the deploy role's Kubernetes group (a dry run needs the write's RBAC)."""
        role_arn = self.pipe.cloud.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        groups = deploy_access_entry(role_arn, cluster_name="any")["KubernetesGroups"]
        self.pipe.cluster.access_entries.put(role_arn, kubernetes_groups=groups)

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--outputs", str(self.outputs), "--profile", "operator", "--region", "us-east-1", *argv],
            stdout=out,
            stderr=err,
        )
        return code, out.getvalue(), err.getvalue()

    def json(self, *argv: str, expect: int = 0) -> Any:
        code, out, err = self("--output", "json", *argv)
        assert code == expect, (code, out, err)
        return json.loads(out)


@pytest.fixture
def cli(pipe: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    return Cli(pipe, tmp_path)


def test_status_and_history_of_an_empty_environment(cli: Cli) -> None:
    status = cli.json("status")
    assert status["environment"] == "staging"
    assert status["last_known_good"] is None
    assert status["running"] == []
    assert status["lock"] is None
    assert status["quarantined"] == {}
    assert cli.json("history")["releases"] == []
    code, out, _ = cli("status")
    assert code == 0
    assert "last known-good  none (nothing deployed yet)" in out
    assert "lock             free" in out


def test_deploy_follow_history_show_and_rollback_through_the_operator_api(cli: Cli, pipe: Pipeline) -> None:
    pipe.first_release()
    first = pipe.ledger.last_known_good("staging")
    assert first is not None

    status = cli.json("status")
    assert status["last_known_good"]["release_id"] == first.release_id
    assert sorted(status["last_known_good"]["images"]) == sorted(platform.SERVICE_NAMES)

    # deploy: a tag resolved by the pipeline, started as the operator, followed to its end
    pipe.push("edc-service", "main-2")
    principal = cli.as_operator("release-manager", "dana")
    code, out, err = cli("--output", "json", "deploy", "edc-service=main-2", "--reason", "CLI test")
    assert code == 0, (out, err)
    deployed = json.loads(out)
    assert deployed["status"] == "SUCCEEDED"
    states = [row["state"] for row in deployed["timeline"]]
    assert "ApplyRelease" in states
    assert "AcquireLock" in err  # live progress goes to stderr when stdout is JSON
    assert "recorded as last known-good" in err

    history = cli.json("history")["releases"]
    assert [r["status"] for r in history] == ["succeeded", "succeeded"]  # newest first
    second = history[0]
    assert second["trigger"]["requested_by"] == principal
    assert second["changed"] == {"edc-service": pipe.digests["edc-service"]}
    assert second["duration_s"] is not None

    shown = cli.json("show", second["release_id"])
    assert shown["images"]["edc-service"] == pipe.digests["edc-service"]
    assert shown["previous_release_id"] == first.release_id
    assert any(row["state"] == "RecordSuccess" or row["state"].startswith("Record") for row in shown["timeline"])
    code, table, _ = cli("show", second["release_id"])
    assert code == 0
    assert f"requested by   {principal}" in table
    assert "edc-service" in table
    assert "(changed)" in table

    code, table, _ = cli("history")
    assert code == 0
    assert table.index(second["release_id"]) < table.index(first.release_id)

    # rollback to the first release
    rolled = cli.json("rollback", first.release_id, "--reason", "CLI rollback test")
    assert rolled["status"] == "SUCCEEDED"
    assert cli.json("status")["last_known_good"]["release_id"] == first.release_id
    assert pipe.deployment_image("edc-service").endswith(first_digest(pipe, first.release_id, "edc-service"))


def first_digest(pipe: Pipeline, release_id: str, service: str) -> str:
    return pipe.ledger.require_release(release_id).images[service]


def test_a_failing_deploy_exits_1_with_its_cause_and_follow_picks_up_a_running_execution(
    cli: Cli, pipe: Pipeline
) -> None:
    pipe.first_release()
    arn = pipe.start_push("analytics-service", "main-3", Behaviour.crash_loop())
    code, out, err = cli("--output", "json", "follow", arn)
    assert code == 1, (out, err)
    followed = json.loads(out)
    assert followed["status"] == "FAILED"
    assert followed["cause"]
    assert "outcome: FAILED" in err

    code, table, _ = cli("follow", arn)  # an ended execution: its whole story at once, same exit code
    assert code == 1
    assert "CrashLoopBackOff" in table
    status = cli.json("status")
    assert pipe.digests["analytics-service"] in status["quarantined"]
    assert status["quarantined"][pipe.digests["analytics-service"]]["service"] == "analytics-service"


def test_refusals_exit_2_and_say_what_to_do(cli: Cli, pipe: Pipeline) -> None:
    code, _, err = cli("deploy", "no-such-service=v1")
    assert code == 2
    assert "unknown service 'no-such-service'" in err
    code, _, err = cli("deploy", "edc-service")
    assert code == 2
    assert "expected <service>=<tag|sha256:digest>" in err
    code, _, err = cli("show", "release-1")
    assert code == 2
    assert "not a release id" in err
    code, _, err = cli("show", "rel-0123456789abcdef0123")
    assert code == 1
    assert "not in the ledger" in err
    code, _, err = cli("follow", "not-an-arn")
    assert code == 2
    code, _, _ = cli("frobnicate")
    assert code == 2

    # the operator API refuses a production request on the staging control plane (400) ...
    refused = cli.json("--environment", "production", "rollback", expect=2)
    assert refused["ok"] is False
    assert refused["status"] == 400
    # ... and credentials moto never issued (AWS answers 403 before the function runs)
    cli.credentials.write_text("[operator]\naws_access_key_id = AKIANOTISSUED\naws_secret_access_key = x\n")
    code, out, err = cli("--output", "json", "rollback")
    assert code == 2
    assert json.loads(out)["status"] == 403
    assert "refused by the operator API" in err


def test_the_console_script_is_installed_by_make_setup() -> None:
    """``make setup`` installs the project editable: the entry point and ``python -m trialstudio`` both answer."""
    from importlib.metadata import entry_points  # noqa: PLC0415

    (script,) = entry_points(group="console_scripts", name="trialstudio")
    assert script.value == "trialstudio.cli:main"
    done = subprocess.run(
        [sys.executable, "-m", "trialstudio", "--outputs", str(REPO / "missing.json"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "layers" / "controlplane"), str(REPO)])},
    )  # this checkout's code first (the editable install points at one checkout; a worktree tests its own)
    assert done.returncode == 2
    assert "--outputs" in done.stderr
    assert "cannot read it" in done.stderr


# -- approvals (production) and off-hours ----------------------------------------------------------------------------


def test_approve_in_production_follows_the_release_and_the_requester_is_refused(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with pipeline(cluster, Environment="production") as pipe:
        images = {name: pipe.push(name, "v1.0.0") for name in platform.SERVICE_NAMES}
        pipe.healthy_in_staging(images)
        cli = Cli(pipe, tmp_path)
        cli.as_operator("release-manager", "mallory")
        started = cli.json("-e", "production", "deploy", *(f"{s}=v1.0.0" for s in images), "--no-wait")
        approvals = Approvals(str(pipe.cloud.ref("LedgerTable")), region="us-east-1")

        def pending() -> str | None:
            releases = cli.json("-e", "production", "history")["releases"]
            release_id = str(releases[0]["release_id"]) if releases else None
            item = approvals.get(release_id) if release_id else None
            return release_id if item and item.get("status") == "PENDING" else None

        release_id = eventually(pending, what=f"{started['execution_arn']} to ask for approval")
        assert cli.json("-e", "production", "status")["running"][0]["state"] == "RequestApproval"

        own = cli.json("-e", "production", "approve", release_id, expect=2)  # separation of duties
        assert own["status"] == 403
        assert own["error"] == "OperatorNotAuthorizedError"
        approver = cli.as_operator("release-approver", "carol")
        code, out, err = cli("-e", "production", "--output", "json", "approve", release_id, "--comment", "diff ok")
        assert code == 0, (out, err)
        assert json.loads(out)["status"] == "SUCCEEDED"
        assert "approve APPROVED as" in err

        shown = cli.json("-e", "production", "show", release_id)
        assert shown["status"] == "succeeded"
        assert shown["approval"]["status"] == "APPROVED"
        assert shown["approval"]["approver"] == approver
        assert cli.json("-e", "production", "reject", release_id, expect=2)["status"] == 409  # no longer pending


def test_sleep_stay_awake_and_wake_through_the_off_hours_state_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with Cluster("sts-staging", default_nodes=False) as cluster, offhours_pipeline(cluster) as env:
        env.pipe.first_release()
        before = env.state()
        cli = Cli(env.pipe, tmp_path)

        assert cli.json("sleep")["status"] == "SUCCEEDED"
        assert set(env.workloads().values()) == {0}
        assert cli.json("status")["offhours"] == "asleep"

        code, _, err = cli("stay-awake", "--until", "yesterday")
        assert code == 2
        assert "not an RFC 3339 time" in err
        until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        assert cli.json("stay-awake", "--until", until.isoformat().replace("+00:00", "Z"))["status"] == "SUCCEEDED"

        assert cli.json("wake")["status"] == "SUCCEEDED"
        assert env.state() == before
        status = cli.json("status")
        assert status["offhours"] == "awake"
        assert status["stay_awake_until"] == until.isoformat()


# -- diff, unquarantine, degraded ------------------------------------------------------------------------------------


def admin_api(pipe: Pipeline) -> Any:
    """The official client as the cluster's creator (someone editing by hand)."""
    from local.cluster import api_client  # noqa: PLC0415

    return api_client(pipe.cluster)


def test_diff_of_the_last_known_good_against_the_cluster_as_the_operator(cli: Cli, pipe: Pipeline) -> None:
    pipe.first_release()
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None

    code, _, err = cli("diff")  # the operator's principal has no EKS access entry yet
    assert code == 2, err
    assert "access entry" in err

    cli.may_reach_the_cluster("release-manager")
    same = cli.json("diff")
    assert (same["release_id"], same["differ"], same["diffs"]) == (lkg.release_id, 0, [])
    assert same["objects"] > 10

    # a proposed plan: the last known-good with edc-service at a new tag (resolved in ECR), rendered and dry-run
    digest = pipe.push("edc-service", "main-2")
    plan = cli.json("diff", "--set", "edc-service=main-2", expect=1)
    ((ref, change),) = [(d["ref"], c) for d in plan["diffs"] for c in d["changes"]]
    assert (ref["kind"], ref["name"]) == ("Deployment", "edc-service")
    assert change["path"] == "spec.template.spec.containers[name=edc-service].image"
    assert change["desired"].endswith(digest)
    code, _, err = cli("diff", "--set", "edc-service=no-such-tag")
    assert (code, "is not in ECR" in err) == (2, True)

    # someone edits the image by hand and deletes a Service: applying the release would change both back
    from kubernetes.client import AppsV1Api, CoreV1Api  # noqa: PLC0415

    api = admin_api(pipe)
    try:
        AppsV1Api(api).patch_namespaced_deployment(
            "edc-service",
            platform.NAMESPACE,
            {"spec": {"template": {"spec": {"containers": [{"name": "edc-service", "image": "nginx:1.27"}]}}}},
            field_manager="kubectl-edit",
        )
        CoreV1Api(api).delete_namespaced_service("analytics-service", platform.NAMESPACE)
    finally:
        api.close()
    drifted = cli.json("diff", lkg.release_id, expect=1)
    by_object = {(d["ref"]["kind"], d["ref"]["name"]): d for d in drifted["diffs"]}
    assert set(by_object) == {("Deployment", "edc-service"), ("Service", "analytics-service")}
    assert by_object["Service", "analytics-service"]["action"] == "created"
    (change,) = by_object["Deployment", "edc-service"]["changes"]
    assert change["path"] == "spec.template.spec.containers[name=edc-service].image"
    assert change["live"] == "nginx:1.27"
    code, table, _ = cli("diff")
    assert code == 1
    assert "2 of" in table
    assert "configured Deployment clinical-trials/edc-service" in table
    assert "nginx:1.27 ->" in table

    code, _, err = cli("diff", "rel-0123456789abcdef0123")
    assert (code, "not in the ledger" in err) == (1, True)


def test_unquarantine_through_the_operator_api_is_recorded_and_status_shows_degraded(cli: Cli, pipe: Pipeline) -> None:
    pipe.first_release()
    result = pipe.push_and_deploy("analytics-service", "main-3", Behaviour.crash_loop())
    assert result.status == "FAILED"
    digest = pipe.digests["analytics-service"]
    assert digest in cli.json("status")["quarantined"]

    code, _, err = cli("unquarantine", f"edc-service@{digest}", "--reason", "wrong service")
    assert code == 2, err
    assert "not quarantined" in err  # 409 from the operator API: the digest is quarantined for another service
    code, _, err = cli("unquarantine", "analytics-service:main-3", "--reason", "x")
    assert (code, "expected <service>@sha256" in err) == (2, True)

    principal = cli.as_operator("release-manager", "dana")
    done = cli.json("unquarantine", f"analytics-service@{digest}", "--reason", "fixed upstream: a config flag")
    assert (done["status"], done["principal"]) == ("UNQUARANTINED", principal)
    assert cli.json("status")["quarantined"] == {}
    from controlplane.aws.table import Table  # noqa: PLC0415

    ((_, record),) = Table(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").query(
        f"DIGEST#{digest}", sk_prefix="UNQUARANTINED#"
    )
    assert record["principal"] == principal
    assert record["reason"] == "fixed upstream: a config flag"
    assert record["quarantine"]["release_id"] == cli.json("history")["releases"][0]["release_id"]
    assert cli.json("unquarantine", f"analytics-service@{digest}", "--reason", "again", expect=2)["status"] == 409

    # the ledger's degraded mark (written by a failed rollback) shows in status, with what to do
    from controlplane.models.release import Degraded  # noqa: PLC0415

    since = datetime.now(UTC).replace(microsecond=0)
    pipe.ledger.mark_degraded(
        Degraded(environment="staging", since=since, cause="RollbackFailedError: boom", execution_arn=result.arn)
    )
    status = cli.json("status")
    assert status["degraded"]["cause"] == "RollbackFailedError: boom"
    code, table, _ = cli("status")
    assert code == 0
    assert "DEGRADED" in table
    assert "rollback --acknowledge" in table
