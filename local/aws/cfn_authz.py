"""What CloudFormation is authorized to do for each resource of a stack, as the stack's service role (or its caller).

CloudFormation creates and updates a stack's resources with the permissions of the role passed as ``RoleARN`` (else
the caller's): each resource handler calls the service's API, and IAM decides each call. :data:`RESOURCE_ACCESSES`
maps each resource type the platform templates (and the tests' small catalogs) use to the authorizations its
handler needs - the create call on the resource's ARN with its condition keys (``iam:PermissionsBoundary`` for
roles, ``iam:PassedToService`` for roles handed to a service) and the calls its properties add (encryption,
versioning, tags, inline policies). The primary actions are the resource schemas' handler permissions; the list is
what the handler must call for the given properties (a subset of the schema's list, which names every call the
handler may make).

A type missing from the table fails the stack with a reason naming it ("add it to the table"), as an unmapped API
operation does in :mod:`local.aws.authz`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from local.aws.authz import Access

# (properties resolved, physical id, Arns) -> authorizations
Mapper = Callable[[Mapping[str, Any], str, "Arns"], list[Access]]


class Arns:
    """ARN builders for one account and region, plus the permissions boundary of an existing role."""

    def __init__(self, region: str, account: str, role_boundary: Callable[[str], str | None]) -> None:
        self.region = region
        self.account = account
        self.role_boundary = role_boundary

    def of(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def role(self, name_or_arn: str) -> str:
        return name_or_arn if name_or_arn.startswith("arn:") else self.of("iam", f"role/{name_or_arn}", region=False)


def _name(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _passed(role_arn: Any, service: str) -> list[Access]:
    """``iam:PassRole`` of a role handed to ``service`` (nothing when the property is absent)."""
    if not isinstance(role_arn, str) or not role_arn:
        return []
    return [Access("iam:PassRole", role_arn, {"iam:PassedToService": [service]})]


def _if(props: Mapping[str, Any], prop: str, action: str, resource: str) -> list[Access]:
    return [Access(action, resource)] if props.get(prop) not in (None, "", [], {}) else []


def _role(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = arns.role(physical)
    boundary = _name(props.get("PermissionsBoundary"))
    context = {"iam:PermissionsBoundary": [boundary]} if boundary else {}
    accesses = [Access("iam:CreateRole", arn, context)]
    accesses += [Access("iam:PutRolePolicy", arn, context) for _ in props.get("Policies") or []]
    accesses += [
        Access("iam:AttachRolePolicy", arn, {**context, "iam:PolicyARN": [_name(policy)]})
        for policy in props.get("ManagedPolicyArns") or []
    ]
    return accesses + _if(props, "Tags", "iam:TagRole", arn)


def _boundary_of(role: str, arns: Arns) -> dict[str, list[str]]:
    boundary = arns.role_boundary(role)
    return {"iam:PermissionsBoundary": [boundary]} if boundary else {}


def _managed_policy(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    name = physical.rsplit("/", 1)[-1]
    accesses = [Access("iam:CreatePolicy", arns.of("iam", f"policy/{name}", region=False))]
    for role in props.get("Roles") or []:
        context = {**_boundary_of(_name(role), arns), "iam:PolicyARN": [physical]}
        accesses.append(Access("iam:AttachRolePolicy", arns.role(_name(role)), context))
    return accesses


def _policy(props: Mapping[str, Any], _physical: str, arns: Arns) -> list[Access]:
    return [
        Access("iam:PutRolePolicy", arns.role(_name(role)), _boundary_of(_name(role), arns))
        for role in props.get("Roles") or []
    ]


def _oidc_provider(props: Mapping[str, Any], _physical: str, arns: Arns) -> list[Access]:
    host = _name(props.get("Url")).removeprefix("https://") or "*"
    return [Access("iam:CreateOpenIDConnectProvider", arns.of("iam", f"oidc-provider/{host}", region=False))]


_BUCKET_PROPERTIES = {
    "BucketEncryption": "s3:PutEncryptionConfiguration",
    "VersioningConfiguration": "s3:PutBucketVersioning",
    "PublicAccessBlockConfiguration": "s3:PutBucketPublicAccessBlock",
    "LifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "LoggingConfiguration": "s3:PutBucketLogging",
    "OwnershipControls": "s3:PutBucketOwnershipControls",
    "Tags": "s3:PutBucketTagging",
}


def _bucket(props: Mapping[str, Any], physical: str, _arns: Arns) -> list[Access]:
    arn = f"arn:aws:s3:::{physical}"
    accesses = [Access("s3:CreateBucket", arn)]
    for prop, action in _BUCKET_PROPERTIES.items():
        accesses += _if(props, prop, action, arn)
    return accesses


def _bucket_policy(props: Mapping[str, Any], _physical: str, _arns: Arns) -> list[Access]:
    return [Access("s3:PutBucketPolicy", f"arn:aws:s3:::{_name(props.get('Bucket'))}")]


def _key(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = physical if physical.startswith("arn:") else arns.of("kms", f"key/{physical}")
    accesses = [Access("kms:CreateKey", "*")]
    if props.get("EnableKeyRotation"):
        accesses.append(Access("kms:EnableKeyRotation", arn))
    return accesses + _if(props, "Tags", "kms:TagResource", arn)


def _alias(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    target = _name(props.get("TargetKeyId"))
    key = target if target.startswith("arn:") else arns.of("kms", f"key/{target}")
    return [Access("kms:CreateAlias", arns.of("kms", physical)), Access("kms:CreateAlias", key)]


def _topic(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = physical if physical.startswith("arn:") else arns.of("sns", physical)
    accesses = [Access("sns:CreateTopic", arn), *_if(props, "Tags", "sns:TagResource", arn)]
    return accesses + [Access("sns:Subscribe", arn) for _ in props.get("Subscription") or []]


def _subscription(props: Mapping[str, Any], _physical: str, _arns: Arns) -> list[Access]:
    return [Access("sns:Subscribe", _name(props.get("TopicArn")))]


def _topic_policy(props: Mapping[str, Any], _physical: str, _arns: Arns) -> list[Access]:
    return [Access("sns:SetTopicAttributes", _name(topic)) for topic in props.get("Topics") or []]


def _queue(_props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    name = physical.rsplit("/", 1)[-1]
    return [Access("sqs:CreateQueue", arns.of("sqs", name))]


def _log_group(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = arns.of("logs", f"log-group:{physical}")
    accesses = [Access("logs:CreateLogGroup", arn)]
    return accesses + _if(props, "RetentionInDays", "logs:PutRetentionPolicy", arn)


def _repository(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = arns.of("ecr", f"repository/{physical}")
    accesses = [Access("ecr:CreateRepository", arn)]
    accesses += _if(props, "LifecyclePolicy", "ecr:PutLifecyclePolicy", arn)
    accesses += _if(props, "RepositoryPolicyText", "ecr:SetRepositoryPolicy", arn)
    return accesses + _if(props, "Tags", "ecr:TagResource", arn)


def _secret(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    name = _name(props.get("Name")) or physical
    accesses = [Access("secretsmanager:CreateSecret", arns.of("secretsmanager", f"secret:{name}-AbCdEf"))]
    return accesses + _if(props, "GenerateSecretString", "secretsmanager:GetRandomPassword", "*")


def _secret_attachment(props: Mapping[str, Any], _physical: str, _arns: Arns) -> list[Access]:
    """The secret gains the target's host and port: read and written back."""
    secret = _name(props.get("SecretId"))
    return [Access("secretsmanager:GetSecretValue", secret), Access("secretsmanager:PutSecretValue", secret)]


