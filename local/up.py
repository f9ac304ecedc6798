"""``make up`` / ``python -m local up``: the local cloud as a long-running process other programs can talk to.

It starts the Kubernetes emulator (``sts-staging``) and the local cloud with the project's template deployed on it
(every function behind the in-process Lambda runtime, the state machines, EventBridge rules and Scheduler schedules,
function URLs), on a real-time clock (``--acceleration N`` runs simulated time N times faster), fires its schedules
when they come due on that clock (:mod:`local.aws.schedules`: the hourly drift check, the off-hours evening and
morning), then serves:

* an AWS endpoint on loopback (:mod:`local.aws.gateway`: SigV4-verified, IAM-authorized, JSON and REST-JSON
  services) for the aws CLI (``--endpoint-url``), boto3 and ``trialstudio``;
* the operator API's function URL and the emulator's HTTPS API server, both on loopback.

In ``--state-dir`` (default ``.local-cloud``) it writes what a shell needs (``env.sh`` exports all of it):

* ``aws/config`` + ``aws/credentials``: profile ``local`` with the endpoint (``endpoint_url``) and the keys of an
  operator role the local cloud's IAM issued (``local-operator``: the CLI's reads, starting the control plane's
  state machines, the operator API; an EKS access entry in the deploy role's Kubernetes group for ``diff``);
* ``kubeconfig``: the emulator's server and CA, the cluster creator as user (a fresh token per kubectl call through
  an exec credential plugin, as ``aws eks get-token`` does);
* ``outputs.json``: the stack's outputs (``trialstudio --outputs``, ``$TRIALSTUDIO_OUTPUTS``);
* ``ready.json`` last, when everything answers (endpoint, pid).

Everything listens on 127.0.0.1 only. Ctrl-C (SIGINT) or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from local.pipeline import CLUSTER_NAME, TEMPLATE, Pipeline, create_repositories, parameters

REGION = "us-east-1"
PROFILE = "local"
OPERATOR_ROLE = "local-operator"
OPERATOR_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "TrialstudioReads",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "states:DescribeExecution",
                "states:GetExecutionHistory",
                "states:ListExecutions",
                "states:ListStateMachines",
                "states:DescribeStateMachine",
                "eks:DescribeCluster",
                "eks:ListClusters",
                "ecr:DescribeImages",
            ],
            "Resource": "*",
        },
        {
            "Sid": "StartTheControlPlane",
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": "arn:aws:states:*:*:stateMachine:synthetictrialstudio-*",
        },
        {"Sid": "OperatorApi", "Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl"], "Resource": "*"},
    ],
}


def write_profile(state: Path, endpoint: str, creds: Any) -> dict[str, str]:
    aws = state / "aws"
    aws.mkdir(parents=True, exist_ok=True)
    (aws / "config").write_text(f"[profile {PROFILE}]\nregion = {REGION}\nendpoint_url = {endpoint}\noutput = json\n")
    credentials = aws / "credentials"
    credentials.write_text(
        f"[{PROFILE}]\naws_access_key_id = {creds.access_key_id}\naws_secret_access_key = {creds.secret_access_key}\n"
        f"aws_session_token = {creds.session_token}\n"
    )
    credentials.chmod(0o600)
    return {
        "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_PROFILE": PROFILE,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }


def write_kubeconfig(state: Path, cluster: Any) -> Path:
    arn = f"arn:aws:eks:{REGION}:123456789012:cluster/{cluster.name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": arn, "cluster": {"server": cluster.endpoint, "certificate-authority-data": cluster.ca_data}}
        ],
        "users": [
            {
                "name": arn,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": sys.executable,
                        "args": ["-m", "local", "token", cluster.name, REGION],
                        "env": [{"name": "PYTHONPATH", "value": str(TEMPLATE.parent)}],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}],
        "current-context": arn,
    }
    path = state / "kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def grant_operator(pipe: Pipeline) -> Any:
    """The ``local-operator`` role (reads, state machines, operator API; EKS access as the deploy role's group)."""
    from local.aws.eks_access import deploy_access_entry  # noqa: PLC0415

    operator = pipe.operator(OPERATOR_ROLE, session="operator")
    pipe.cloud.client("iam").put_role_policy(
        RoleName=OPERATOR_ROLE, PolicyName="local-operator", PolicyDocument=json.dumps(OPERATOR_POLICY)
    )
    groups = deploy_access_entry(operator.role_arn, cluster_name=CLUSTER_NAME)["KubernetesGroups"]
    pipe.cluster.access_entries.put(operator.role_arn, kubernetes_groups=groups)
    return pipe.cloud.iam.credentials(operator.role_arn, "operator")


def up(args: argparse.Namespace, stop: threading.Event) -> int:
    from local.aws import LocalCloud  # noqa: PLC0415 - moto only when a cloud starts
    from local.aws.gateway import Gateway  # noqa: PLC0415
    from local.aws.schedules import ScheduleTicker  # noqa: PLC0415
    from local.cluster import Cluster  # noqa: PLC0415

    state: Path = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    (state / "ready.json").unlink(missing_ok=True)
    with (
        Cluster(CLUSTER_NAME) as cluster,
        LocalCloud(
            TEMPLATE,
            parameters=parameters(),
            cluster=cluster,
            time_mode="realtime",
            acceleration=args.acceleration,
        ) as cloud,
    ):
        cloud.register_cluster(CLUSTER_NAME, cluster)
        create_repositories(cloud)
        pipe = Pipeline(cloud, cluster)
        creds = grant_operator(pipe)
        gateway = Gateway(region=REGION, port=args.port)
        ticker = ScheduleTicker(cloud)  # the drift check, off-hours: fired when due on the cloud's clock
        ticker.start()
        try:
            env = write_profile(state, gateway.endpoint, creds)
            env["KUBECONFIG"] = str(write_kubeconfig(state, cluster))
            (state / "outputs.json").write_text(json.dumps({k: str(v) for k, v in cloud.outputs.items()}, indent=2))
            env["TRIALSTUDIO_OUTPUTS"] = str(state / "outputs.json")
            (state / "env.sh").write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))
            if args.first_release:
                pipe.first_release()
            (state / "ready.json").write_text(
                json.dumps({"endpoint": gateway.endpoint, "pid": os.getpid(), "env": env}, indent=2)
            )
            sys.stdout.write(
                f"local cloud up: AWS endpoint {gateway.endpoint}, Kubernetes {cluster.endpoint}\n"
                f"  source {state / 'env.sh'}   # AWS_PROFILE={PROFILE}, KUBECONFIG, TRIALSTUDIO_OUTPUTS\n"
                f"  aws --endpoint-url {gateway.endpoint} stepfunctions list-executions --state-machine-arn "
                f"{cloud.outputs['DeployStateMachineArn']}\n"
                "  kubectl get deploy -n clinical-trials; trialstudio status\n"
            )
            sys.stdout.flush()
            stop.wait()
        finally:
            ticker.stop()
            gateway.close()
            (state / "ready.json").unlink(missing_ok=True)
    return 0


def token(cluster_name: str, region: str) -> int:
    """An ExecCredential with a fresh cluster-creator token (kubeconfig's exec plugin)."""
    from local.cluster import creator_token  # noqa: PLC0415

    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": creator_token(cluster_name, region)},
    }
    sys.stdout.write(json.dumps(credential) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description="The local cloud as a process.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the local cloud and serve it on loopback until interrupted")
    start.add_argument("--state-dir", type=Path, default=Path(".local-cloud"))
    start.add_argument("--port", type=int, default=0, help="the AWS endpoint's port (default: any free one)")
    start.add_argument("--acceleration", type=float, default=1.0, help="simulated seconds per wall second")
    start.add_argument("--first-release", action="store_true", help="push every service and deploy them once")
    tok = sub.add_parser("token", help="an ExecCredential for kubectl (the kubeconfig's exec plugin)")
    tok.add_argument("cluster")
    tok.add_argument("region")
    args = parser.parse_args(argv)
    if args.command == "token":
        return token(args.cluster, args.region)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return up(args, stop)
