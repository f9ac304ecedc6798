"""The control plane as the CLI sees it: its stack outputs, the ledger, Step Functions and the operator API.

Reads go straight to DynamoDB and Step Functions with the caller's AWS credentials (boto3's usual chain); every
privileged action (deploy, rollback, approve, off-hours, unquarantine, resending a dead-lettered push) is a
SigV4-signed POST to the operator API, so the ledger records the caller's own principal. Only ``diff`` and ``drift``
reach the cluster: with an EKS token signed by the caller's credentials, the same token path as the functions
(``controlplane.cluster.connect_to``), so the caller's IAM principal needs an EKS access entry.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError
from controlplane import platform
from controlplane.aws.ledger import Ledger
from controlplane.aws.lock import LockTable
from controlplane.aws.offhours import OffhoursLedger
from controlplane.cluster import connect_to
from controlplane.kube.client import ApiClient
from controlplane.models.release import ReleaseRecord

from trialstudio.render import HistoryEvent, history_events

_TAG_OR_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|[A-Za-z0-9_][A-Za-z0-9._-]{0,127})$")
REQUIRED_OUTPUTS = ("LedgerTableName", "DeployStateMachineArn", "RollbackStateMachineArn", "OperatorApiUrl")
OPERATOR_TIMEOUT_S = 60.0


class CliError(Exception):
    """A failure the CLI reports in one line and an exit code (1 failed, 2 refused or usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def aws_error(exc: Exception, doing: str) -> CliError:
    """A botocore error -> a CliError saying what was being done and what to check (no credentials in it)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if code in {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"}:
            return CliError(f"{doing}: {code}: {message} (check your AWS credentials and their permissions)", 2)
        return CliError(f"{doing}: {code}: {message}", 1)
    return CliError(f"{doing}: {exc} (check AWS_PROFILE / AWS_REGION and your credentials)", 2)


@dataclass(frozen=True)
class Outputs:
    """The stack outputs the CLI needs (template.yaml ``Outputs``)."""

    values: Mapping[str, str]

    def __post_init__(self) -> None:
        missing = [key for key in REQUIRED_OUTPUTS if not self.values.get(key)]
        if missing:
            raise CliError(f"stack outputs: missing {', '.join(missing)} (is this the control plane's stack?)", 2)

    def __getitem__(self, key: str) -> str:
        return str(self.values[key])

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        return str(value) if value else None

    @classmethod
    def from_file(cls, path: Path) -> Outputs:
        """A JSON object of output key -> value (what ``make up`` writes, or ``describe-stacks`` outputs reshaped)."""
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise CliError(f"--outputs {path}: cannot read it ({exc.strerror})", 2) from None
        except ValueError as exc:
            raise CliError(f"--outputs {path}: not JSON ({exc})", 2) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise CliError(f"--outputs {path}: expected a JSON object of output name -> string", 2)
        return cls(data)

    @classmethod
    def from_stack(cls, session: boto3.Session, stack: str) -> Outputs:
        try:
            described = session.client("cloudformation").describe_stacks(StackName=stack)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, f"reading the outputs of stack {stack!r} (pass --stack or --outputs)") from None
        outputs = described["Stacks"][0].get("Outputs") or []
        return cls({o["OutputKey"]: o["OutputValue"] for o in outputs})


@dataclass(frozen=True)
class Running:
    arn: str
    state_machine: str
    started: Any
    state: str | None


class ControlPlane:
    def __init__(self, outputs: Outputs, session: boto3.Session, *, cluster_name: str | None = None) -> None:
        self.outputs = outputs
        self.session = session
        self.region = session.region_name or "us-east-1"
        self.table = outputs["LedgerTableName"]
        self.cluster_name = cluster_name or outputs.get("ClusterName")
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """One boto3 client per service, with the caller's credentials (the profile, never the ambient ones)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def sfn(self) -> Any:
        return self.client("stepfunctions")

    # -- the ledger --------------------------------------------------------------------------------------------------
    @property
    def ledger(self) -> Ledger:
        return Ledger(self.table, client=self.client("dynamodb"))

    @property
    def locks(self) -> LockTable:
        return LockTable(self.table, client=self.client("dynamodb"))

    @property
    def sleep(self) -> OffhoursLedger:
        return OffhoursLedger(self.table, client=self.client("dynamodb"))

    def releases(self, environment: str) -> list[ReleaseRecord]:
        """Every release of ``environment``, oldest first."""
        return releases(self.client("dynamodb"), self.ledger, environment)

    # -- the cluster -------------------------------------------------------------------------------------------------
    def cluster(self) -> ApiClient:
        """A Kubernetes API client as the caller: endpoint and CA from ``eks:DescribeCluster``, an EKS token."""
        if not self.cluster_name:
            raise CliError("no cluster name: the stack has no ClusterName output; pass --cluster", 2)
        return connect_to(self.cluster_name, region=self.region, session=self.session)

    # -- Step Functions ----------------------------------------------------------------------------------------------
    def state_machines(self) -> dict[str, str]:
        machines = {
            "deploy": self.outputs["DeployStateMachineArn"],
            "rollback": self.outputs["RollbackStateMachineArn"],
        }
        offhours = self.outputs.get("OffHoursStateMachineArn")
        if offhours:
            machines["offhours"] = offhours
        return machines

    def history(self, arn: str) -> list[HistoryEvent]:
        raw: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            raw += page["events"]
            if not page.get("nextToken"):
                return history_events(raw)
            kwargs["nextToken"] = page["nextToken"]

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.sfn.describe_execution(executionArn=arn))

    def running(self) -> list[Running]:
        found: list[Running] = []
        for label, machine in self.state_machines().items():
            listed = self.sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING", maxResults=20)
            for execution in listed["executions"]:
                arn = str(execution["executionArn"])
                entered = [e.state_name for e in self.history(arn) if e.type.endswith("StateEntered")]
                found.append(Running(arn, label, execution["startDate"], entered[-1] if entered else None))
        return found

    # -- the operator API --------------------------------------------------------------------------------------------
    def operator(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the operator API signed as the caller (SigV4, service ``lambda``); (status, answer)."""
        credentials = self.session.get_credentials()
        if credentials is None:
            raise CliError("no AWS credentials: set AWS_PROFILE (or the AWS_* variables) to your operator identity", 2)
        url = self.outputs["OperatorApiUrl"]
        data = json.dumps(body).encode()
        request = AWSRequest(method="POST", url=url, data=data, headers={"content-type": "application/json"})
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", self.region).add_auth(request)
        prepared = urllib.request.Request(url, data=data, headers=dict(request.headers.items()), method="POST")  # noqa: S310 - the stack's https URL (http on the local cloud's loopback)
        try:
            with urllib.request.urlopen(prepared, timeout=OPERATOR_TIMEOUT_S) as response:  # noqa: S310
                return int(response.status), _answer(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), _answer(error.read())
        except (urllib.error.URLError, TimeoutError) as error:
            raise CliError(f"operator API {url}: {getattr(error, 'reason', error)} (is the stack deployed?)") from None


def releases(dynamodb: Any, ledger: Ledger, environment: str) -> list[ReleaseRecord]:
    """Every release of ``environment`` in ``ledger``, oldest first, each read through the Ledger adapter.

    The table has no index by environment (the control plane itself never lists releases), so the ids come from a
    scan of the release items: fine for an operator's look, not something a step should do.
    """
    ids: list[str] = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=ledger.table_name,
        FilterExpression="sk = :meta AND #env = :env",
        ExpressionAttributeNames={"#env": "environment"},
        ExpressionAttributeValues={":meta": {"S": "META"}, ":env": {"S": environment}},
        ProjectionExpression="release_id",
    ):
        ids += [item["release_id"]["S"] for item in page["Items"]]
    records = [ledger.require_release(release_id) for release_id in ids]
    return sorted(records, key=lambda r: (r.started_at, r.release_id))


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {"ok": False, "message": raw[:200].decode(errors="replace")}
    return data if isinstance(data, dict) else {"ok": False, "message": str(data)[:200]}


def parse_services(pairs: Sequence[str]) -> dict[str, str]:
    services: dict[str, str] = {}
    for pair in pairs:
        service, sep, ref = pair.partition("=")
        if not sep or not service or not ref:
            raise CliError(f"{pair!r}: expected <service>=<tag|sha256:digest>", 2)
        if service not in platform.SERVICE_NAMES:
            raise CliError(f"{pair!r}: unknown service {service!r} (one of {', '.join(platform.SERVICE_NAMES)})", 2)
        if not _TAG_OR_DIGEST.match(ref):
            raise CliError(f"{pair!r}: {ref!r} is neither an image tag nor a sha256:<64 hex> digest", 2)
        if service in services:
            raise CliError(f"{pair!r}: {service} is named twice", 2)
        services[service] = ref
    return services
