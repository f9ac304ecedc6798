"""The ``trialstudio`` CLI end to end on the local cloud: the real template, state machines and operator API.

The CLI runs in-process (``trialstudio.cli.main``) with its own boto3 session: a named profile in an AWS credentials
file holding a moto-issued role session, as an operator's would. JSON output is parsed; exit codes are checked.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform

from local.cluster import Behaviour
from local.pipeline import REPO, Pipeline
from trialstudio.cli import main

pytestmark = pytest.mark.e2e


class Cli:
    """``trialstudio`` against one pipeline, as the named profile ``operator``."""

    def __init__(self, pipe: Pipeline, tmp: Path) -> None:
        self.pipe = pipe
        self.outputs = tmp / "outputs.json"
        self.outputs.write_text(json.dumps({k: str(v) for k, v in pipe.cloud.outputs.items()}))
        self.credentials = tmp / "credentials"
        self.as_operator("release-manager", "dana")

    def as_operator(self, role: str, session: str) -> str:
        """Write the profile ``operator`` as a session of ``role``; its ARN."""
        operator = self.pipe.operator(role, session=session)
        creds = operator.credentials
        self.credentials.write_text(
            f"[operator]\naws_access_key_id = {creds.access_key}\naws_secret_access_key = {creds.secret_key}\n"
            f"aws_session_token = {creds.token}\n"
        )
        return operator.session_arn

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
    )
    assert done.returncode == 2
    assert "--outputs" in done.stderr
    assert "cannot read it" in done.stderr
