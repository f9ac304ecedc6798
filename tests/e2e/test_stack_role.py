"""The control plane cannot escalate through CloudFormation, with IAM enforced on every call (local/aws authz).

The provisioning functions may pass only the shipped stack role (StackRole), only templates from their own
artifacts bucket's cloudformation/ prefix, and may never delete, unprotect or re-policy a data stack. Proven through
the real deploy state machine (a function whose configuration names another role, a catalog that forgot a stack
holds data) and with the provisioning function's own credentials for calls the product code never makes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from controlplane import platform
from controlplane.aws.lock import LockTable, lock_key
from controlplane.aws.table import Condition
from controlplane.models.lock import LockRequest

from local.pipeline import Pipeline, pipeline
from tests.stack_templates import ALARMS_TOPIC

pytestmark = pytest.mark.e2e

STORAGE = "synthetictrialstudio-staging-storage"
EKS = "synthetictrialstudio-staging-eks"

CLUSTER = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ClusterName: {Type: String}
  TopicArn: {Type: String}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/synthetictrialstudio/${Environment}/${ClusterName}"}
Outputs:
  LogGroup: {Value: !Ref Logs}
"""


def write_catalog(folder: Path, *, storage_holds_data: bool = True) -> Path:
    (folder / "cloudformation").mkdir(exist_ok=True)
    (folder / "cloudformation" / "storage.yaml").write_text(ALARMS_TOPIC)
    (folder / "cloudformation" / "eks.yaml").write_text(CLUSTER)
    flag = ", holds_data: true" if storage_holds_data else ""
    (folder / "stacks.yaml").write_text(
        "template_dir: cloudformation\nstacks:\n"
        f"  - {{suffix: storage, template: storage.yaml{flag}}}\n"
        "  - {suffix: eks, template: eks.yaml, inputs: [ClusterName], wiring: {TopicArn: storage.TopicArn}}\n"
    )
    return folder / "stacks.yaml"


@pytest.fixture
def stacks(cluster: Any, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(cluster, ProvisionStacks="true", StacksFile=str(write_catalog(tmp_path))) as pipe:
        yield pipe


def first_deploy(pipe: Pipeline) -> Any:
    images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
    return pipe.deploy({"environment": "staging", "services": images, "reason": "first"})


def as_function(pipe: Pipeline, logical_id: str, service: str) -> Any:
    """A client with the function's execution-role credentials: what the handler's own calls are allowed."""
    lam = pipe.cloud.client("lambda")
    role = str(lam.get_function_configuration(FunctionName=pipe.cloud.ref(logical_id))["Role"])
    creds = pipe.cloud.iam.credentials(role, str(pipe.cloud.ref(logical_id)))
    return pipe.cloud.iam.session(creds).client(service)


def denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    assert err.value.response["Error"]["Code"] == "AccessDenied", err.value.response
    return str(err.value)


def our_template_url(pipe: Pipeline, stack: str) -> str:
    """Upload a template as the function does: under the artifacts bucket's cloudformation/ prefix."""
    bucket = str(pipe.cloud.ref("ArtifactsBucket"))
    key = f"cloudformation/staging/{stack}/manual.yaml"
    pipe.cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=CLUSTER.encode())
    return f"https://{bucket}.s3.{pipe.cloud.region}.amazonaws.com/{key}"


def test_a_function_configured_with_another_role_is_refused_by_iam_before_any_stack_exists(stacks: Pipeline) -> None:
    runtime = stacks.cloud.runtime
    deploy_role = stacks.cloud.arn("ClusterDeployRole")  # a role of ours, more powerful in the cluster
    for logical_id in ("StartStacksFunction", "AdvanceStacksFunction"):
        spec = runtime.lookup(str(stacks.cloud.ref(logical_id)))
        assert spec is not None
        runtime.register(dataclasses.replace(spec, environment={**spec.environment, "STACK_ROLE_ARN": deploy_role}))

    result = first_deploy(stacks)

    assert result.status == "FAILED"
    assert "AccessDenied" in str(result.cause)
    assert "not authorized to perform: cloudformation:CreateStack" in str(result.cause)
    assert stacks.cloud.client("cloudformation").list_stacks()["StackSummaries"] == []
    assert stacks.writes() == []


