"""Provisioning through change sets (and CreateStack for new data stacks): moto for create / skip / no changes /
templates by URL / protected data stacks; a scripted client for the states moto never reaches (CREATE_FAILED,
ROLLBACK_COMPLETE, UPDATE_ROLLBACK_COMPLETE)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from controlplane.aws.provision import Provisioner
from controlplane.errors import ConfigurationError, DeadlineExceededError, StackFailedError
from controlplane.models.provision import ProvisionRequest, ProvisionStatus, StackCatalog, StackPhase

from .conftest import REGION, TABLE

pytestmark = pytest.mark.integration

NOW = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)
STACK_ROLE = "arn:aws:iam::123456789012:role/sts-cloudformation"
BUCKET = "artifacts"

TOPIC = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ProjectName: {Type: String}
  Size: {Type: String, Default: "1"}
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub "${ProjectName}-${Environment}-topic"
Outputs:
  TopicArn: {Value: !Ref Topic}
"""

QUEUE = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  TopicArn: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Environment}-queue"
Outputs:
  QueueUrl: {Value: !Ref Queue}
  FromTopic: {Value: !Ref TopicArn}
"""

CATALOG = StackCatalog.model_validate(
    {
        "template_dir": "cloudformation",
        "stacks": [
            {"suffix": "topic", "template": "topic.yaml", "inputs": ["Size"]},
            {"suffix": "queue", "template": "queue.yaml", "wiring": {"TopicArn": "topic.TopicArn"}},
        ],
    }
)


class Overrides:
    """A real (moto) client with some methods replaced: moto has no UpdateTerminationProtection."""

    def __init__(self, client: Any, **methods: Callable[..., Any]) -> None:
        self._client = client
        self._methods = methods
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name in self._methods:

            def call(**kwargs: Any) -> Any:
                self.calls.append((name, kwargs))
                return self._methods[name](**kwargs)

            return call
        return getattr(self._client, name)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "cloudformation"
    folder.mkdir()
    (folder / "topic.yaml").write_text(TOPIC)
    (folder / "queue.yaml").write_text(QUEUE)
    return folder


def with_outputs(client: Any) -> Callable[..., Any]:
    """moto leaves Outputs empty on stacks made by change sets: fill ``!Ref`` outputs from resources/parameters."""

    def describe_stacks(**kwargs: Any) -> Any:
        response = client.describe_stacks(**kwargs)
        for stack in response["Stacks"]:
            if stack.get("Outputs") or not stack["StackStatus"].endswith("_COMPLETE"):
                continue
            body = client.get_template(StackName=stack["StackName"])["TemplateBody"]
            refs = dict(re.findall(r"^  (\w+): \{Value: !Ref (\w+)\}$", body, flags=re.MULTILINE))
            physical = {
                r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in client.describe_stack_resources(StackName=stack["StackName"])["StackResources"]
            }
            physical |= {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
            stack["Outputs"] = [{"OutputKey": k, "OutputValue": physical[v]} for k, v in refs.items()]
        return response

    return describe_stacks


def artifacts_bucket() -> str:
    s3 = boto3.client("s3", region_name=REGION)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def moto_provisioner(
    templates: Path, *, inputs: dict[str, str] | None = None, **kwargs: Any
) -> tuple[Provisioner, Overrides]:
    real = boto3.client("cloudformation", region_name=REGION)
    cfn = Overrides(real, update_termination_protection=lambda **_: {}, describe_stacks=with_outputs(real))
    provisioner = Provisioner(
        catalog=kwargs.pop("catalog", CATALOG),
        templates_dir=templates,
        project="sts",
        table_name=TABLE,
        inputs=inputs or {"Size": "1"},
        region=REGION,
        cfn=cfn,  # type: ignore[arg-type]
        artifacts_bucket=artifacts_bucket(),
        role_arn=STACK_ROLE,
        **kwargs,
    )
    return provisioner, cfn


def run(provisioner: Provisioner, release: str = "rel-1", *, max_calls: int = 20) -> Any:
    state = provisioner.start(ProvisionRequest(environment="staging", release_id=release), now=NOW, timeout_s=3600)
    for _ in range(max_calls):
        state = provisioner.advance(state, now=NOW)
        if state.status is ProvisionStatus.COMPLETE:
            return state
    raise AssertionError(f"not complete after {max_calls} calls: {state}")


def test_stacks_are_created_in_order_wired_protected_and_their_outputs_read(
    gate_env: dict[str, str], templates: Path
) -> None:
    provisioner, cfn = moto_provisioner(templates)

    state = run(provisioner)

    assert [(s.stack_name, s.phase) for s in state.stacks] == [
        ("sts-staging-topic", StackPhase.DONE),
        ("sts-staging-queue", StackPhase.DONE),
    ]
    topic_arn = state.outputs()["topic"]["TopicArn"]
    assert topic_arn.endswith(":sts-staging-topic")
    assert state.outputs()["queue"]["FromTopic"] == topic_arn  # wired through a parameter
    assert (
        "update_termination_protection",
        {"EnableTerminationProtection": True, "StackName": "sts-staging-topic"},
    ) in cfn.calls
    policy = json.loads(
        boto3.client("cloudformation", region_name=REGION).get_stack_policy(StackName="sts-staging-topic")[
            "StackPolicyBody"
        ]
    )
    assert any(s["Effect"] == "Deny" for s in policy["Statement"])


def test_a_second_run_with_the_same_templates_and_parameters_is_skipped_but_outputs_are_read(
    gate_env: dict[str, str], templates: Path
) -> None:
    provisioner, _ = moto_provisioner(templates)
    run(provisioner, "rel-1")

    again = run(provisioner, "rel-2")

    assert [s.phase for s in again.stacks] == [StackPhase.SKIPPED, StackPhase.SKIPPED]
    assert again.outputs()["topic"]["TopicArn"].endswith(":sts-staging-topic")
    change_sets = boto3.client("cloudformation", region_name=REGION).list_change_sets(StackName="sts-staging-topic")[
        "Summaries"
    ]
    assert not [c for c in change_sets if "rel-2" in c["ChangeSetName"]]


def test_a_change_set_without_changes_counts_as_success(gate_env: dict[str, str], templates: Path) -> None:
    provisioner, _ = moto_provisioner(templates)
    run(provisioner, "rel-1")
    boto3.client("dynamodb", region_name=REGION).delete_item(
        TableName=TABLE, Key={"pk": {"S": "ENV#staging"}, "sk": {"S": "STACK#sts-staging-topic"}}
    )

    again = run(provisioner, "rel-2")

    assert again.stacks[0].phase is StackPhase.NO_CHANGES
    assert again.stacks[0].outputs["TopicArn"].endswith(":sts-staging-topic")


def test_a_changed_parameter_updates_the_stack(gate_env: dict[str, str], templates: Path) -> None:
    provisioner, _ = moto_provisioner(templates)
    run(provisioner, "rel-1")

    bigger, _ = moto_provisioner(templates, inputs={"Size": "2"})
    again = run(bigger, "rel-2")

    assert again.stacks[0].phase is StackPhase.DONE
    assert again.stacks[1].phase is StackPhase.SKIPPED  # its parameters did not change


def test_every_template_goes_through_the_artifacts_bucket_with_the_stack_role(
    gate_env: dict[str, str], templates: Path
) -> None:
    provisioner, cfn = moto_provisioner(templates)
    seen: list[dict[str, Any]] = []
    real = cfn._client.create_change_set
    cfn._methods["create_change_set"] = lambda **kw: seen.append(kw) or real(**kw)

    run(provisioner)

    assert len(seen) == 2
    assert all("TemplateURL" in kw and "TemplateBody" not in kw for kw in seen)  # small templates too
    assert all(kw["RoleARN"] == STACK_ROLE for kw in seen)
    assert seen[0]["TemplateURL"].startswith(
        "https://artifacts.s3.us-east-1.amazonaws.com/cloudformation/staging/sts-staging-topic/"
    )
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 2


def test_a_provisioner_without_the_stack_role_or_the_bucket_refuses_to_start(
    gate_env: dict[str, str], templates: Path
) -> None:
    with pytest.raises(ConfigurationError, match="STACK_ROLE_ARN is not set"):
        Provisioner(catalog=CATALOG, templates_dir=templates, project="sts", table_name=TABLE, artifacts_bucket=BUCKET)
    with pytest.raises(ConfigurationError, match="ARTIFACTS_BUCKET is not set"):
        Provisioner(catalog=CATALOG, templates_dir=templates, project="sts", table_name=TABLE, role_arn=STACK_ROLE)


DATA = StackCatalog.model_validate(
    {"stacks": [{"suffix": "topic", "template": "topic.yaml", "inputs": ["Size"], "holds_data": True}]}
)


def test_a_new_data_stack_is_created_protected_in_one_call_and_never_protected_afterwards(
    gate_env: dict[str, str], templates: Path
) -> None:
    provisioner, cfn = moto_provisioner(templates, catalog=DATA)
    created: list[dict[str, Any]] = []
    real = cfn._client.create_stack
    cfn._methods["create_stack"] = lambda **kw: created.append(kw) or real(**kw)

    state = run(provisioner)

    assert state.stacks[0].phase is StackPhase.DONE
    assert len(created) == 1
    assert created[0]["EnableTerminationProtection"] is True
    assert created[0]["RoleARN"] == STACK_ROLE
    assert created[0]["TemplateURL"].startswith("https://artifacts.s3.us-east-1.amazonaws.com/cloudformation/")
    client = boto3.client("cloudformation", region_name=REGION)
    assert client.describe_stacks(StackName="sts-staging-topic")["Stacks"][0]["EnableTerminationProtection"] is True
    policy = json.loads(client.get_stack_policy(StackName="sts-staging-topic")["StackPolicyBody"])
    assert any(s["Effect"] == "Deny" for s in policy["Statement"])
    assert not [name for name, _ in cfn.calls if name in {"update_termination_protection", "set_stack_policy"}]

    bigger, cfn = moto_provisioner(templates, catalog=DATA, inputs={"Size": "2"})
    again = run(bigger, "rel-2")  # an update goes through a change set as for any stack

    assert again.stacks[0].phase is StackPhase.DONE
    assert not [name for name, _ in cfn.calls if name in {"create_stack", "update_termination_protection"}]


# ---- failure states, through a scripted client ------------------------------------------------------------------
class ScriptedCfn:
    """Just enough CloudFormation for one stack whose statuses follow a script."""

    def __init__(
        self,
        statuses: list[str | None],
        *,
        change_set: dict[str, Any] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        self.statuses = statuses
        self.change_set = change_set or {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"}
        self.events = events or []
        self.calls: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - the boto3 keyword
        self.calls.append("describe_stacks")
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}},
                "DescribeStacks",
            )
        return {
            "Stacks": [
                {
                    "StackName": StackName,
                    "StackStatus": status,
                    "Outputs": [{"OutputKey": "TopicArn", "OutputValue": "arn:topic"}],
                }
            ]
        }

    def create_change_set(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"create_change_set:{kwargs['ChangeSetType']}")
        return {}

    def create_stack(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"create_stack:protected={kwargs['EnableTerminationProtection']}")
        return {}

    def describe_change_set(self, **_: Any) -> dict[str, Any]:
        return self.change_set

    def execute_change_set(self, **_: Any) -> dict[str, Any]:
        self.calls.append("execute_change_set")
        return {}

    def delete_stack(self, **_: Any) -> dict[str, Any]:
        self.calls.append("delete_stack")
        return {}

    def delete_change_set(self, **_: Any) -> dict[str, Any]:
        return {}

    def update_termination_protection(self, **_: Any) -> dict[str, Any]:
        self.calls.append("protect")
        return {}

    def set_stack_policy(self, **_: Any) -> dict[str, Any]:
        return {}

    def get_paginator(self, _name: str) -> Any:
        events = self.events

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"StackEvents": events}]

        return Pages()


def event(logical: str, status: str, reason: str, minutes: int, kind: str = "AWS::SNS::Topic") -> dict[str, Any]:
    return {
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": NOW + timedelta(minutes=minutes),
    }


ONE = StackCatalog.model_validate({"stacks": [{"suffix": "topic", "template": "topic.yaml"}]})


def scripted(templates: Path, cfn: ScriptedCfn, catalog: StackCatalog = ONE) -> Provisioner:
    return Provisioner(
        catalog=catalog,
        templates_dir=templates,
        project="sts",
        table_name=TABLE,
        region=REGION,
        cfn=cfn,  # type: ignore[arg-type]
        artifacts_bucket=artifacts_bucket(),
        role_arn=STACK_ROLE,
    )


def test_a_failed_create_ends_the_deploy_with_the_failing_resources_reasons(
    gate_env: dict[str, str], templates: Path
) -> None:
    events = [  # newest first, as DescribeStackEvents returns them
        event("sts-staging-topic", "ROLLBACK_COMPLETE", "", 3, "AWS::CloudFormation::Stack"),
        event("Topic", "DELETE_COMPLETE", "", 2),
        event("Topic", "CREATE_FAILED", "Resource handler returned message: TopicName already exists", 1),
        event("Old", "CREATE_FAILED", "from an earlier run", -10),
    ]
    cfn = ScriptedCfn([None, "CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"], events=events)
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=3600)

    state = provisioner.advance(state, now=NOW)  # change set created, executed, stack creating: wait
    assert state.status is ProvisionStatus.IN_PROGRESS
    assert state.stacks[0].phase is StackPhase.EXECUTING
    state = provisioner.advance(state, now=NOW)  # rolling back: wait
    with pytest.raises(
        StackFailedError,
        match=r"ended ROLLBACK_COMPLETE: Topic \(AWS::SNS::Topic\) CREATE_FAILED: .*TopicName already exists",
    ) as err:
        provisioner.advance(state, now=NOW)
    assert "earlier run" not in str(err.value)
    assert "protect" not in cfn.calls


def test_an_update_rolled_back_ends_the_deploy(gate_env: dict[str, str], templates: Path) -> None:
    events = [event("Topic", "UPDATE_FAILED", "Access denied for sns:SetTopicAttributes", 1)]
    cfn = ScriptedCfn(["UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"], events=events)
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=3600)

    with pytest.raises(StackFailedError, match=r"UPDATE_ROLLBACK_COMPLETE: Topic .* Access denied"):
        provisioner.advance(state, now=NOW)
    assert "create_change_set:UPDATE" in cfn.calls


def test_a_stack_left_in_rollback_complete_is_deleted_and_created_again(
    gate_env: dict[str, str], templates: Path
) -> None:
    cfn = ScriptedCfn(["ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", None, None, "CREATE_COMPLETE"])
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=3600)

    state = provisioner.advance(state, now=NOW)
    assert state.stacks[0].phase is StackPhase.DELETING
    state = provisioner.advance(state, now=NOW)  # still deleting
    state = provisioner.advance(state, now=NOW)  # gone: create change set, execute, complete

    assert state.status is ProvisionStatus.COMPLETE
    assert cfn.calls.count("delete_stack") == 1
    assert "create_change_set:CREATE" in cfn.calls
    assert "protect" in cfn.calls


def test_a_data_stack_whose_first_create_failed_stops_for_an_operator_and_is_never_deleted(
    gate_env: dict[str, str], templates: Path
) -> None:
    events = [event("Topic", "CREATE_FAILED", "Resource handler returned message: KMS key pending deletion", 1)]
    cfn = ScriptedCfn([None, "CREATE_IN_PROGRESS", "ROLLBACK_COMPLETE"], events=events)
    provisioner = scripted(templates, cfn, DATA)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=3600)

    state = provisioner.advance(state, now=NOW)  # CreateStack, protected from the start: creating, wait
    assert cfn.calls.count("create_stack:protected=True") == 1
    with pytest.raises(StackFailedError, match=r"ended ROLLBACK_COMPLETE: Topic .* KMS key pending deletion"):
        provisioner.advance(state, now=NOW)

    # The next deploy finds it in ROLLBACK_COMPLETE: it names the cause and what an operator does, deletes nothing.
    fresh = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-2"), now=NOW, timeout_s=3600)
    with pytest.raises(StackFailedError) as err:
        provisioner.advance(fresh, now=NOW)
    assert "data stack sts-staging-topic failed its first create" in str(err.value)
    assert "never deletes a data stack" in str(err.value)
    assert "KMS key pending deletion" in str(err.value)
    assert "delete_stack" not in cfn.calls
    assert not [c for c in cfn.calls if c.startswith("create_change_set")]


def test_a_failed_change_set_that_is_not_a_no_change_ends_the_deploy(gate_env: dict[str, str], templates: Path) -> None:
    cfn = ScriptedCfn(
        ["UPDATE_COMPLETE"],
        change_set={"Status": "FAILED", "StatusReason": "Template format error: Unresolved resource dependencies"},
    )

    with pytest.raises(StackFailedError, match="Unresolved resource dependencies"):
        scripted(templates, cfn).advance(
            scripted(templates, cfn).start(
                ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=3600
            ),
            now=NOW,
        )


def test_provisioning_has_a_deadline(gate_env: dict[str, str], templates: Path) -> None:
    cfn = ScriptedCfn([None, "CREATE_IN_PROGRESS"])
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=60)
    state = provisioner.advance(state, now=NOW)

    with pytest.raises(DeadlineExceededError, match="sts-staging-topic still EXECUTING"):
        provisioner.advance(state, now=NOW + timedelta(seconds=61))


def test_a_stack_in_a_state_only_an_operator_can_repair_is_refused(gate_env: dict[str, str], templates: Path) -> None:
    cfn = ScriptedCfn(["UPDATE_ROLLBACK_FAILED"])
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=60)

    with pytest.raises(StackFailedError, match="UPDATE_ROLLBACK_FAILED; an operator must repair it"):
        provisioner.advance(state, now=NOW)


def test_a_change_set_that_failed_for_lack_of_changes_is_success_and_is_cleaned_up(
    gate_env: dict[str, str], templates: Path
) -> None:
    reason = "The submitted information didn't contain changes. Submit different information to create a change set."
    cfn = ScriptedCfn(["UPDATE_COMPLETE"], change_set={"Status": "FAILED", "StatusReason": reason})
    provisioner = scripted(templates, cfn)
    state = provisioner.start(ProvisionRequest(environment="staging", release_id="rel-1"), now=NOW, timeout_s=60)

    state = provisioner.advance(state, now=NOW)

    assert state.status is ProvisionStatus.COMPLETE
    assert state.stacks[0].phase is StackPhase.NO_CHANGES
    assert state.stacks[0].outputs == {"TopicArn": "arn:topic"}
    assert "execute_change_set" not in cfn.calls
