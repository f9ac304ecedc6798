"""The deploy pipeline on the local cloud: our template, ASL and handlers in moto, the Kubernetes emulator as EKS.

Used by the pipeline's e2e tests, the bench and the demo (``make demo``). The template's defaults work locally as
deployed: ``ManifestsDir``/``StacksFile`` (``/opt/...``) resolve against the ManifestsLayer's ContentUri (the harness
maps a function's ``/opt`` paths to its layers), and an empty ``NotificationKmsKeyArn`` creates the dedicated
NotificationKey in moto KMS. Only environment choices (cluster, tag rules, no platform stacks) are overridden.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controlplane import platform
from controlplane.aws.ledger import Ledger
from controlplane.kube.apply import live_owned_objects
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.models.kube import ObjectRef
from controlplane.models.release import ReleaseRecord, ReleaseStatus, Trigger, TriggerKind

from local.nodegroups import add_tainted_groups
from trialstudio.control import releases

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
MANIFESTS = REPO / "manifests" / "kubernetes"
CLUSTER_NAME = "sts-staging"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
EVENT = json.loads((REPO / "tests" / "events" / "ecr_push.json").read_text())


def parameters(**overrides: Any) -> dict[str, Any]:
    return {
        "Environment": "staging",
        "ClusterName": CLUSTER_NAME,
        "TagRules": '[{"tag": "main-*", "environment": "staging"}, {"tag": "v*", "environment": "production"}]',
        # The platform stacks are not provisioned by default here (moto cannot create the real templates: see
        # tests/e2e/test_gates_stacks.py for provisioning through the ASL with a small catalog).
        "ProvisionStacks": "false",
        "Approvers": f"{APPROVER_ROLE},{ALSO_APPROVER_ROLE}",
        **overrides,
    }


APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/release-approver"
ALSO_APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/release-manager"
"""The template's ``Approvers`` here: two roles (a release manager may also request releases)."""


OPERATOR_ROLE = "platform-operator"
"""The role the harness's rollbacks and off-hours actions are signed as (not an approver)."""


class OperatorRefusedError(AssertionError):
    """The operator API refused a request the harness made (HTTP status and answer)."""

    def __init__(self, status: int, answer: Mapping[str, Any]) -> None:
        super().__init__(f"operator API answered {status}: {answer}")
        self.status, self.answer = status, dict(answer)


@dataclass(frozen=True)
class Operator:
    """A person on the operator API: a session of an IAM role moto issued (``sts:AssumeRole``)."""

    role_arn: str
    session_arn: str
    credentials: Any  # botocore Credentials (temporary: key, secret, token)
    url: str

    def call(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the operator API signed with SigV4 (service ``lambda``); (HTTP status, JSON answer)."""
        return call_operator_api(self.url, body, self.credentials)


def call_operator_api(url: str, body: Any, credentials: Any, *, region: str = REGION) -> tuple[int, dict[str, Any]]:
    """What the README shows: botocore signs the request, any HTTP client sends it."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415

    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url, data=data, headers={"content-type": "application/json"})
    if credentials is not None:
        SigV4Auth(credentials, "lambda", region).add_auth(request)
    prepared = urllib.request.Request(url, data=data, headers=dict(request.headers.items()), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:  # noqa: S310 - loopback http
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"{}")


