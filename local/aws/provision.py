"""Creating a SAM template's resources in moto, one supported resource type at a time.

:data:`SUPPORTED_TYPES` is the explicit table of what the harness can create; any other type (and any SAM event
source other than EventBridgeRule, Schedule and ScheduleV2) raises :class:`UnsupportedResourceError` naming the
logical id and type. Physical names, when the template does not set one, are ``<StackName>-<LogicalId>`` (CloudFormation
appends a random suffix; tests want stable names), except SAM ScheduleV2 schedules, named ``<Owner><EventId>``
as SAM does.

Layers are "mounted" the way Lambda mounts them under ``/opt``: a function environment variable whose value is
``/opt`` or starts with ``/opt/`` is given to the in-process handler resolved against the content directories of the
function's layers (:func:`resolve_opt_path`); moto keeps the template's value, as ``GetFunctionConfiguration`` on AWS
would show it.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.aws.function_urls import Authorize, FunctionUrl
from local.aws.lambdas import FunctionSpec, LambdaRuntime
from local.aws.template import GLOBALS_SECTION, Resolver, TemplateError

_LEFTOVER_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_OPT = "/opt"
_ASSUME_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "{service}"}, "Action": "sts:AssumeRole"}],
}


class UnsupportedResourceError(TemplateError):
    """The template declares a resource type (or event source) the harness cannot create."""

    def __init__(self, logical_id: str, resource_type: str) -> None:
        super().__init__(f"{logical_id}: resource type {resource_type} is not supported by local.aws")
        self.logical_id = logical_id
        self.resource_type = resource_type


@dataclass
class Resource:
    """A created resource: what ``Ref`` and ``Fn::GetAtt`` return, and its resolved properties."""

    logical_id: str
    type: str
    ref: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    recorded_only: bool = False


@dataclass(frozen=True)
class EventSource:
    """A rule or schedule created from a SAM ``Events`` entry (or a standalone Events::Rule / Scheduler::Schedule)."""

    logical_id: str
    kind: str  # "rule" | "schedule"
    name: str
    target_arn: str
    bus_or_group: str = "default"


def _client(service: str, region: str) -> Any:
    # Typed as Any on purpose: properties flow from template dicts straight into the API calls.
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs in-process from the template's CodeUri")
    return buffer.getvalue()


@dataclass(frozen=True)
class LayerMount:
    """Where a layer's ``ContentUri`` directory appears in a function's ``/opt``.

    A layer built by SAM as Python (``Metadata.BuildMethod: python*``) has its ContentUri packaged under ``python/``,
    so it appears at ``/opt/python``; a layer without BuildMethod (the directory is zipped as is) at ``/opt``. A
    ``makefile`` layer has no mount: its Makefile decides what it holds.
    """

    content_dir: Path
    mount_point: str = _OPT


def resolve_opt_path(value: str, mounts: list[LayerMount]) -> str:
    """The local path behind ``value`` if it is ``/opt`` or under it and one of ``mounts`` holds it, else ``value``.

    Lambda extracts a function's layers into ``/opt`` in the order the function lists them, so a later layer's file
    shadows an earlier one's: the last mount in which the path exists wins. A directory present in several layers
    resolves to the last one only (no merged view). A path no layer holds is returned unchanged, as on AWS it would
    not exist either.
    """
    if value != _OPT and not value.startswith(_OPT + "/"):
        return value
    for mount in reversed(mounts):
        if value != mount.mount_point and not value.startswith(mount.mount_point.rstrip("/") + "/"):
            continue
        relative = value[len(mount.mount_point) :].lstrip("/")
        candidate = mount.content_dir / relative if relative else mount.content_dir
        if candidate.exists():
            return str(candidate)
    return value


def _truthy(value: Any) -> bool:
    """A CloudFormation boolean: ``true``/``"true"`` (any case) is true."""
    return value is True or str(value).lower() == "true"


def merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals merge: maps merge key by key, lists concatenate (globals first), scalars from the resource win."""
    merged: dict[str, Any] = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = merge_globals(merged[key], value)
        elif key in merged and isinstance(merged[key], list) and isinstance(value, list):
            merged[key] = merged[key] + list(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_CREATORS: dict[str, str] = {
    "AWS::Serverless::Function": "_function",
    "AWS::Serverless::LayerVersion": "_layer",
    "AWS::Serverless::StateMachine": "_state_machine",
    "AWS::Serverless::SimpleTable": "_simple_table",
    "AWS::DynamoDB::Table": "_table",
    "AWS::SNS::Topic": "_topic",
    "AWS::SNS::Subscription": "_subscription",
    "AWS::SQS::Queue": "_queue",
    "AWS::Events::Rule": "_rule",
    "AWS::Events::EventBus": "_event_bus",
    "AWS::Scheduler::Schedule": "_schedule",
    "AWS::Scheduler::ScheduleGroup": "_schedule_group",
    "AWS::CloudWatch::Alarm": "_alarm",
    "AWS::IAM::Role": "_role",
    "AWS::IAM::ManagedPolicy": "_managed_policy",
    "AWS::Logs::LogGroup": "_log_group",
    "AWS::S3::Bucket": "_bucket",
    "AWS::S3::BucketPolicy": "_bucket_policy",
    "AWS::ECR::Repository": "_ecr_repository",
    "AWS::SSM::Parameter": "_ssm_parameter",
    "AWS::KMS::Key": "_kms_key",
    "AWS::KMS::Alias": "_kms_alias",
    "AWS::IAM::Policy": "_recorded",
    "AWS::Lambda::Permission": "_recorded",
    "AWS::SNS::TopicPolicy": "_recorded",
    "AWS::SQS::QueuePolicy": "_queue_policy",
}
"""Resource type → Provisioner method. The ``_recorded`` types are accepted and recorded; nothing is created."""

SUPPORTED_TYPES: frozenset[str] = frozenset(_CREATORS)


class Provisioner:
    """Creates resources in moto and records what ``Ref``/``GetAtt`` of each returns."""

    def __init__(
        self,
        *,
        resolver: Resolver,
        template_dir: Path,
        runtime: LambdaRuntime,
        globals_: Mapping[str, Any],
        authorize_url: Authorize | None = None,
    ) -> None:
        self.resolver = resolver
        self.authorize_url = authorize_url  # who may call a function URL (the cloud's IAM decides)
        self.template_dir = template_dir
        self.runtime = runtime
        self.globals = globals_
        self.region = resolver.pseudo.region
        self.account = resolver.pseudo.account_id
        self.stack = resolver.pseudo.stack_name
        self.partition = resolver.pseudo.partition
        self.event_sources: list[EventSource] = []
        self.layer_paths: list[Path] = []
        self.layer_mounts: dict[str, LayerMount] = {}  # layer version ARN -> mount
        self.function_urls: list[FunctionUrl] = []  # loopback endpoints, closed with the cloud
        self._metadata: dict[str, Any] = {}  # the resource being created's Metadata section
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        """One client per service for this template's provisioning (making a client costs ~8 ms; a template makes
        ~170 calls)."""
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = _client(service, self.region)
        return client

    # -- entry point ------------------------------------------------------------------------------------------------
    def create(self, logical_id: str, body: Mapping[str, Any]) -> Resource:
        kind = str(body.get("Type"))
        method = _CREATORS.get(kind)
        if method is None:
            raise UnsupportedResourceError(logical_id, kind)
        creator: Callable[[str, dict[str, Any]], Resource] = getattr(self, method)
        raw = dict(body.get("Properties") or {})
        global_section = GLOBALS_SECTION.get(kind)
        if global_section:
            raw = merge_globals(self.globals.get(global_section) or {}, raw)
        props = self.resolver.resolve(raw)
        self._metadata = dict(body.get("Metadata") or {})
        resource = creator(logical_id, props)
        resource.type = kind
        resource.properties = props
        self.resolver.refs[logical_id] = resource.ref
        self.resolver.attrs[logical_id] = resource.attrs
        return resource

    def _name(self, logical_id: str, explicit: Any = None, *, limit: int = 64, lower: bool = False) -> str:
        name = str(explicit) if explicit else f"{self.stack}-{logical_id}"[:limit]
        return name.lower() if lower and not explicit else name

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = f"{self.region if region else ''}:{self.account if account else ''}"
        return f"arn:{self.partition}:{service}:{where}:{resource}"

    def _service_role(self, logical_id: str, service: str) -> str:
        name = f"{self.stack}-{logical_id}-Role"[:64]
        policy = json.dumps(_ASSUME_ROLE).replace("{service}", service)
        iam = self._client("iam")
        try:
            return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy)["Role"]["Arn"])
        except iam.exceptions.EntityAlreadyExistsException:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])

    def _path(self, logical_id: str, value: Any, prop: str) -> Path:
        if not isinstance(value, str):
            raise TemplateError(f"{logical_id}: {prop} must be a local path for the harness, got {value!r}")
        path = (self.template_dir / value).resolve()
        if not path.exists():
            raise TemplateError(f"{logical_id}: {prop} {path} does not exist")
        return path

    # -- Lambda -----------------------------------------------------------------------------------------------------
    def _function(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("FunctionName"))
        code_dir = self._path(logical_id, props.get("CodeUri"), "CodeUri")
        handler = str(props.get("Handler", ""))
        variables = {k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}
        mounts = [self.layer_mounts[str(arn)] for arn in props.get("Layers") or [] if str(arn) in self.layer_mounts]
        role = props.get("Role") or self._service_role(logical_id, "lambda.amazonaws.com")
        memory, timeout = int(props.get("MemorySize", 128)), int(props.get("Timeout", 3))
        response = self._client("lambda").create_function(
            FunctionName=name,
            Runtime=str(props.get("Runtime", "python3.13")),
            Role=role,
            Handler=handler,
            Code={"ZipFile": _dummy_zip()},
            Environment={"Variables": variables},
            MemorySize=memory,
            Timeout=timeout,
            Architectures=list(props.get("Architectures", ["x86_64"])),
        )
        arn = str(response["FunctionArn"])
        self.runtime.register(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                arn=arn,
                code_dir=code_dir,
                handler=handler,
                environment={key: resolve_opt_path(value, mounts) for key, value in variables.items()},
                memory_mb=memory,
                timeout_s=timeout,
                region=self.region,
                role_arn=str(role),
            )
        )
        self._event_sources(logical_id, arn, props.get("Events") or {})
        if props.get("FunctionUrlConfig"):
            self._function_url(logical_id, name, arn, dict(props["FunctionUrlConfig"]))
        return Resource(logical_id, "AWS::Serverless::Function", name, {"Arn": arn})

    def close_function_urls(self) -> None:
        for url in self.function_urls:
            url.close()

    def _function_url(self, logical_id: str, name: str, arn: str, config: dict[str, Any]) -> None:
        """SAM's ``FunctionUrlConfig``: moto's URL config, and the loopback endpoint that authenticates callers.

        ``GetAtt <Function>Url.FunctionUrl`` (the resource SAM generates) is the loopback URL.
        """
        auth_type = str(config.get("AuthType", ""))
        self._client("lambda").create_function_url_config(FunctionName=name, AuthType=auth_type)

        def invoke(function_arn: str, payload: bytes) -> tuple[bytes, str | None]:
            result = self.runtime.invoke(function_arn, payload)
            return result.payload, result.function_error

        url = FunctionUrl(
            function_arn=arn,
            auth_type=auth_type,
            region=self.region,
            account_id=self.account,
            invoke=invoke,
            authorize=self.authorize_url,
        )
        self.function_urls.append(url)
        self.resolver.refs[f"{logical_id}Url"] = arn
        self.resolver.attrs[f"{logical_id}Url"] = {"FunctionUrl": url.url, "FunctionArn": arn}

    def _layer(self, logical_id: str, props: dict[str, Any]) -> Resource:
        path = self._path(logical_id, props.get("ContentUri"), "ContentUri")
        self.layer_paths.append(path)
        name = str(props.get("LayerName") or logical_id)
        response = self._client("lambda").publish_layer_version(
            LayerName=name, Content={"ZipFile": _dummy_zip()}, CompatibleRuntimes=props.get("CompatibleRuntimes", [])
        )
        arn = str(response["LayerVersionArn"])
        build_method = str(self._metadata.get("BuildMethod") or "")
        # A makefile-built layer is what its Makefile writes (ControlPlaneLayer: python/, compiled), which the
        # harness does not run: /opt paths into it resolve to nothing rather than to a guessed layout.
        if build_method != "makefile":
            python_build = build_method.startswith("python")
            self.layer_mounts[arn] = LayerMount(path, f"{_OPT}/python" if python_build else _OPT)
        return Resource(logical_id, "AWS::Serverless::LayerVersion", arn, {"Arn": arn})

    # -- Step Functions ---------------------------------------------------------------------------------------------
    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("Name"), limit=80)
        if "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            definition = self._path(logical_id, props.get("DefinitionUri"), "DefinitionUri").read_text(encoding="utf-8")
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = sorted(set(_LEFTOVER_SUBSTITUTION.findall(definition)))
        if leftover:
            raise TemplateError(f"{logical_id}: DefinitionSubstitutions missing for {leftover}")
        json.loads(definition)  # a substitution that broke the JSON fails here, naming nothing secret
        role = props.get("Role") or self._service_role(logical_id, "states.amazonaws.com")
        response = self._client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=role, type=str(props.get("Type", "STANDARD"))
        )
        arn = str(response["stateMachineArn"])
        self._event_sources(logical_id, arn, props.get("Events") or {})
        return Resource(logical_id, "AWS::Serverless::StateMachine", arn, {"Arn": arn, "Name": name})

    def _event_sources(self, owner: str, target_arn: str, events: Mapping[str, Any]) -> None:
        # As the SAM transform does: a rule targeting a state machine, and every ScheduleV2, gets its own role
        # (<Owner><EventId>Role, with states:StartExecution / lambda:InvokeFunction on the target); a rule targeting
        # a function has none (the function's resource policy lets EventBridge invoke it).
        for event_id, event in events.items():
            kind = str(event.get("Type"))
            props = event.get("Properties") or {}
            generated = f"{owner}{event_id}"
            target: dict[str, Any] = {"Id": (props.get("Target") or {}).get("Id") or f"{generated}Target"}
            target["Arn"] = target_arn
            if kind in {"EventBridgeRule", "CloudWatchEvent", "Schedule"}:
                if target_arn.split(":")[2] != "lambda":
                    target["RoleArn"] = self._service_role(generated, "events.amazonaws.com")
                for key in ("Input", "InputPath", "InputTransformer", "RetryPolicy"):
                    if key in props:
                        target[key] = props[key]
                if kind != "Schedule" and (props.get("DeadLetterConfig") or {}).get("Arn"):
                    target["DeadLetterConfig"] = {"Arn": props["DeadLetterConfig"]["Arn"]}
                elif props.get("DeadLetterConfig"):
                    raise UnsupportedResourceError(f"{owner}.Events.{event_id}", "DeadLetterConfig without an Arn")
                rule: dict[str, Any] = {"Name": props.get("RuleName") or props.get("Name") or self._name(generated)}
                if kind == "Schedule":
                    rule["ScheduleExpression"] = props["Schedule"]
                    enabled = props.get("Enabled", True)
                    rule["State"] = props.get("State") or ("ENABLED" if enabled else "DISABLED")
                else:
                    rule["EventPattern"] = props["Pattern"]
                    rule["State"] = props.get("State", "ENABLED")
                if props.get("EventBusName"):
                    rule["EventBusName"] = props["EventBusName"]
                rule["Targets"] = [target]
                made = self._put_rule(generated, rule)
                # As SAM names it: Fn::GetAtt <Owner><EventId>.Arn (a dead-letter queue's policy names the rule)
                self.resolver.refs[generated] = made.ref
                self.resolver.attrs[generated] = made.attrs
            elif kind == "ScheduleV2":
                schedule = {
                    "Name": props.get("Name") or generated,
                    "ScheduleExpression": props["ScheduleExpression"],
                    "FlexibleTimeWindow": props.get("FlexibleTimeWindow") or {"Mode": "OFF"},
                    "State": props.get("State", "ENABLED"),
                    "Target": {
                        "Arn": target_arn,
                        "RoleArn": props.get("RoleArn") or self._service_role(generated, "scheduler.amazonaws.com"),
                    },
                }
                if "Input" in props:
                    schedule["Target"]["Input"] = props["Input"]
                for key in ("GroupName", "ScheduleExpressionTimezone", "Description"):
                    if key in props:
                        schedule[key] = props[key]
                self._create_schedule(generated, schedule)
            else:
                raise UnsupportedResourceError(f"{owner}.Events.{event_id}", f"SAM event source {kind}")

    # -- EventBridge and Scheduler ----------------------------------------------------------------------------------
    def _put_rule(self, logical_id: str, props: Mapping[str, Any]) -> Resource:
        events = self._client("events")
        name = self._name(logical_id, props.get("Name"))
        bus = str(props.get("EventBusName") or "default")
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": props.get("State", "ENABLED")}
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in props:
            args["ScheduleExpression"] = props["ScheduleExpression"]
        arn = str(events.put_rule(**args)["RuleArn"])
        targets = [dict(t) for t in props.get("Targets", [])]
        for target in targets:
            if isinstance(target.get("Input"), dict):
                target["Input"] = json.dumps(target["Input"])
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        for target in targets:
            self.event_sources.append(EventSource(logical_id, "rule", name, str(target["Arn"]), bus))
        return Resource(logical_id, "AWS::Events::Rule", name, {"Arn": arn})

    def _rule(self, logical_id: str, props: dict[str, Any]) -> Resource:
        return self._put_rule(logical_id, props)

    def _event_bus(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = str(props["Name"])
        arn = str(self._client("events").create_event_bus(Name=name)["EventBusArn"])
        return Resource(logical_id, "AWS::Events::EventBus", name, {"Arn": arn, "Name": name})

    def _create_schedule(self, logical_id: str, props: Mapping[str, Any]) -> Resource:
        args = dict(props)
        args["Name"] = self._name(logical_id, props.get("Name"))
        target = dict(args["Target"])
        if isinstance(target.get("Input"), dict):
            target["Input"] = json.dumps(target["Input"])
        args["Target"] = target
        args.setdefault("FlexibleTimeWindow", {"Mode": "OFF"})
        arn = str(self._client("scheduler").create_schedule(**args)["ScheduleArn"])
        group = str(args.get("GroupName") or "default")
        self.event_sources.append(EventSource(logical_id, "schedule", args["Name"], str(target["Arn"]), group))
        return Resource(logical_id, "AWS::Scheduler::Schedule", args["Name"], {"Arn": arn})

    def _schedule(self, logical_id: str, props: dict[str, Any]) -> Resource:
        return self._create_schedule(logical_id, props)

    def _schedule_group(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("Name"))
        arn = str(self._client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"])
        return Resource(logical_id, "AWS::Scheduler::ScheduleGroup", name, {"Arn": arn})

    # -- data and messaging -----------------------------------------------------------------------------------------
    def _table(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("TableName"), limit=255)
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
        }
        if props.get("ProvisionedThroughput"):
            args["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
        else:
            args["BillingMode"] = "PAY_PER_REQUEST"
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification", "Tags"):
            if props.get(key):
                args[key] = props[key]
        if "StreamSpecification" in args:
            args["StreamSpecification"] = {"StreamEnabled": True, **args["StreamSpecification"]}
        dynamodb = self._client("dynamodb")
        table = dynamodb.create_table(**args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
        attrs = {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn")}
        return Resource(logical_id, "AWS::DynamoDB::Table", name, attrs)

    def _simple_table(self, logical_id: str, props: dict[str, Any]) -> Resource:
        key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kind = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
        table = {
            "TableName": props.get("TableName"),
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
            "ProvisionedThroughput": props.get("ProvisionedThroughput"),
        }
        resource = self._table(logical_id, table)
        resource.type = "AWS::Serverless::SimpleTable"
        return resource

    def _topic(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("TopicName"), limit=256)
        sns = self._client("sns")
        attributes = {key: str(props[key]) for key in ("DisplayName", "KmsMasterKeyId") if props.get(key)}
        arn = str(sns.create_topic(Name=name, Attributes=attributes)["TopicArn"])
        for subscription in props.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return Resource(logical_id, "AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name})

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> Resource:
        response = self._client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            ReturnSubscriptionArn=True,
        )
        return Resource(logical_id, "AWS::SNS::Subscription", str(response["SubscriptionArn"]))

    def _queue(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("QueueName"), limit=80)
        attributes = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "FifoQueue",
                "DelaySeconds",
                "SqsManagedSseEnabled",
            )
            if key in props
        }
        sqs = self._client("sqs")
        url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Resource(logical_id, "AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _queue_policy(self, logical_id: str, props: dict[str, Any]) -> Resource:
        """The policy becomes each queue's ``Policy`` attribute (what SQS, and EventBridge's dead-letter delivery,
        evaluate)."""
        sqs = self._client("sqs")
        document = props["PolicyDocument"]
        for url in props["Queues"]:
            sqs.set_queue_attributes(
                QueueUrl=str(url),
                Attributes={"Policy": document if isinstance(document, str) else json.dumps(document)},
            )
        return Resource(logical_id, "AWS::SQS::QueuePolicy", logical_id)

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("AlarmName"), limit=255)
        allowed = {
            "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions",
            "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
            "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
            "Metrics",
        }  # fmt: skip
        args = {k: v for k, v in props.items() if k in allowed}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in args:
                args[key] = int(args[key])
        if "Threshold" in args:
            args["Threshold"] = float(args["Threshold"])
        self._client("cloudwatch").put_metric_alarm(AlarmName=name, **args)
        return Resource(logical_id, "AWS::CloudWatch::Alarm", name, {"Arn": self._arn("cloudwatch", f"alarm:{name}")})

    # -- IAM, logs, storage -----------------------------------------------------------------------------------------
    def _role(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("RoleName"))
        iam = self._client("iam")
        boundary = {"PermissionsBoundary": props["PermissionsBoundary"]} if props.get("PermissionsBoundary") else {}
        role = iam.create_role(
            RoleName=name,
            Path=props.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {})),
            **boundary,
        )["Role"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        return Resource(logical_id, "AWS::IAM::Role", name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _managed_policy(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("ManagedPolicyName"), limit=128)
        iam = self._client("iam")
        arn = str(
            iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(props["PolicyDocument"]))["Policy"]["Arn"]
        )
        for role in props.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return Resource(logical_id, "AWS::IAM::ManagedPolicy", arn, {"PolicyArn": arn})

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("LogGroupName"), limit=512)
        logs = self._client("logs")
        logs.create_log_group(logGroupName=name)
        if props.get("RetentionInDays"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return Resource(logical_id, "AWS::Logs::LogGroup", name, {"Arn": self._arn("logs", f"log-group:{name}:*")})

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("BucketName"), limit=63, lower=True)
        self._client("s3").create_bucket(Bucket=name)
        attrs = {
            "Arn": f"arn:{self.partition}:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
        }
        return Resource(logical_id, "AWS::S3::Bucket", name, attrs)

    def _bucket_policy(self, logical_id: str, props: dict[str, Any]) -> Resource:
        bucket = str(props["Bucket"])
        document = props["PolicyDocument"]
        policy = document if isinstance(document, str) else json.dumps(document)
        self._client("s3").put_bucket_policy(Bucket=bucket, Policy=policy)
        return Resource(logical_id, "AWS::S3::BucketPolicy", bucket)

    def _ecr_repository(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("RepositoryName"), limit=256, lower=True)
        args: dict[str, Any] = {"repositoryName": name}
        if props.get("ImageTagMutability"):
            args["imageTagMutability"] = props["ImageTagMutability"]
        scanning = props.get("ImageScanningConfiguration")
        if scanning:
            args["imageScanningConfiguration"] = {"scanOnPush": bool(scanning.get("ScanOnPush"))}
        repo = self._client("ecr").create_repository(**args)["repository"]
        attrs = {"Arn": repo["repositoryArn"], "RepositoryUri": repo["repositoryUri"]}
        return Resource(logical_id, "AWS::ECR::Repository", name, attrs)

    def _ssm_parameter(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = self._name(logical_id, props.get("Name"), limit=2048)
        self._client("ssm").put_parameter(
            Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"), Overwrite=True
        )
        return Resource(logical_id, "AWS::SSM::Parameter", name, {"Type": props.get("Type", "String")})

    # -- KMS --------------------------------------------------------------------------------------------------------
    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> Resource:
        kms = self._client("kms")
        args: dict[str, Any] = {"KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT")}
        if props.get("KeySpec"):
            args["KeySpec"] = props["KeySpec"]
        if props.get("Description"):
            args["Description"] = props["Description"]
        if props.get("KeyPolicy"):
            policy = props["KeyPolicy"]
            args["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if props.get("MultiRegion") is not None:
            args["MultiRegion"] = bool(props["MultiRegion"])
        if props.get("Tags"):
            args["Tags"] = [{"TagKey": t["Key"], "TagValue": str(t["Value"])} for t in props["Tags"]]
        metadata = kms.create_key(**args)["KeyMetadata"]
        key_id = str(metadata["KeyId"])
        if _truthy(props.get("EnableKeyRotation", False)):
            kms.enable_key_rotation(KeyId=key_id)
        if not _truthy(props.get("Enabled", True)):
            kms.disable_key(KeyId=key_id)
        return Resource(logical_id, "AWS::KMS::Key", key_id, {"Arn": metadata["Arn"], "KeyId": key_id})

    def _kms_alias(self, logical_id: str, props: dict[str, Any]) -> Resource:
        name = str(props["AliasName"])
        self._client("kms").create_alias(AliasName=name, TargetKeyId=str(props["TargetKeyId"]))
        return Resource(logical_id, "AWS::KMS::Alias", name)

    def _recorded(self, logical_id: str, props: dict[str, Any]) -> Resource:
        del props
        return Resource(logical_id, "recorded", logical_id, recorded_only=True)
