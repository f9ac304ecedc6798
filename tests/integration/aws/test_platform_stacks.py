"""The platform's own CloudFormation templates on the local cloud, as far as moto models their resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.aws import LocalCloud

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
