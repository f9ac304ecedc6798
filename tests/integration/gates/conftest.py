"""moto-backed fixtures of the gate tests: the ledger table, the functions' environment, a deploy state machine."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from controlplane.aws.lock import LockTable
from controlplane.models.lease import Lease
from controlplane.models.lock import LockPurpose, LockRequest
from moto import mock_aws

TABLE = "ledger"
REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture
def gate_env(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto, the ledger table, and the variables template.yaml gives the gate functions."""
    env = {
        "ENVIRONMENT": "staging",
        "ACCOUNT_ID": ACCOUNT,
        "CLUSTER_NAME": "sts-staging",
        "LEDGER_TABLE_NAME": TABLE,
        "STAGING_LEDGER_TABLE_NAME": TABLE,  # staging's ledger: one table plays both here
        "LOCK_TTL_SECONDS": "3600",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield env


@pytest.fixture
def deploy_machine(gate_env: dict[str, str]) -> str:
    """A stand-in deploy state machine (moto keeps its executions RUNNING until stopped)."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition: dict[str, Any] = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="deploy", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]


def start(machine: str, name: str, payload: dict[str, Any] | None = None) -> str:
    return boto3.client("stepfunctions", region_name=REGION).start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(payload or {})
    )["executionArn"]


def ecr_push(service: str, digest: str, *, time: str, tag: str = "build-1") -> dict[str, Any]:
    """An EventBridge ECR Image Action event, as AWS documents it, for an image now in (moto's) ECR.

    AcquireLock refuses a pushed digest that is not in ECR, as on AWS an event follows a real push.
    """
    ecr = boto3.client("ecr", region_name=REGION)
    repository = f"clinical-trials/{service}"
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "d": digest})
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):  # untagged: tests reuse one tag
        ecr.put_image(repositoryName=repository, imageManifest=manifest, imageDigest=digest)
    return {
        "version": "0",
        "id": f"evt-{service}-{digest[-6:]}-{time}",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": time,
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": f"clinical-trials/{service}",
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        },
    }


def hold_lock(environment: str, owner: str) -> Lease:
    """Take the environment's deploy lock for ``owner`` (as AcquireLock does): the lease a step is fenced by."""
    request = LockRequest(environment=environment, owner=owner, purpose=LockPurpose.ROLLBACK)
    token = LockTable(TABLE, region=REGION).try_acquire(request, now=0, ttl_s=10**10)
    assert token is not None, f"the lock of {environment} is held by someone else"
    return Lease(environment=environment, owner=owner, token=token)
