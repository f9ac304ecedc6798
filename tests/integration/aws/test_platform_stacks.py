"""The platform's own CloudFormation templates on the local cloud, as far as moto models their resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.aws import DEFAULT_TEMPLATE, LocalCloud

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[3] / "manifests" / "cloudformation"


@pytest.mark.parametrize(
    ("stack", "parameters"),
    [
        ("network", {}),
        ("ecr", {}),
        # storage has AWS::KMS::Key with CloudFormation-style Tags ({Key, Value}), which moto alone rejects
        ("storage", {"AlertEmail": "platform@example.com"}),
        # what the control plane passes by default (its AlertEmail parameter is empty): no e-mail subscription
        ("storage", {"AlertEmail": ""}),
    ],
)
def test_the_platforms_independent_stacks_create_on_the_local_cloud(stack: str, parameters: dict[str, str]) -> None:
    with LocalCloud(None) as cloud:
        cfn = cloud.client("cloudformation")
        cfn.create_stack(
            StackName=f"synthetictrialstudio-staging-{stack}",
            TemplateBody=(TEMPLATES / f"{stack}.yaml").read_text(),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v} for k, v in {"Environment": "staging", **parameters}.items()
            ],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        status = cfn.describe_stacks(StackName=f"synthetictrialstudio-staging-{stack}")["Stacks"][0]["StackStatus"]

    assert status == "CREATE_COMPLETE"


def test_the_stack_role_may_create_the_platforms_independent_stacks_resource_by_resource() -> None:
    """The control plane's StackRole (and its boundary), authorized per resource as CloudFormation uses it."""
    from local.pipeline import parameters  # noqa: PLC0415 - the control plane's local parameters

    with LocalCloud(DEFAULT_TEMPLATE, parameters=parameters()) as cloud:
        cfn = cloud.client("cloudformation")
        for stack, extra in (("network", {}), ("ecr", {}), ("storage", {"AlertEmail": "platform@example.com"})):
            name = f"synthetictrialstudio-staging-{stack}" if stack != "ecr" else "synthetictrialstudio-ecr"
            cfn.create_stack(
                StackName=name,
                TemplateBody=(TEMPLATES / f"{stack}.yaml").read_text(),
                Parameters=[
                    {"ParameterKey": k, "ParameterValue": v} for k, v in {"Environment": "staging", **extra}.items()
                ],
                RoleARN=cloud.arn("StackRole"),
            )
            described = cfn.describe_stacks(StackName=name)["Stacks"][0]
            failed = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
                if e["ResourceStatus"].endswith("FAILED")
            ]

            assert (described["StackStatus"], failed) == ("CREATE_COMPLETE", []), stack
        checked = {d[1] for d in cloud.iam.decisions if d[0] == cloud.arn("StackRole") and d[3] == "Allow"}
        assert {"ec2:CreateVpc", "ecr:CreateRepository", "kms:CreateKey", "s3:CreateBucket"} <= checked
        assert {"secretsmanager:CreateSecret", "logs:CreateLogGroup", "budgets:ModifyBudget"} <= checked