def test_a_data_stack_whose_first_create_failed_is_left_for_an_operator(stacks: Pipeline) -> None:
    stacks.cloud.cfn_faults.fail_next(STORAGE, "ROLLBACK_COMPLETE", reason="KMS key is pending deletion")

    failed = first_deploy(stacks)
    again = first_deploy(stacks)

    assert failed.status == again.status == "FAILED"
    assert "KMS key is pending deletion" in str(failed.cause)
    assert again.error == "StackFailedError"
    assert f"data stack {STORAGE} failed its first create" in str(again.cause)
    assert "KMS key is pending deletion" in str(again.cause)
    stack = stacks.cloud.client("cloudformation").describe_stacks(StackName=STORAGE)["Stacks"][0]
    assert (stack["StackStatus"], stack["EnableTerminationProtection"]) == ("ROLLBACK_COMPLETE", True)


def test_iam_refuses_deleting_a_data_stack_even_when_the_catalog_forgot_it_holds_data(
    cluster: Any, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, storage_holds_data=False)  # the code would delete it: IAM must not let it
    with pipeline(cluster, ProvisionStacks="true", StacksFile=str(catalog)) as pipe:
        pipe.cloud.cfn_faults.fail_next(STORAGE, "ROLLBACK_COMPLETE", reason="Topic quota exceeded")
        assert first_deploy(pipe).status == "FAILED"

        again = first_deploy(pipe)

        assert again.status == "FAILED"
        assert "not authorized to perform: cloudformation:DeleteStack" in str(again.cause)
        assert f"stack/{STORAGE}/" in str(again.cause)
        stack = pipe.cloud.client("cloudformation").describe_stacks(StackName=STORAGE)["Stacks"][0]
        assert stack["StackStatus"] == "ROLLBACK_COMPLETE"