@dataclass
class Pipeline:
    """A started LocalCloud with the emulator registered as the environment's EKS cluster."""

    cloud: Any
    cluster: Any
    pushes: int = 0
    digests: dict[str, str] = field(default_factory=dict)

    # -- images and events -----------------------------------------------------------------------------------------
    def push(self, service: str, tag: str, behaviour: Any = None) -> str:
        """Push an image to ECR (no event) and decide what its pods will do; returns the digest."""
        digest = str(self.cloud.push_image(f"{platform.REPOSITORY_PREFIX}{service}", tag, emit_event=False))
        if behaviour is not None:
            self.cluster.images.set(digest, behaviour)
        self.digests[service] = digest
        return digest

    def push_event(self, repository: str, digest: str, tag: str | None) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(json.dumps(EVENT))
        event["id"] = str(uuid.uuid4())
        event["detail"]["repository-name"] = repository
        event["detail"]["image-digest"] = digest
        if tag is None:
            event["detail"].pop("image-tag")
        else:
            event["detail"]["image-tag"] = tag
        return event

    def deliver(self, event: Mapping[str, Any]) -> list[str]:
        """Put the event on the default bus; the execution ARNs the rule started."""
        return [d.execution_arn for d in self.cloud.deliver_event(event) if d.execution_arn]

    # -- runs --------------------------------------------------------------------------------------------------------
    def deploy(self, request: Mapping[str, Any], timeout: float | None = None) -> Any:
        return self.cloud.run("DeployStateMachine", dict(request), timeout=timeout)

    def rollback(self, request: Mapping[str, Any], timeout: float | None = None) -> Any:
        """An operator's rollback (or acknowledgement) through the operator API, finished."""
        return self.cloud.wait_execution(self.start_rollback(request), timeout=timeout)

    def first_release(self, tag: str = "main-1") -> Any:
        """Every service pushed and deployed from the console: the environment's first release."""
        result = self.cloud.wait_execution(self.start_first_release(tag))
        assert result.status == "SUCCEEDED", (result.error, result.cause)
        return result

    def push_and_deploy(self, service: str, tag: str, behaviour: Any = None, timeout: float | None = None) -> Any:
        return self.cloud.wait_execution(self.start_push(service, tag, behaviour), timeout=timeout)

    # -- runs started without waiting (the demo follows their history while they run) ------------------------------
    def start_first_release(self, tag: str = "main-1") -> str:
        """Push every service and start the first release from the console; the execution ARN."""
        images = {name: self.push(name, tag) for name in platform.SERVICE_NAMES}
        request = {"environment": "staging", "services": images, "reason": "first release"}
        return str(self.cloud.start_execution("DeployStateMachine", request))

    def start_push(self, service: str, tag: str, behaviour: Any = None) -> str:
        """Push an image and deliver its ECR event; the ARN of the one execution the rule started."""
        digest = self.push(service, tag, behaviour)
        arns = self.deliver(self.push_event(f"{platform.REPOSITORY_PREFIX}{service}", digest, tag))
        assert len(arns) == 1, arns
        return arns[0]

    def start_rollback(self, request: Mapping[str, Any]) -> str:
        """An operator's rollback started through the operator API (signed as :data:`OPERATOR_ROLE`); its ARN."""
        return self.start_as_operator({"action": "rollback", **request})

    def start_as_operator(self, body: Mapping[str, Any]) -> str:
        """POST ``body`` to the operator API as the on-call operator; the execution it started (refusals raise)."""
        status, answer = self.operator(OPERATOR_ROLE, session="on-call").call(dict(body))
        if status != 200:
            raise OperatorRefusedError(status, answer)
        return str(answer["execution_arn"])

    # -- people on the operator API ------------------------------------------------------------------------------
    def operator(self, role: str, session: str = "someone", *, access: bool = True) -> Operator:
        """A session of the IAM role named ``role`` (created if missing), ready to call the operator API.

        ``access``: the role has the stack's ``OperatorAccessPolicy`` attached (``lambda:InvokeFunctionUrl``), as the
        README tells an account's administrator to do; without it AWS answers 403 before the function runs.
        """
        from botocore.credentials import Credentials  # noqa: PLC0415

        iam = self.cloud.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}],
        }
        try:
            arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            arn = iam.get_role(RoleName=role)["Role"]["Arn"]
        if access:
            iam.attach_role_policy(RoleName=role, PolicyArn=str(self.cloud.outputs["OperatorAccessPolicyArn"]))
        assumed = self.cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName=session)
        creds = assumed["Credentials"]
        return Operator(
            role_arn=str(arn),
            session_arn=str(assumed["AssumedRoleUser"]["Arn"]),
            credentials=Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
            url=str(self.cloud.outputs["OperatorApiUrl"]),
        )

    # -- what is where -----------------------------------------------------------------------------------------------
    def planned_release(self, result: Any) -> str:
        """The release id the execution's PlanRelease state planned (from its history, as ``trialstudio show``
        reads it); AssertionError if the execution never left PlanRelease."""
        for event in self.cloud.history(result.arn):
            if event.type == "TaskStateExited" and event.state_name == "PlanRelease":
                output = event.details["output"]
                output = json.loads(output) if isinstance(output, str) else output
                return str(output["plan"]["release"]["release_id"])
        raise AssertionError(f"execution {result.arn} has no PlanRelease output")

    @property
    def ledger(self) -> Ledger:
        return Ledger(str(self.cloud.ref("LedgerTable")), region=REGION)

    @property
    def staging_ledger(self) -> Ledger:
        """The staging control plane's ledger, by its fixed name (``<ProjectName>-staging-ledger``): this cloud's own
        in staging; in production the table a staging control plane in the same account would have made (created
        here on first use, as that stack would)."""
        name = f"{self.cloud.parameters.get('ProjectName', 'synthetictrialstudio')}-staging-ledger"
        dynamodb = self.cloud.client("dynamodb")
        if name not in dynamodb.list_tables()["TableNames"]:
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        return Ledger(name, region=REGION)

    def healthy_in_staging(self, images: dict[str, str]) -> None:
        """What the staging control plane's ledger says after a healthy staging release of ``images`` (production's
        deploys require it)."""
        now = datetime.now(UTC)
        ledger = self.staging_ledger
        ledger.put_planned(
            ReleaseRecord(
                release_id="rel-staging-1",
                environment="staging",
                images=images,
                bundle_hash="staging",
                status=ReleaseStatus.PLANNED,
                trigger=Trigger(kind=TriggerKind.CONSOLE, reason="staging release"),
                execution_arn="arn:aws:states:us-east-1:123456789012:execution:staging-deploy:1",
                started_at=now,
            )
        )
        ledger.update_release("rel-staging-1", status=ReleaseStatus.SUCCEEDED, healthy_at=now)
        ledger.promote("staging", "rel-staging-1", expected_previous=None, execution_arn="seed", now=now)

    def releases(self, environment: str) -> list[ReleaseRecord]:
        """Every release of ``environment`` in the ledger, oldest first (as ``trialstudio history`` reads them)."""
        return releases(self.cloud.client("dynamodb"), self.ledger, environment)

    def owned(self) -> dict[str, dict[str, Any]]:
        """The cluster's objects carrying the ownership label: key -> {kind, images}."""
        api = build_api_client(
            ClusterAccess(endpoint=self.cluster.endpoint, ca_data=self.cluster.ca_data, token=self.cluster.token())
        )
        kinds = {(o["apiVersion"], o["kind"]) for o in json.loads(json.dumps(self._rendered_kinds()))}
        try:
            objects = live_owned_objects(api, [platform.NAMESPACE], sorted(kinds))
        finally:
            api.close()
        found: dict[str, dict[str, Any]] = {}
        for obj in objects:
            containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
            found[ObjectRef.of(obj).key] = {"images": sorted(c.get("image", "") for c in containers)}
        return found

    def resource_versions(self) -> dict[str, str]:
        """``resourceVersion`` of every owned object: unchanged versions mean nothing was written."""
        api = build_api_client(
            ClusterAccess(endpoint=self.cluster.endpoint, ca_data=self.cluster.ca_data, token=self.cluster.token())
        )
        kinds = sorted({(o["apiVersion"], o["kind"]) for o in self._rendered_kinds()})
        try:
            objects = live_owned_objects(api, [platform.NAMESPACE], kinds)
        finally:
            api.close()
        return {ObjectRef.of(o).key: str(o["metadata"].get("resourceVersion")) for o in objects}

    def _rendered_kinds(self) -> list[dict[str, str]]:
        from controlplane.render import load_bundle  # noqa: PLC0415

        return [{"apiVersion": d.body["apiVersion"], "kind": d.kind} for d in load_bundle(MANIFESTS).documents]

    def writes(self) -> list[Any]:
        """Requests of the control plane that changed something in the cluster (not the admin's bootstrap; not the
        self reviews, which are created but never stored)."""
        return [
            r
            for r in self.cluster.requests
            if getattr(r, "verb", "") in {"create", "update", "patch", "apply", "delete"}
            and getattr(r, "user", "") != self.cluster.admin_username
            and "/apis/authorization.k8s.io/" not in getattr(r, "path", "")
        ]

    def deployment_image(self, name: str) -> str:
        images = self.owned()[f"Deployment.apps/{platform.NAMESPACE}/{name}"]["images"]
        assert len(images) == 1, images
        return str(images[0])


@contextmanager
def pipeline(cluster: Any, **overrides: Any) -> Iterator[Pipeline]:
    from local.aws import LocalCloud  # noqa: PLC0415 - the harness imports moto: only when a test needs it

    with LocalCloud(TEMPLATE, parameters=parameters(**overrides), cluster=cluster) as cloud:
        cloud.register_cluster(CLUSTER_NAME, cluster)
        # The eks stack's tainted node groups of the environment (production's compute, memory and spot nodes) beside
        # the emulator's general nodes: the services the environment places there have somewhere to run.
        add_tainted_groups(cloud, CLUSTER_NAME, cluster, str(parameters(**overrides)["Environment"]))
        create_repositories(cloud)
        yield Pipeline(cloud, cluster)


def create_repositories(cloud: Any, *, immutable: bool = False) -> None:
    """The services' ECR repositories with scan on push, as the ecr stack makes them (tags mutable unless asked)."""
    ecr = cloud.client("ecr")
    for name in platform.SERVICE_NAMES:
        ecr.create_repository(
            repositoryName=f"{platform.REPOSITORY_PREFIX}{name}",
            imageTagMutability="IMMUTABLE" if immutable else "MUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        )
