"""``make up``: the local cloud as a separate process, driven from outside through its loopback endpoints only.

The test starts ``python -m local up`` (what ``make up`` runs), waits for its ready file, then uses what it wrote
(AWS profile with endpoint_url, kubeconfig, stack outputs) from other processes: ``trialstudio``, ``kubectl`` and
the aws CLI, and boto3 from this process (no moto here: real HTTP to the gateway).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from controlplane import platform

from local.pipeline import REPO
from tests.eventually import eventually

pytestmark = pytest.mark.e2e

STARTUP_S = 300.0


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("up")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "layers" / "controlplane"), str(REPO)])}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(key, None)
    log = (state / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "up", "--state-dir", str(state), "--first-release", "--acceleration", "30"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready() -> dict[str, Any]:
        assert process.poll() is None, (state / "up.log").read_text()[-3000:]
        ready_file = state / "ready.json"
        assert ready_file.exists(), "not ready yet"
        return dict(json.loads(ready_file.read_text()))

    try:
        info = eventually(ready, timeout=STARTUP_S, what="make up to be ready")
        client_env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "KUBECONFIG", "TRIALSTUDIO_"))}
        yield {"info": info, "env": {**client_env, **info["env"]}, "state": state}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()


def run(up: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=up["env"], capture_output=True, text=True, timeout=300, check=False)


def test_the_cli_kubectl_and_the_aws_cli_talk_to_make_up_from_other_processes(up: dict[str, Any]) -> None:
    info, env = up["info"], up["env"]
    assert info["endpoint"].startswith("http://127.0.0.1:")
    assert Path(env["KUBECONFIG"]).exists()

    status = run(up, sys.executable, "-m", "trialstudio", "--output", "json", "status")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert sorted(document["last_known_good"]["images"]) == sorted(platform.SERVICE_NAMES)
    assert document["lock"] is None

    history = run(up, sys.executable, "-m", "trialstudio", "--output", "json", "history")
    assert [r["status"] for r in json.loads(history.stdout)["releases"]] == ["succeeded"]
    diff = run(up, sys.executable, "-m", "trialstudio", "diff")  # EKS token path through the gateway
    assert diff.returncode == 0, diff.stderr
    assert "no differences" in diff.stdout

    if shutil.which("kubectl"):
        deployments = run(up, "kubectl", "get", "deploy", "-n", platform.NAMESPACE, "-o", "json")
        assert deployments.returncode == 0, deployments.stderr
        names = {d["metadata"]["name"] for d in json.loads(deployments.stdout)["items"]}
        assert names == set(platform.SERVICE_NAMES)
    if shutil.which("aws"):
        machine = json.loads((up["state"] / "outputs.json").read_text())["DeployStateMachineArn"]
        listed = run(up, "aws", "--endpoint-url", info["endpoint"], "stepfunctions", "list-executions",
                     "--state-machine-arn", machine)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [e["status"] for e in json.loads(listed.stdout)["executions"]] == ["SUCCEEDED"]


def test_the_endpoint_authorizes_every_call_and_refuses_what_it_cannot_serve(up: dict[str, Any]) -> None:
    env = up["env"]
    creds = Path(env["AWS_SHARED_CREDENTIALS_FILE"]).read_text()
    keys = dict(line.split(" = ", 1) for line in creds.splitlines() if " = " in line)
    session = boto3.Session(
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
        aws_session_token=keys["aws_session_token"],
        region_name="us-east-1",
    )
    outputs = json.loads((up["state"] / "outputs.json").read_text())
    dynamodb = session.client("dynamodb", endpoint_url=up["info"]["endpoint"])
    # the operator may read the ledger ...
    dynamodb.get_item(TableName=outputs["LedgerTableName"], Key={"pk": {"S": "x"}, "sk": {"S": "y"}})
    with pytest.raises(ClientError) as denied:  # ... but not delete it: IAM is enforced behind the endpoint
        dynamodb.delete_table(TableName=outputs["LedgerTableName"])
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    forged = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=up["info"]["endpoint"])
    with pytest.raises(ClientError) as refused:  # the harness's key is no credential of the cloud's STS or IAM
        forged.list_tables()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as unsupported:
        session.client("sts", endpoint_url=up["info"]["endpoint"]).get_caller_identity()
    assert unsupported.value.response["Error"]["Code"] == "UnsupportedProtocol"