def _cluster(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    arn = arns.of("eks", f"cluster/{_name(props.get('Name')) or physical}")
    return [Access("eks:CreateCluster", arn), *_passed(props.get("RoleArn"), "eks.amazonaws.com")]


def _nodegroup(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    cluster = _name(props.get("ClusterName"))
    name = _name(props.get("NodegroupName")) or physical.rsplit("/", 1)[-1]
    arn = arns.of("eks", f"nodegroup/{cluster}/{name}/local")
    return [Access("eks:CreateNodegroup", arn), *_passed(props.get("NodeRole"), "eks.amazonaws.com")]


def _addon(props: Mapping[str, Any], _physical: str, arns: Arns) -> list[Access]:
    cluster, name = _name(props.get("ClusterName")), _name(props.get("AddonName"))
    accesses = [Access("eks:CreateAddon", arns.of("eks", f"addon/{cluster}/{name}/local"))]
    accesses += _passed(props.get("ServiceAccountRoleArn"), "eks.amazonaws.com")
    for association in props.get("PodIdentityAssociations") or []:
        accesses += _passed(association.get("RoleArn"), "pods.eks.amazonaws.com")
    return accesses


def _access_entry(props: Mapping[str, Any], _physical: str, arns: Arns) -> list[Access]:
    cluster = _name(props.get("ClusterName"))
    arn = arns.of("eks", f"access-entry/{cluster}/role/{arns.account}/local")
    accesses = [Access("eks:CreateAccessEntry", arn)]
    return accesses + _if(props, "AccessPolicies", "eks:AssociateAccessPolicy", arn)


def _pod_identity(props: Mapping[str, Any], _physical: str, arns: Arns) -> list[Access]:
    cluster = _name(props.get("ClusterName"))
    arn = arns.of("eks", f"cluster/{cluster}")
    return [Access("eks:CreatePodIdentityAssociation", arn), *_passed(props.get("RoleArn"), "pods.eks.amazonaws.com")]


def _budget(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
    name = _name((props.get("Budget") or {}).get("BudgetName")) or physical
    return [Access("budgets:ModifyBudget", arns.of("budgets", f"budget/{name}", region=False))]


def _any(action: str) -> Mapper:
    """Services whose create action takes no resource ARN before the resource exists (EC2's, generated names)."""
    return lambda _props, _physical, _arns: [Access(action, "*")]


def _named(action: str, service: str, kind: str, prop: str | None = None) -> Mapper:
    def mapper(props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access]:
        name = (_name(props.get(prop)) if prop else "") or physical
        return [Access(action, arns.of(service, f"{kind}:{name}"))]

    return mapper


RESOURCE_ACCESSES: dict[str, Mapper] = {
    "AWS::IAM::Role": _role,
    "AWS::IAM::ManagedPolicy": _managed_policy,
    "AWS::IAM::Policy": _policy,
    "AWS::IAM::OIDCProvider": _oidc_provider,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::KMS::Key": _key,
    "AWS::KMS::Alias": _alias,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SQS::Queue": _queue,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::ECR::Repository": _repository,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::SecretsManager::SecretTargetAttachment": _secret_attachment,
    "AWS::EKS::Cluster": _cluster,
    "AWS::EKS::Nodegroup": _nodegroup,
    "AWS::EKS::Addon": _addon,
    "AWS::EKS::AccessEntry": _access_entry,
    "AWS::EKS::PodIdentityAssociation": _pod_identity,
    "AWS::CloudWatch::Alarm": _named("cloudwatch:PutMetricAlarm", "cloudwatch", "alarm", "AlarmName"),
    "AWS::Budgets::Budget": _budget,
    "AWS::RDS::DBInstance": _named("rds:CreateDBInstance", "rds", "db", "DBInstanceIdentifier"),
    "AWS::RDS::DBSubnetGroup": _named("rds:CreateDBSubnetGroup", "rds", "subgrp", "DBSubnetGroupName"),
    "AWS::RDS::DBParameterGroup": _named("rds:CreateDBParameterGroup", "rds", "pg", "DBParameterGroupName"),
    "AWS::ElastiCache::ReplicationGroup": _named(
        "elasticache:CreateReplicationGroup", "elasticache", "replicationgroup", "ReplicationGroupId"
    ),
    "AWS::ElastiCache::SubnetGroup": _named(
        "elasticache:CreateCacheSubnetGroup", "elasticache", "subnetgroup", "CacheSubnetGroupName"
    ),
    "AWS::EC2::VPC": _any("ec2:CreateVpc"),
    "AWS::EC2::Subnet": _any("ec2:CreateSubnet"),
    "AWS::EC2::InternetGateway": _any("ec2:CreateInternetGateway"),
    "AWS::EC2::VPCGatewayAttachment": _any("ec2:AttachInternetGateway"),
    "AWS::EC2::EIP": _any("ec2:AllocateAddress"),
    "AWS::EC2::NatGateway": _any("ec2:CreateNatGateway"),
    "AWS::EC2::RouteTable": _any("ec2:CreateRouteTable"),
    "AWS::EC2::Route": _any("ec2:CreateRoute"),
    "AWS::EC2::SubnetRouteTableAssociation": _any("ec2:AssociateRouteTable"),
    "AWS::EC2::SecurityGroup": _any("ec2:CreateSecurityGroup"),
    "AWS::EC2::SecurityGroupIngress": _any("ec2:AuthorizeSecurityGroupIngress"),
    "AWS::EC2::VPCEndpoint": _any("ec2:CreateVpcEndpoint"),
    "AWS::EC2::LaunchTemplate": _any("ec2:CreateLaunchTemplate"),
}


def resource_accesses(resource_type: str, props: Mapping[str, Any], physical: str, arns: Arns) -> list[Access] | None:
    """The authorizations CloudFormation needs to create or update one resource (None: the type is not mapped)."""
    mapper = RESOURCE_ACCESSES.get(resource_type)
    return None if mapper is None else mapper(props, physical, arns)


__all__ = ["RESOURCE_ACCESSES", "Arns", "resource_accesses"]
