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


def test_the_stack_role_is_allowed_every_call_the_eks_and_data_templates_need() -> None:
    """eks and data cannot be created on moto (it skips EKS and ElastiCache and then fails the stack): their
    resources are authorized one by one as CloudFormation would, with the names CloudFormation would give them."""
    from cfnlint.decode import decode_str  # noqa: PLC0415

    from local.aws.authz import Principal  # noqa: PLC0415
    from local.aws.cfn_authz import Arns, resource_accesses  # noqa: PLC0415
    from local.aws.iam import bounded, evaluate  # noqa: PLC0415
    from local.aws.template import Pseudo, Resolver  # noqa: PLC0415
    from local.pipeline import parameters  # noqa: PLC0415

    with LocalCloud(DEFAULT_TEMPLATE, parameters=parameters()) as cloud:
        iam, role = cloud.iam, cloud.arn("StackRole")
        principal = Principal(
            f"arn:aws:sts::{cloud.account_id}:assumed-role/{role.rsplit('/', 1)[-1]}/AWSCloudFormation", role
        )
        secrets = f"arn:aws:secretsmanager:{cloud.region}:{cloud.account_id}:secret:clinical-trials/staging/"
        given = {
            "Environment": "staging",
            "ClusterName": "sts-staging",
            "PermissionsBoundaryArn": str(cloud.ref("PlatformBoundary")),
            "DeployRoleArn": cloud.arn("ClusterDeployRole"),
            "PrivateSubnetIds": ["subnet-1", "subnet-2", "subnet-3"],
            "DatabaseSubnetIds": ["subnet-4", "subnet-5", "subnet-6"],
            "PlatformKmsKeyArn": f"arn:aws:kms:{cloud.region}:{cloud.account_id}:key/platform",
            "DatabaseCredentialsSecretArn": f"{secrets}database-credentials-AbCdEf",
            "RedisAuthSecretArn": f"{secrets}redis-auth-AbCdEf",
        }
        refused, checked = [], 0
        for stack in ("eks", "data"):
            template, _ = decode_str((TEMPLATES / f"{stack}.yaml").read_text())
            assert template is not None
            stack_name = f"synthetictrialstudio-staging-{stack}"
            declared = {k: v.get("Default", f"local-{k}") for k, v in template["Parameters"].items()}
            resolver = Resolver(
                pseudo=Pseudo(cloud.region, cloud.account_id, stack_name),
                parameters={**declared, **{k: v for k, v in given.items() if k in declared}},
                mappings=dict(template.get("Mappings") or {}),
                condition_defs=dict(template.get("Conditions") or {}),
            )
            arns = Arns(cloud.region, cloud.account_id, lambda _role: given["PermissionsBoundaryArn"])
            for logical, body in template["Resources"].items():  # names first: properties refer to them
                props = body.get("Properties") or {}
                named = (
                    "RoleName",
                    "Name",
                    "LogGroupName",
                    "NodegroupName",
                    "DBInstanceIdentifier",
                    "ReplicationGroupId",
                )
                name = next((props[k] for k in named if k in props), f"{stack_name}-{logical}-LOCAL")
                name = resolver.resolve(name) if not isinstance(name, str) else name
                resolver.refs[logical] = name
                resolver.attrs[logical] = {"Arn": arns.role(name) if body["Type"] == "AWS::IAM::Role" else name}
            issuer = f"https://oidc.eks.{cloud.region}.amazonaws.com/id/LOCAL"
            resolver.attrs.setdefault("Cluster", {})["OpenIdConnectIssuerUrl"] = issuer  # what EKS reports
            for logical, body in template["Resources"].items():
                if body.get("Condition") and not resolver.condition(body["Condition"]):
                    continue
                props = {}
                for key, value in (body.get("Properties") or {}).items():
                    try:
                        props[key] = resolver.resolve(value)
                    except Exception:  # noqa: BLE001 - an attribute only AWS knows (endpoints, OIDC issuer)
                        props[key] = None
                accesses = resource_accesses(body["Type"], props, str(resolver.refs[logical]), arns)
                assert accesses is not None, body["Type"]
                for access in accesses:
                    checked += 1
                    if access.action.startswith("kms:") and ":key/" in access.resource:  # key policies: root -> IAM
                        decision = bounded(
                            evaluate(iam.policies(role), access.action, access.resource, access.context),
                            iam.boundary(role),
                            access.action,
                            access.resource,
                            access.context,
                        )
                    else:
                        decision = iam.decide(principal, access)
                    if decision != "Allow":
                        refused.append(f"{stack} {logical}: {access.action} on {access.resource} -> {decision}")

    assert refused == [], "\n".join(refused)
    assert checked > 40