PERMISSIVE_POLICY = {"Statement": [{"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}]}


def test_the_provisioning_role_may_pass_only_the_stack_role_and_our_templates_and_never_unprotect_data(
    stacks: Pipeline,
) -> None:
    assert first_deploy(stacks).status == "SUCCEEDED"
    cfn = as_function(stacks, "StartStacksFunction", "cloudformation")
    stack_role = stacks.cloud.arn("StackRole")
    ours = our_template_url(stacks, EKS)
    admin = stacks.cloud.client("s3")
    admin.create_bucket(Bucket="someone-elses-templates")
    admin.put_object(Bucket="someone-elses-templates", Key="cloudformation/eks.yaml", Body=CLUSTER.encode())
    foreign = f"https://someone-elses-templates.s3.{stacks.cloud.region}.amazonaws.com/cloudformation/eks.yaml"
    outside = f"https://{stacks.cloud.ref('ArtifactsBucket')}.s3.{stacks.cloud.region}.amazonaws.com/approvals/x.yaml"
    parameters = [
        {"ParameterKey": "Environment", "UsePreviousValue": True},
        {"ParameterKey": "ClusterName", "UsePreviousValue": True},
        {"ParameterKey": "TopicArn", "UsePreviousValue": True},
    ]
    change = {"StackName": EKS, "ChangeSetType": "UPDATE", "Parameters": parameters}

    refusals = {
        "a foreign TemplateURL": denied(
            cfn.create_change_set, ChangeSetName="cp-x-1", TemplateURL=foreign, RoleARN=stack_role, **change
        ),
        "our bucket outside cloudformation/": denied(
            cfn.create_change_set, ChangeSetName="cp-x-2", TemplateURL=outside, RoleARN=stack_role, **change
        ),
        "a TemplateBody": denied(
            cfn.create_change_set, ChangeSetName="cp-x-3", TemplateBody=CLUSTER, RoleARN=stack_role, **change
        ),
        "another RoleArn": denied(
            cfn.create_change_set,
            ChangeSetName="cp-x-4",
            TemplateURL=ours,
            RoleARN=stacks.cloud.arn("ClusterDeployRole"),
            **change,
        ),
        "no RoleArn (its own credentials)": denied(
            cfn.create_change_set, ChangeSetName="cp-x-5", TemplateURL=ours, **change
        ),
        "an import": denied(
            cfn.create_change_set,
            ChangeSetName="cp-x-6",
            TemplateURL=ours,
            RoleARN=stack_role,
            StackName=EKS,
            ChangeSetType="IMPORT",
            ResourcesToImport=[
                {
                    "ResourceType": "AWS::IAM::Role",
                    "LogicalResourceId": "Taken",
                    "ResourceIdentifier": {"RoleName": "admin"},
                }
            ],
            Parameters=parameters,
        ),
        "UpdateStack": denied(cfn.update_stack, StackName=EKS, TemplateURL=ours, RoleARN=stack_role),
    }

    assert all("cloudformation:" in message for message in refusals.values()), refusals
    # The same change set with the stack role and our template is allowed: the conditions, not a blanket denial.
    allowed = cfn.create_change_set(ChangeSetName="cp-x-7", TemplateURL=ours, RoleARN=stack_role, **change)
    assert allowed["Id"]

    # Neither provisioning function may delete, unprotect or re-policy a data stack (an explicit deny).
    for function in ("StartStacksFunction", "AdvanceStacksFunction"):
        client = as_function(stacks, function, "cloudformation")
        for operation, arguments in (
            ("delete_stack", {}),
            ("update_termination_protection", {"EnableTerminationProtection": False}),
            ("set_stack_policy", {"StackPolicyBody": json.dumps(PERMISSIVE_POLICY)}),
        ):
            message = denied(getattr(client, operation), StackName=STORAGE, **arguments)

            assert f"stack/{STORAGE}/" in message, (function, operation)
            assert "with an explicit deny" in message, (function, operation)
    stack = stacks.cloud.client("cloudformation").describe_stacks(StackName=STORAGE)["Stacks"][0]
    assert stack["EnableTerminationProtection"] is True


def test_day_0_provisioning_runs_alone_before_the_first_release(stacks: Pipeline) -> None:
    provisioned = stacks.cloud.run("ProvisionStateMachine", {"environment": "staging"})
    again = stacks.cloud.run("ProvisionStateMachine", {"environment": "staging"})
    elsewhere = stacks.cloud.run("ProvisionStateMachine", {"environment": "production"})
    release = first_deploy(stacks)

    assert provisioned.status == "SUCCEEDED", provisioned.cause
    assert [s["phase"] for s in provisioned.output["stacks"]["stacks"]] == ["DONE", "DONE"]
    assert provisioned.output["stacks"]["stacks"][0]["change_set_name"] is None  # the data stack: CreateStack
    assert [s["phase"] for s in again.output["stacks"]["stacks"]] == ["SKIPPED", "SKIPPED"]
    assert (elsewhere.status, elsewhere.error) == ("FAILED", "InputValidationError")
    assert "is not deployed by this control plane" in str(elsewhere.cause)
    assert release.status == "SUCCEEDED", release.cause
    assert [s["phase"] for s in release.output["stacks"]["stacks"]] == ["SKIPPED", "SKIPPED"]
    # Created as the stack role; the data stack protected from its first moment (CreateStack), the other after.
    cfn = stacks.cloud.client("cloudformation")
    storage = cfn.describe_stacks(StackName=STORAGE)["Stacks"][0]
    eks = cfn.describe_stacks(StackName=EKS)["Stacks"][0]
    assert storage["RoleARN"] == eks["RoleARN"] == stacks.cloud.arn("StackRole")
    assert storage["EnableTerminationProtection"] is True
    assert eks["EnableTerminationProtection"] is True
    policy = json.loads(cfn.get_stack_policy(StackName=STORAGE)["StackPolicyBody"])
    assert any(s["Effect"] == "Deny" and "Update:Delete" in s["Action"] for s in policy["Statement"])


ROLE = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ProjectName: {Type: String}
  ClusterName: {Type: String}
  TopicArn: {Type: String}
  PermissionsBoundaryArn: {Type: String}
Resources:
  WorkloadRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Sub "${ProjectName}-${Environment}-workload"
BOUNDARY
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Principal: {Service: pods.eks.amazonaws.com}, Action: sts:AssumeRole}]
      Policies:
        - PolicyName: read-topic
          PolicyDocument:
            Version: "2012-10-17"
            Statement: [{Effect: Allow, Action: sns:GetTopicAttributes, Resource: !Ref TopicArn}]
Outputs:
  RoleArn: {Value: !GetAtt WorkloadRole.Arn}
"""


def test_cloudformation_creates_each_resource_as_the_stack_role_and_a_role_without_the_boundary_fails_the_stack(
    cluster: Any, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path)
    catalog.write_text(
        catalog.read_text().replace("inputs: [ClusterName]", "inputs: [ClusterName, PermissionsBoundaryArn]")
    )
    eks = tmp_path / "cloudformation" / "eks.yaml"
    eks.write_text(ROLE.replace("BOUNDARY\n", ""))
    with pipeline(cluster, ProvisionStacks="true", StacksFile=str(catalog)) as pipe:
        iam = pipe.cloud.client("iam")

        refused = pipe.cloud.run("ProvisionStateMachine", {"environment": "staging"})

        assert (refused.status, refused.error) == ("FAILED", "StackFailedError")
        assert "WorkloadRole (AWS::IAM::Role) CREATE_FAILED" in str(refused.cause)
        assert "assumed-role/synthetictrialstudio-cloudformation/AWSCloudFormation" in str(refused.cause)
        assert "not authorized to perform: iam:CreateRole" in str(refused.cause)
        assert "with an explicit deny in a permissions boundary" in str(refused.cause)  # StackRoleBoundary's Deny
        events = pipe.cloud.client("cloudformation").describe_stack_events(StackName=EKS)["StackEvents"]
        (failed,) = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED" and e["LogicalResourceId"] != EKS]
        assert failed["LogicalResourceId"] == "WorkloadRole"
        assert "HandlerErrorCode: AccessDenied" in failed["ResourceStatusReason"]
        assert "synthetictrialstudio-staging-workload" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]

        # With the boundary the same role is created (the failed stack is deleted and created again).
        eks.write_text(ROLE.replace("BOUNDARY\n", "      PermissionsBoundary: !Ref PermissionsBoundaryArn\n"))
        created = pipe.cloud.run("ProvisionStateMachine", {"environment": "staging"})

        assert created.status == "SUCCEEDED", created.cause
        role = iam.get_role(RoleName="synthetictrialstudio-staging-workload")["Role"]
        assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == pipe.cloud.ref("PlatformBoundary")
        decisions = [d for d in pipe.cloud.iam.decisions if d[0] == pipe.cloud.arn("StackRole")]
        assert ("iam:CreateRole", "Allow") in {(d[1], d[3]) for d in decisions}
        assert ("sns:CreateTopic", "Allow") in {(d[1], d[3]) for d in decisions}


def test_an_update_that_would_delete_a_data_stacks_bucket_is_refused_by_its_stack_policy(
    cluster: Any, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path)
    storage = tmp_path / "cloudformation" / "storage.yaml"
    with_bucket = ALARMS_TOPIC.replace("Outputs:", "  Documents:\n    Type: AWS::S3::Bucket\nOutputs:")
    storage.write_text(with_bucket)
    with pipeline(cluster, ProvisionStacks="true", StacksFile=str(catalog)) as pipe:
        assert pipe.cloud.run("ProvisionStateMachine", {"environment": "staging"}).status == "SUCCEEDED"
        cfn, s3 = pipe.cloud.client("cloudformation"), pipe.cloud.client("s3")
        bucket = cfn.describe_stack_resource(StackName=STORAGE, LogicalResourceId="Documents")
        name = bucket["StackResourceDetail"]["PhysicalResourceId"]

        storage.write_text(ALARMS_TOPIC)  # the bucket removed from the template (a compromised or mistaken change)
        refused = pipe.cloud.run("ProvisionStateMachine", {"environment": "staging"})

        assert (refused.status, refused.error) == ("FAILED", "StackFailedError")
        assert "UPDATE_ROLLBACK_COMPLETE" in str(refused.cause)
        assert "Action denied by stack policy" in str(refused.cause)
        assert "[Update:Delete] for resource [LogicalResourceId/Documents]" in str(refused.cause)
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert cfn.describe_stacks(StackName=STORAGE)["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"


# --- provisioning takes the deploy lock ---------------------------------------------------------------------------
def _entered(result: Any, state: str) -> Any:
    """When ``result`` first entered ``state`` (simulated time)."""
    return next(e.timestamp for e in result.history if e.type.endswith("StateEntered") and e.state_name == state)


def _exited(result: Any, state: str) -> Any:
    """When ``result`` last left ``state``."""
    return [e.timestamp for e in result.history if e.type.endswith("StateExited") and e.state_name == state][-1]


def test_a_release_requested_while_provisioning_is_queued_and_applied_only_after_the_stacks(stacks: Pipeline) -> None:
    locks = LockTable(str(stacks.cloud.ref("LedgerTable")), region="us-east-1")
    started: list[str] = []
    # CloudFormation throttles StartStacks until the release has been decided: the state machine's retries wait
    # (simulated seconds pass) while provisioning holds the lock, and the release is requested then.
    throttle = stacks.cloud.aws_faults.add(
        "cloudformation", function=str(stacks.cloud.ref("StartStacksFunction")), times=None
    )

    def request_release_while_provisioning(_now: float) -> None:
        held = locks.read("staging")
        if not started and held is not None and held.purpose.value == "provision":
            started.append(stacks.start_first_release())
        elif started and throttle.times is None and stacks.cloud.describe_execution(started[0])["status"] != "RUNNING":
            throttle.times = throttle.fired  # the release is decided: CloudFormation answers again

    stacks.cloud.clock.subscribe(request_release_while_provisioning)
    provisioned = stacks.cloud.run("ProvisionStateMachine", {"environment": "staging"})

    assert provisioned.status == "SUCCEEDED", (provisioned.error, provisioned.cause)
    [arn] = started
    queued = stacks.cloud.wait_execution(arn, timeout=60)
    assert (queued.status, queued.output["lock"]["outcome"]) == ("SUCCEEDED", "QUEUED")
    assert queued.output["lock"]["holder"] == provisioned.arn
    assert "PlanRelease" not in queued.states_entered()
    follow_up = provisioned.output["released"]["follow_up"]
    assert follow_up is not None
    deployed = stacks.cloud.wait_execution(follow_up["execution_arn"], timeout=180)
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert _entered(deployed, "InstallAddons") >= _entered(provisioned, "ReleaseLock")  # stacks done first
    assert locks.read("staging") is None


def test_provisioning_waits_for_a_running_deploy_then_changes_the_stacks(stacks: Pipeline) -> None:
    locks = LockTable(str(stacks.cloud.ref("LedgerTable")), region="us-east-1")
    started: list[str] = []

    def provision_while_deploying(_now: float) -> None:
        held = locks.read("staging")
        if not started and held is not None and held.purpose.value == "deploy":
            started.append(stacks.cloud.start_execution("ProvisionStateMachine", {"environment": "staging"}))

    stacks.cloud.clock.subscribe(provision_while_deploying)
    release = stacks.cloud.wait_execution(stacks.start_first_release(), timeout=180)

    assert release.status == "SUCCEEDED", (release.error, release.cause)
    [arn] = started
    provisioned = stacks.cloud.wait_execution(arn, timeout=180)
    assert provisioned.status == "SUCCEEDED", (provisioned.error, provisioned.cause)
    entered = provisioned.states_entered()
    assert entered[:3] == ["AcquireLock", "LockAcquired", "WaitForLock"]
    assert _entered(provisioned, "StartStacks") >= _exited(release, "ReleaseLock")
    assert [s["phase"] for s in provisioned.output["stacks"]["stacks"]] == ["SKIPPED", "SKIPPED"]  # the deploy's


def test_provisioning_that_lost_its_lease_changes_no_stack_and_ends_lock_lost(stacks: Pipeline) -> None:
    """Fencing (issue 12): StartStacks and AdvanceStacks renew the lease of the lock provisioning holds before any
    change; once the token moved on (the lock taken over or handed on) the run ends LockLost: no change set is made,
    no stack hash recorded, and the lock is not released (it is not ours any more)."""
    ledger_table = str(stacks.cloud.ref("LedgerTable"))
    locks = LockTable(ledger_table, region="us-east-1")
    start = str(stacks.cloud.ref("StartStacksFunction"))
    # StartStacks' renewal of its lease is throttled; while the SDK backs off, the lease moves on (the lock's token
    # bumped, as a take-over does) and DynamoDB answers again.
    fault = stacks.cloud.aws_faults.add("dynamodb", "UpdateItem", function=start, times=None)
    bumped: list[int] = []

    def take_the_lease_once_throttled(_now: float) -> None:
        held = locks.read("staging")
        if fault.fired and not bumped and held is not None and held.purpose.value == "provision":
            fault.times = fault.fired  # healed first: this listener runs inside the function's SDK back-off
            bumped.append(held.lease + 1)
            locks.table.update(
                lock_key("staging"), Condition("SET #lease = :next", {"#lease": "lease"}, {":next": held.lease + 1})
            )

    stacks.cloud.clock.subscribe(take_the_lease_once_throttled)

    lost = stacks.cloud.run("ProvisionStateMachine", {"environment": "staging"}, timeout=180)

    assert (lost.status, lost.error) == ("FAILED", "LockLostError"), lost.cause
    assert "no longer holds the lock of staging" in str(lost.cause)
    entered = lost.states_entered()
    assert entered[-1] == "LockLost"
    assert "ReleaseLockAfterFailure" not in entered
    assert "AdvanceStacks" not in entered
    names = [s["StackName"] for s in stacks.cloud.client("cloudformation").describe_stacks()["Stacks"]]
    assert STORAGE not in names
    assert EKS not in names
    hashes = stacks.cloud.client("dynamodb").query(
        TableName=ledger_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :stack)",
        ExpressionAttributeValues={":pk": {"S": "ENV#staging"}, ":stack": {"S": "STACK#"}},
    )["Items"]
    assert hashes == []
    held = locks.read("staging")
    assert held is not None
    assert held.lease == bumped[0]  # the lock as the new holder left it: not released by the run that lost it


def test_provisioning_gives_up_behind_a_lock_held_past_its_wait_and_changes_nothing(
    cluster: Any, tmp_path: Path
) -> None:
    with pipeline(
        cluster, ProvisionStacks="true", StacksFile=str(write_catalog(tmp_path)), ProvisionLockWaitSeconds="120"
    ) as pipe:
        locks = LockTable(str(pipe.cloud.ref("LedgerTable")), region="us-east-1")
        deploy = str(pipe.cloud.ref("DeployStateMachine")).replace(":stateMachine:", ":execution:") + ":stuck-deploy"
        now = int(pipe.cluster.clock.utcnow().timestamp())
        assert locks.try_acquire(LockRequest(environment="staging", owner=deploy), now=now, ttl_s=3600)

        gave_up = pipe.cloud.run("ProvisionStateMachine", {"environment": "staging"})

        assert (gave_up.status, gave_up.error) == ("FAILED", "LockHeldError")
        assert f"still locked by {deploy}" in str(gave_up.cause)
        assert "StartStacks" not in gave_up.states_entered()
        assert gave_up.states_entered()[-2:] == ["ReleaseLockAfterFailure", "ProvisioningFailed"]
        names = [s["StackName"] for s in pipe.cloud.client("cloudformation").describe_stacks()["Stacks"]]
        assert STORAGE not in names
        assert EKS not in names
        held = locks.read("staging")
        assert held is not None
        assert held.owner == deploy  # not ours to release
