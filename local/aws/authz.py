"""Who calls, and may they: IAM enforcement on every AWS API call made inside the local cloud.

Principals
    * A Lambda invocation runs with credentials of its function's execution role: the harness assumes the role
      through moto's STS (session name = function name, cached per role and function) and the handler's boto3
      clients carry them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` are exported for the
      call and ``boto3``'s default session is the role's for the invoking thread).
    * A state machine's service integrations run as the execution's role (the state machine's ``RoleArn``): the
      seam in ``local.aws.seams`` replaces moto's ``boto_client_for`` (which signs every call with one fixed key).
    * EventBridge and Scheduler targets with a ``RoleArn`` start executions as that role.
    * The harness itself and the tests (moto's ``testing`` key) act as the account's administrator: not checked.

Authorization
    Every call goes through ``botocore.client.BaseClient._make_api_call`` (patched while a cloud is open). The call is
    mapped by :data:`OPERATIONS` to the IAM action(s), resource ARN(s) and condition-key context AWS evaluates, and
    each is evaluated (:func:`local.aws.iam.evaluate`) against the policies the principal's role has after the SAM
    transform. A denied call raises the service's own error (``AccessDeniedException``, ``AccessDenied``,
    ``AuthorizationError`` for SNS) with AWS's message. A call by a role principal that :data:`OPERATIONS` does not
    know fails with :class:`UnmappedOperationError` ("add it to the table").
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.aws.iam import Decision, Policy, Statement, bounded, denial_message, evaluate, managed_policy
from local.aws.limits import RequestRejected, check_request

HARNESS_ACCESS_KEY = "testing"  # moto's documented fake credentials: the harness and the tests
_HARNESS_ARN = "arn:aws:iam::{account}:user/moto"  # what moto's GetCallerIdentity answers for the harness key


_loader_lock = threading.Lock()
_shared_loader: Any = None


def _loader() -> Any:
    """The process's one botocore loader, searching where a ``boto3.Session``'s loader searches.

    ``boto3.Session`` appends its own data path (resource models) to its loader's ``search_paths`` each time a session
    is made: the shared loader has that path from the start and hands out a copy of its list, so the appends change
    nothing and the paths never pile up.
    """
    import botocore.loaders  # noqa: PLC0415

    class SharedLoader(botocore.loaders.Loader):
        def __init__(self) -> None:
            super().__init__()
            self._paths = [*super().search_paths, str(Path(boto3.__file__).parent / "data")]

        @property
        def search_paths(self) -> list[str]:
            return list(self._paths)

    global _shared_loader  # noqa: PLW0603 - one loader per process, made on first use
    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = SharedLoader()
        return _shared_loader


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 session whose service models come from the process's one botocore loader.

    Every role of every cloud has its own session (its own credentials), but the JSON service models are read once
    per process instead of once per session: botocore caches what a loader read, and the models never change.
    """
    import botocore.session  # noqa: PLC0415

    core = botocore.session.Session()
    core.register_component("data_loader", _loader())
    return boto3.Session(botocore_session=core, **kwargs)


class UnmappedOperationError(RuntimeError):
    """A role principal called an operation whose IAM action/resource mapping the harness does not know."""


@dataclass(frozen=True)
class Access:
    """One authorization AWS performs for a call: action, resource ARN and condition-key context."""

    action: str
    resource: str
    context: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    arn: str  # the session ARN GetCallerIdentity returns (arn:aws:sts::ACCT:assumed-role/NAME/SESSION)
    role_arn: str


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    principal: Principal


class Lookup:
    """What a mapper needs to build resource ARNs: region, account and read access to the cloud (as the harness)."""

    def __init__(self, region: str, account: str, admin: Callable[[], boto3.Session]) -> None:
        self.region = region
        self.account = account
        self._admin = admin
        self._clients: dict[str, Any] = {}

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self._admin().client(service, region_name=self.region)  # type: ignore[call-overload]
        return client


Mapper = Callable[[Mapping[str, Any], Lookup], list[Access]]


# -- the operation table ------------------------------------------------------------------------------------------
def _one(action: str, resource: Callable[[Mapping[str, Any], Lookup], str]) -> Mapper:
    return lambda params, lookup: [Access(action, resource(params, lookup))]


def _any(action: str) -> Mapper:
    return lambda _params, _lookup: [Access(action, "*")]


def _table_arn(name: str, lookup: Lookup) -> str:
    return name if name.startswith("arn:") else lookup.arn("dynamodb", f"table/{name}")


def _table(params: Mapping[str, Any], lookup: Lookup) -> str:
    arn = _table_arn(str(params["TableName"]), lookup)
    return f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn


def _batch_write(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    accesses: list[Access] = []
    for table, requests in (params.get("RequestItems") or {}).items():
        if requests:
            accesses.append(Access("dynamodb:BatchWriteItem", _table_arn(table, lookup)))
    return accesses


def _batch_get(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    return [Access("dynamodb:BatchGetItem", _table_arn(t, lookup)) for t in params.get("RequestItems") or {}]


_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _transact_write(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    accesses: list[Access] = []
    for item in params.get("TransactItems") or []:
        for kind, body in item.items():
            accesses.append(Access(_TRANSACT_ACTIONS[kind], _table_arn(str(body["TableName"]), lookup)))
    return accesses


def _repository(params: Mapping[str, Any], lookup: Lookup) -> str:
    registry = str(params.get("registryId") or lookup.account)
    return f"arn:aws:ecr:{lookup.region}:{registry}:repository/{params['repositoryName']}"


def _repositories(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    names = params.get("repositoryNames") or []
    if not names:
        return [Access("ecr:DescribeRepositories", lookup.arn("ecr", "repository/*"))]
    return [Access("ecr:DescribeRepositories", _repository({**params, "repositoryName": n}, lookup)) for n in names]


def _cluster(params: Mapping[str, Any], lookup: Lookup) -> str:
    return lookup.arn("eks", f"cluster/{params.get('name') or params['clusterName']}")


def _nodegroup(params: Mapping[str, Any], lookup: Lookup) -> str:
    cluster, group = params["clusterName"], params["nodegroupName"]
    eks = lookup.client("eks")
    try:
        return str(eks.describe_nodegroup(clusterName=cluster, nodegroupName=group)["nodegroup"]["nodegroupArn"])
    except eks.exceptions.ResourceNotFoundException:
        return lookup.arn("eks", f"nodegroup/{cluster}/{group}/*")


def _execution(params: Mapping[str, Any], _lookup: Lookup) -> str:
    return str(params["executionArn"])


def _state_machine(params: Mapping[str, Any], _lookup: Lookup) -> str:
    return str(params["stateMachineArn"])


def _task_token_owner(params: Mapping[str, Any], lookup: Lookup) -> str:
    """The state machine whose running execution issued the task token (Step Functions authorizes on it)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends  # noqa: PLC0415

    backend = stepfunctions_parser_backends[lookup.account][lookup.region]
    token = params.get("taskToken")
    for machine in backend.state_machines:
        for execution in machine.executions:
            worker = getattr(execution, "exec_worker", None)
            env = getattr(worker, "env", None)
            if env is not None and env.callback_pool_manager.get(token) is not None:
                return str(execution.state_machine_arn)
    return lookup.arn("states", "stateMachine:*")


def _send_task(action: str) -> Mapper:
    return _one(action, _task_token_owner)


def _topic_publish(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    topic = str(params.get("TopicArn") or params.get("TargetArn"))
    accesses = [Access("sns:Publish", topic)]
    sns = lookup.client("sns")
    try:
        key = sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("KmsMasterKeyId")
    except sns.exceptions.NotFoundException:
        return accesses
    if key:
        # SNS encrypts with the publisher's permissions: it calls GenerateDataKey and Decrypt on the publisher's
        # behalf (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
        arn = _key_arn(key, lookup)
        accesses += [Access("kms:GenerateDataKey", arn), Access("kms:Decrypt", arn)]
    return accesses


def _key_arn(key: str, lookup: Lookup) -> str:
    kms = lookup.client("kms")
    try:
        return str(kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        return key if key.startswith("arn:") else lookup.arn("kms", f"key/{key}")


def _kms(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
        key = params.get("KeyId")
        if key is None:  # Decrypt of a symmetric ciphertext: the key is inside the blob
            key = _ciphertext_key(params, lookup)
        context = {f"kms:EncryptionContext:{k}": [str(v)] for k, v in (params.get("EncryptionContext") or {}).items()}
        return [Access(action, _key_arn(str(key), lookup), context)]

    return mapper


def _ciphertext_key(params: Mapping[str, Any], _lookup: Lookup) -> str:
    """The key a symmetric ciphertext was made with (moto's blob starts with the key id)."""
    from moto.kms.utils import KEY_ID_LEN  # noqa: PLC0415 - moto's blob layout: key id, IV, tag, ciphertext

    blob = bytes(params.get("CiphertextBlob") or b"")
    return blob[:KEY_ID_LEN].decode(errors="replace")


def _object(params: Mapping[str, Any], _lookup: Lookup) -> str:
    return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"


def _bucket(params: Mapping[str, Any], _lookup: Lookup) -> str:
    return f"arn:aws:s3:::{params['Bucket']}"


def _stack(params: Mapping[str, Any], lookup: Lookup) -> str:
    name = params.get("StackName")
    if not name:
        return "*"
    if str(name).startswith("arn:"):
        return str(name)
    cfn = lookup.client("cloudformation")
    try:
        return str(cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"])
    except cfn.exceptions.ClientError:
        return lookup.arn("cloudformation", f"stack/{name}/*")


def _stack_op(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
        # The condition keys CloudFormation documents for these actions (present only when the request has them).
        context: dict[str, list[str]] = {}
        if params.get("RoleARN"):
            context["cloudformation:RoleArn"] = [str(params["RoleARN"])]
        if params.get("TemplateURL"):
            context["cloudformation:TemplateUrl"] = [str(params["TemplateURL"])]
        if params.get("StackPolicyURL"):
            context["cloudformation:StackPolicyUrl"] = [str(params["StackPolicyURL"])]
        if params.get("ResourcesToImport"):
            types = {str(r.get("ResourceType")) for r in params["ResourcesToImport"]}
            context["cloudformation:ImportResourceTypes"] = sorted(types)
        accesses = [Access(action, _stack(params, lookup), context)]
        if params.get("RoleARN"):
            passed = {"iam:PassedToService": ["cloudformation.amazonaws.com"]}
            accesses.append(Access("iam:PassRole", str(params["RoleARN"]), passed))
        return accesses

    return mapper


def _change_set_op(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
        change_set = str(params.get("ChangeSetName") or "")
        if change_set.startswith("arn:") and not params.get("StackName"):
            cfn = lookup.client("cloudformation")
            params = {**params, "StackName": cfn.describe_change_set(ChangeSetName=change_set)["StackId"]}
        return [Access(action, _stack(params, lookup))]

    return mapper


def _function(params: Mapping[str, Any], lookup: Lookup) -> str:
    name = str(params["FunctionName"])
    if name.startswith("arn:"):
        return ":".join(name.split(":")[:7])
    return lookup.arn("lambda", f"function:{name}")


def _queue(params: Mapping[str, Any], lookup: Lookup) -> str:
    """A queue URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``, or moto's host) -> its ARN."""
    account, name = str(params["QueueUrl"]).rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{lookup.region}:{account}:{name}"


def _event_bus(params: Mapping[str, Any], lookup: Lookup) -> list[Access]:
    buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries") or []}
    return [
        Access("events:PutEvents", b if b.startswith("arn:") else lookup.arn("events", f"event-bus/{b}"))
        for b in sorted(buses)
    ]


OPERATIONS: dict[tuple[str, str], Mapper] = {
    # (IAM service prefix, API operation) -> the authorizations AWS performs for it. Only operations that some
    # principal of the templates calls are listed; a role calling anything else fails loudly: add it here.
    ("dynamodb", "GetItem"): _one("dynamodb:GetItem", _table),
    ("dynamodb", "PutItem"): _one("dynamodb:PutItem", _table),
    ("dynamodb", "UpdateItem"): _one("dynamodb:UpdateItem", _table),
    ("dynamodb", "DeleteItem"): _one("dynamodb:DeleteItem", _table),
    ("dynamodb", "Query"): _one("dynamodb:Query", _table),
    ("dynamodb", "Scan"): _one("dynamodb:Scan", _table),
    ("dynamodb", "DescribeTable"): _one("dynamodb:DescribeTable", _table),
    ("dynamodb", "BatchWriteItem"): _batch_write,
    ("dynamodb", "BatchGetItem"): _batch_get,
    ("dynamodb", "TransactWriteItems"): _transact_write,
    ("ecr", "DescribeImages"): _one("ecr:DescribeImages", _repository),
    ("ecr", "BatchGetImage"): _one("ecr:BatchGetImage", _repository),
    ("ecr", "PutImage"): _one("ecr:PutImage", _repository),
    ("ecr", "DescribeImageScanFindings"): _one("ecr:DescribeImageScanFindings", _repository),
    ("ecr", "StartImageScan"): _one("ecr:StartImageScan", _repository),
    ("ecr", "DescribeRepositories"): _repositories,
    ("ecr", "GetAuthorizationToken"): _any("ecr:GetAuthorizationToken"),
    ("eks", "DescribeCluster"): _one("eks:DescribeCluster", _cluster),
    ("eks", "ListNodegroups"): _one("eks:ListNodegroups", _cluster),
    ("eks", "DescribeNodegroup"): _one("eks:DescribeNodegroup", _nodegroup),
    ("eks", "UpdateNodegroupConfig"): _one("eks:UpdateNodegroupConfig", _nodegroup),
    ("eks", "ListClusters"): _any("eks:ListClusters"),
    ("states", "StartExecution"): _one("states:StartExecution", _state_machine),
    ("states", "DescribeExecution"): _one("states:DescribeExecution", _execution),
    ("states", "StopExecution"): _one("states:StopExecution", _execution),
    ("states", "GetExecutionHistory"): _one("states:GetExecutionHistory", _execution),
    ("states", "ListExecutions"): _one("states:ListExecutions", _state_machine),
    ("states", "SendTaskSuccess"): _send_task("states:SendTaskSuccess"),
    ("states", "SendTaskFailure"): _send_task("states:SendTaskFailure"),
    ("states", "SendTaskHeartbeat"): _send_task("states:SendTaskHeartbeat"),
    ("sns", "Publish"): _topic_publish,
    ("kms", "GenerateDataKey"): _kms("kms:GenerateDataKey"),
    ("kms", "Decrypt"): _kms("kms:Decrypt"),
    ("kms", "Encrypt"): _kms("kms:Encrypt"),
    ("kms", "GenerateMac"): _kms("kms:GenerateMac"),
    ("kms", "VerifyMac"): _kms("kms:VerifyMac"),
    ("kms", "DescribeKey"): _kms("kms:DescribeKey"),
    ("s3", "PutObject"): _one("s3:PutObject", _object),
    ("s3", "GetObject"): _one("s3:GetObject", _object),
    ("s3", "HeadObject"): _one("s3:GetObject", _object),
    ("s3", "DeleteObject"): _one("s3:DeleteObject", _object),
    ("s3", "ListObjectsV2"): _one("s3:ListBucket", _bucket),
    ("cloudformation", "CreateStack"): _stack_op("cloudformation:CreateStack"),
    ("cloudformation", "UpdateStack"): _stack_op("cloudformation:UpdateStack"),
    ("cloudformation", "CreateChangeSet"): _stack_op("cloudformation:CreateChangeSet"),
    ("cloudformation", "DeleteStack"): _stack_op("cloudformation:DeleteStack"),
    ("cloudformation", "DescribeStacks"): _stack_op("cloudformation:DescribeStacks"),
    ("cloudformation", "DescribeStackEvents"): _stack_op("cloudformation:DescribeStackEvents"),
    ("cloudformation", "DescribeStackResources"): _stack_op("cloudformation:DescribeStackResources"),
    ("cloudformation", "GetTemplate"): _stack_op("cloudformation:GetTemplate"),
    ("cloudformation", "UpdateTerminationProtection"): _stack_op("cloudformation:UpdateTerminationProtection"),
    ("cloudformation", "SetStackPolicy"): _stack_op("cloudformation:SetStackPolicy"),
    ("cloudformation", "DescribeChangeSet"): _change_set_op("cloudformation:DescribeChangeSet"),
    ("cloudformation", "ExecuteChangeSet"): _change_set_op("cloudformation:ExecuteChangeSet"),
    ("cloudformation", "DeleteChangeSet"): _change_set_op("cloudformation:DeleteChangeSet"),
    ("cloudformation", "ValidateTemplate"): _any("cloudformation:ValidateTemplate"),
    ("lambda", "Invoke"): _one("lambda:InvokeFunction", _function),
    ("lambda", "GetFunction"): _one("lambda:GetFunction", _function),
    ("lambda", "GetFunctionConfiguration"): _one("lambda:GetFunctionConfiguration", _function),
    ("events", "PutEvents"): _event_bus,
    ("sqs", "ReceiveMessage"): _one("sqs:ReceiveMessage", _queue),
    ("sqs", "DeleteMessage"): _one("sqs:DeleteMessage", _queue),
    ("sqs", "ChangeMessageVisibility"): _one("sqs:ChangeMessageVisibility", _queue),
    ("cloudwatch", "PutMetricData"): _any("cloudwatch:PutMetricData"),
    ("sts", "GetCallerIdentity"): lambda _params, _lookup: [],  # never needs a permission
}

_SERVICE_PREFIX = {"monitoring": "cloudwatch"}  # botocore signing name -> IAM service prefix where they differ
_QUERY_PROTOCOLS = {"query", "rest-xml", "ec2"}


def iam_prefix(service_model: Any) -> str:
    prefix = str(service_model.signing_name or service_model.endpoint_prefix)
    return _SERVICE_PREFIX.get(prefix, prefix)


def access_denied(client: Any, operation: str, principal: Principal, access: Access, decision: Decision) -> Exception:
    """The exception the service raises for a denied call (code and message as AWS words them)."""
    service_model = client.meta.service_model
    prefix = iam_prefix(service_model)
    display = access.action
    if prefix == "sns":
        code, status = "AuthorizationError", 403
        display = "SNS:" + access.action.split(":", 1)[1]
    elif service_model.protocol in _QUERY_PROTOCOLS:
        code, status = "AccessDenied", 403
    else:
        code, status = "AccessDeniedException", 400
    message = denial_message(principal.arn, access.action, access.resource, decision, display=display)
    metadata = {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())}
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}
    return client.exceptions.from_code(code)(response, operation)  # type: ignore[no-any-return]


# -- principals and credentials -----------------------------------------------------------------------------------
class Authorizer:
    """The account's roles with their policies, the credentials issued to them, and the per-call check."""

    def __init__(self, region: str, account: str) -> None:
        self.region = region
        self.account = account
        self.enforce = True
        self._admin: boto3.Session | None = None
        self.lookup = Lookup(region, account, lambda: self.admin)
        self._policies: dict[str, list[Policy]] = {}
        self._boundaries: dict[str, Policy | None] = {}
        self._keys: dict[str, Principal] = {}
        self._issued: dict[tuple[str, str], Credentials] = {}
        self._sessions: dict[str, boto3.Session] = {}
        self._integration_clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._caller = threading.local()
        # The latest authorizations: (role ARN, action, resource, decision), for tests and audits.
        self.decisions: deque[tuple[str, str, str, Decision]] = deque(maxlen=10_000)

    @property
    def admin(self) -> boto3.Session:
        """The harness's session (created on first use: after moto is imported, so its clients are mocked)."""
        if self._admin is None:
            self._admin = new_session(
                aws_access_key_id=HARNESS_ACCESS_KEY,
                aws_secret_access_key=HARNESS_ACCESS_KEY,
                aws_session_token=HARNESS_ACCESS_KEY,
                region_name=self.region,
            )
        return self._admin

    # roles ---------------------------------------------------------------------------------------------------------
    def set_role_policies(
        self, role_arn: str, inline: Mapping[str, Mapping[str, Any]], managed_arns: list[str]
    ) -> None:
        """The policies ``role_arn`` has: inline documents by name plus AWS managed policy ARNs."""
        policies = [Policy.parse(name, doc) for name, doc in inline.items()]
        policies += [Policy.parse(arn, managed_policy(arn)) for arn in managed_arns]
        self._policies[role_arn] = policies

    def add_role_policy(self, role_arn: str, name: str, document: Mapping[str, Any]) -> None:
        self._policies.setdefault(role_arn, []).append(Policy.parse(name, document))

    def remove_action(self, role_arn: str, action: str) -> None:
        """Test helper: drop one action from every Allow statement of the role (as editing the template would)."""
        from dataclasses import replace  # noqa: PLC0415

        updated = []
        for policy in self._policies.get(role_arn, []):
            statements = tuple(
                replace(s, actions=tuple(a for a in s.actions if a.lower() != action.lower()))
                for s in policy.statements
            )
            updated.append(Policy(policy.name, tuple(s for s in statements if s.actions or s.not_actions)))
        self._policies[role_arn] = updated

    def policies(self, role_arn: str) -> list[Policy]:
        """The role's policies: as the template gave them, else as IAM holds them (a role made by a test)."""
        known = self._policies.get(role_arn)
        if known is not None:
            return list(known)
        iam = self.admin.client("iam", region_name=self.region)
        name = role_arn.rsplit("/", 1)[-1]
        try:
            inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        except iam.exceptions.NoSuchEntityException:
            raise UnmappedOperationError(f"role {role_arn} does not exist in IAM") from None
        policies = [Policy.parse(p, iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]) for p in inline]
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        policies.extend(self._managed(str(a["PolicyArn"])) for a in attached)
        return policies

    def user_policies(self, user_arn: str) -> list[Policy]:
        """An IAM user's policies as IAM holds them (inline and attached)."""
        iam = self.admin.client("iam", region_name=self.region)
        name = user_arn.rsplit("/", 1)[-1]
        inline = iam.list_user_policies(UserName=name)["PolicyNames"]
        policies = [Policy.parse(p, iam.get_user_policy(UserName=name, PolicyName=p)["PolicyDocument"]) for p in inline]
        attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        policies.extend(self._managed(str(a["PolicyArn"])) for a in attached)
        return policies

    def _managed(self, arn: str) -> Policy:
        if ":iam::aws:policy/" in arn:
            return Policy.parse(arn, managed_policy(arn))
        iam = self.admin.client("iam", region_name=self.region)
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return Policy.parse(arn, iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])

    def identity_policies(self, principal_arn: str) -> list[Policy]:
        """The identity-based policies of an authenticated caller: a role's session, a role, or an IAM user."""
        parts = principal_arn.split(":", 5)
        resource = parts[5] if len(parts) == 6 else ""
        if resource.startswith("assumed-role/"):
            name = resource.split("/")[1]
            iam = self.admin.client("iam", region_name=self.region)
            try:
                role_arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
            except iam.exceptions.NoSuchEntityException:
                return []
            return self.policies(role_arn)
        if resource.startswith("user/"):
            return self.user_policies(principal_arn)
        return self.policies(principal_arn)

    def may_invoke_function_url(self, caller: Any, function_arn: str) -> bool:
        """``lambda:InvokeFunctionUrl`` for an authenticated function URL caller (``AuthType: AWS_IAM``).

        https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html - in the function's account, the caller needs the
        permission in an identity-based policy or in the function's resource-based policy; an explicit deny in
        either wins. ``lambda:FunctionUrlAuthType`` is ``AWS_IAM`` in the request context.
        """
        if not self.enforce:
            return True
        principal_arn = str(caller.user_arn)
        action, context = "lambda:InvokeFunctionUrl", {"lambda:FunctionUrlAuthType": ["AWS_IAM"]}
        identity = evaluate(self.identity_policies(principal_arn), action, function_arn, context)
        resource = evaluate(self._function_policy(function_arn, principal_arn), action, function_arn, context)
        decision: Decision = (
            "ExplicitDeny"
            if "ExplicitDeny" in (identity, resource)
            else ("Allow" if "Allow" in (identity, resource) else "ImplicitDeny")
        )
        with self._lock:
            self.decisions.append((principal_arn, action, function_arn, decision))
        return decision == "Allow"

    def _function_policy(self, function_arn: str, principal_arn: str) -> list[Policy]:
        """The statements of the function's resource policy that name this caller (its role, itself, or ``*``)."""
        client = self.admin.client("lambda", region_name=self.region)
        try:
            document = json.loads(client.get_policy(FunctionName=function_arn)["Policy"])
        except client.exceptions.ResourceNotFoundException:
            return []
        account_root = {f"arn:aws:iam::{self.account}:root", self.account}
        names = {principal_arn, "*", *account_root}
        if ":assumed-role/" in principal_arn:
            role = principal_arn.split(":assumed-role/")[1].split("/", maxsplit=1)[0]
            names.add(f"arn:aws:iam::{self.account}:role/{role}")
        statements = []
        for index, raw in enumerate(_as_list(document.get("Statement"))):
            named = raw.get("Principal")
            listed = {str(n) for n in _as_list(named.get("AWS") if isinstance(named, Mapping) else named)}
            if listed & names:
                body = {k: v for k, v in raw.items() if k not in {"Principal", "NotPrincipal", "Sid"}}
                statements.append(Statement.parse(body, f"function policy {function_arn} statement {index}"))
        return [Policy("function policy", tuple(statements))] if statements else []

    def boundary(self, role_arn: str) -> Policy | None:
        """The role's permissions boundary as IAM holds it (None: no boundary, or a role IAM does not hold)."""
        with self._lock:
            if role_arn in self._boundaries:
                return self._boundaries[role_arn]
        iam = self.admin.client("iam", region_name=self.region)
        try:
            role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except iam.exceptions.NoSuchEntityException:
            return None
        arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        policy = self._managed(str(arn)) if arn else None
        with self._lock:
            self._boundaries[role_arn] = policy
        return policy

    def decide(self, principal: Principal, access: Access) -> Decision:
        """IAM's decision for one access by ``principal`` (a role session): identity policies (KMS: with the key
        policy), capped by the role's permissions boundary. Recorded in :attr:`decisions`."""
        global_keys = {
            # Global condition keys every request carries (https://docs.aws.amazon.com/IAM/latest/UserGuide/
            # reference_policies_condition-keys.html): who calls, from which account, over TLS, to which region.
            "aws:PrincipalArn": [principal.role_arn],
            "aws:PrincipalAccount": [self.account],
            "aws:PrincipalType": ["AssumedRole"],
            "aws:SecureTransport": ["true"],
            "aws:RequestedRegion": [self.region],
        }
        access = Access(access.action, access.resource, {**global_keys, **access.context})
        policies = self.policies(principal.role_arn)
        if access.action.startswith("kms:") and ":key/" in access.resource:
            decision = self._kms_decision(principal, policies, access)
        else:
            decision = evaluate(policies, access.action, access.resource, access.context)
        decision = bounded(decision, self.boundary(principal.role_arn), access.action, access.resource, access.context)
        self.decisions.append((principal.role_arn, access.action, access.resource, decision))
        return decision

    # credentials ---------------------------------------------------------------------------------------------------
    def credentials(self, role_arn: str, session_name: str) -> Credentials:
        """Credentials of ``role_arn`` (moto STS AssumeRole), cached per role and session name."""
        with self._lock:
            cached = self._issued.get((role_arn, session_name))
            if cached is not None:
                return cached
        issued = self.admin.client("sts", region_name=self.region).assume_role(
            RoleArn=role_arn, RoleSessionName=session_name[:64]
        )
        role_name = role_arn.rsplit("/", 1)[-1]
        principal = Principal(f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session_name[:64]}", role_arn)
        raw = issued["Credentials"]
        creds = Credentials(raw["AccessKeyId"], raw["SecretAccessKey"], raw["SessionToken"], principal)
        with self._lock:
            self._issued[(role_arn, session_name)] = creds
            self._keys[creds.access_key_id] = principal
        return creds

    def session(self, creds: Credentials) -> boto3.Session:
        with self._lock:
            session = self._sessions.get(creds.access_key_id)
            if session is None:
                session = new_session(
                    aws_access_key_id=creds.access_key_id,
                    aws_secret_access_key=creds.secret_access_key,
                    aws_session_token=creds.session_token,
                    region_name=self.region,
                )
                self._sessions[creds.access_key_id] = session
            return session

    def caller_arn(self, access_key_id: str) -> str | None:
        """What STS GetCallerIdentity returns for the key (None: a key STS does not know)."""
        if access_key_id == HARNESS_ACCESS_KEY:
            return _HARNESS_ARN.format(account=self.account)
        principal = self._keys.get(access_key_id)
        return principal.arn if principal else None

    def integration_client(self, region: str, service: str, role_arn: str) -> Any:
        """The client a state machine's service integration uses: signed with the execution role's credentials."""
        from botocore.config import Config  # noqa: PLC0415

        key = (region, service, role_arn)
        with self._lock:
            client = self._integration_clients.get(key)
        if client is None:  # one per role and service, as Step Functions keeps its own (a client is ~10 ms of CPU)
            creds = self.credentials(role_arn, "StepFunctions")
            config = Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1})
            client = self.session(creds).client(service, region_name=region, config=config)  # type: ignore[call-overload]
            with self._lock:
                client = self._integration_clients.setdefault(key, client)
        return client

    # the check -----------------------------------------------------------------------------------------------------
    def principal_for(self, access_key_id: str | None) -> Principal | None:
        """None for the harness (administrator); raises for a key nobody issued."""
        if access_key_id in (None, HARNESS_ACCESS_KEY):
            return None
        principal = self._keys.get(access_key_id)
        if principal is None:
            raise UnmappedOperationError(f"access key {access_key_id} was not issued by the local cloud")
        return principal

    def _kms_decision(self, principal: Principal, policies: list[Policy], access: Access) -> Decision:
        """KMS: the key policy decides; a statement for the account root delegates to the principal's IAM policies.

        https://docs.aws.amazon.com/kms/latest/developerguide/control-access.html - a key policy statement naming
        the role (or its session) allows by itself; one naming the account (``root``) allows when IAM does too.
        Statements naming other principals or services do not apply to this caller.
        """
        kms = self.lookup.client("kms")
        try:
            policy = kms.get_key_policy(KeyId=access.resource, PolicyName="default")["Policy"]
        except kms.exceptions.NotFoundException:
            return "ImplicitDeny"
        # moto keeps the KeyPolicy of a key CloudFormation created as the template's object (GetKeyPolicy answers
        # it unserialised); KMS always stores and returns the JSON text.
        document = json.loads(policy) if isinstance(policy, str) else dict(policy)
        root = {f"arn:aws:iam::{self.account}:root", self.account}
        direct, delegated = [], []
        for index, raw in enumerate(_as_list(document.get("Statement"))):
            names = {
                str(n)
                for n in _as_list(
                    (raw.get("Principal") or {}).get("AWS")
                    if isinstance(raw.get("Principal"), Mapping)
                    else raw.get("Principal")
                )
            }
            body = {k: v for k, v in raw.items() if k not in {"Principal", "NotPrincipal"}}
            statement = Statement.parse(body, f"key policy {access.resource} statement {index}")
            if names & {principal.role_arn, principal.arn, "*"}:
                direct.append(statement)
            elif names & root:
                delegated.append(statement)

        def decide(statements: list[Statement]) -> Decision:
            return evaluate([Policy("key policy", tuple(statements))], access.action, access.resource, access.context)

        identity = evaluate(policies, access.action, access.resource, access.context)
        if decide(direct + delegated) == "ExplicitDeny" or identity == "ExplicitDeny":
            return "ExplicitDeny"
        if decide(direct) == "Allow":  # the key policy names this role: enough by itself
            return "Allow"
        if decide(delegated) == "Allow":  # the key policy delegates to the account's IAM policies
            return identity
        return "ImplicitDeny"

    def authorize(self, client: Any, operation: str, params: Mapping[str, Any]) -> None:
        if not self.enforce:
            return
        credentials = client._request_signer._credentials
        principal = self.principal_for(credentials.access_key if credentials is not None else None)
        self._caller.principal = principal
        if principal is None:
            return
        prefix = iam_prefix(client.meta.service_model)
        mapper = OPERATIONS.get((prefix, operation))
        if mapper is None:
            raise UnmappedOperationError(
                f"{principal.arn} called {prefix}:{operation}, which local.aws.authz.OPERATIONS does not map to IAM "
                "actions and resources: add it to the table"
            )
        self._caller.principal = principal  # CloudFormation without a service role acts as its caller
        for access in mapper(params, self.lookup):
            decision = self.decide(principal, access)
            if decision != "Allow":
                raise access_denied(client, operation, principal, access, decision)

    def caller(self) -> Principal | None:
        """The principal of this thread's latest authorized call (None: the harness)."""
        return getattr(self._caller, "principal", None)


__all__ = [
    "OPERATIONS",
    "Access",
    "Authorizer",
    "Credentials",
    "Principal",
    "UnmappedOperationError",
    "access_denied",
]


# -- installation -------------------------------------------------------------------------------------------------
class SessionRouter:
    """Stands in for ``boto3.DEFAULT_SESSION``: the invoking thread's role session during a Lambda call, else the
    harness's session (so ``boto3.client(...)`` in a handler carries its role, and in a test the harness's key)."""

    def __init__(self, base: Callable[[], boto3.Session]) -> None:
        self._base = base
        self._local = threading.local()

    @property
    def current(self) -> boto3.Session:
        return getattr(self._local, "session", None) or self._base()

    @contextmanager
    def use(self, session: boto3.Session) -> Iterator[None]:
        previous = getattr(self._local, "session", None)
        self._local.session = session
        try:
            yield
        finally:
            self._local.session = previous

    def client(self, *args: Any, **kwargs: Any) -> Any:
        return self.current.client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        return self.current.resource(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


AfterCall = Callable[[str, str, Mapping[str, Any], Any], None]


@contextmanager
def installed(authorizer: Authorizer, router: SessionRouter, after_call: AfterCall) -> Iterator[None]:
    """Patch ``BaseClient._make_api_call`` (authorize, refuse what AWS refuses outright (``local.aws.limits``), call,
    then ``after_call(prefix, op, params, result)``) and make the router boto3's default session, for the duration of
    the ``with`` block."""
    from unittest import mock  # noqa: PLC0415

    from botocore.client import BaseClient  # noqa: PLC0415

    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def make_api_call(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
        authorizer.authorize(self, operation_name, api_params)
        service = iam_prefix(self.meta.service_model)
        try:
            check_request(service, operation_name, api_params, authorizer.lookup.client)
        except RequestRejected as rejected:
            raise rejected.client_error(self, operation_name) from None
        result = original(self, operation_name, api_params)
        after_call(service, operation_name, api_params, result)
        return result

    previous = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = router  # type: ignore[assignment]
    try:
        with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
            yield
    finally:
        boto3.DEFAULT_SESSION = previous


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
