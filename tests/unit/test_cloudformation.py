"""The platform's CloudFormation stacks: valid, wired together as manifests/stacks.yaml says, and true to the seed.

Guards: a template cfn-lint rejects (named file, rule and path), drift from the seed's facts (VPC CIDR, the seven
``clinical-trials/<service>`` repositories, node group sizes, encrypted Multi-AZ data stores), a stack wired to a
parameter or output that does not exist or to a stack deployed later, and the house rules (tags, no literal
secrets or names, no ``Resource: "*"`` grants, data kept on delete).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_file
from cfnlint.decode import decode_str
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from controlplane import platform

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CFN_DIR = REPO / "manifests" / "cloudformation"
STACKS_FILE = REPO / "manifests" / "stacks.yaml"
K8S_DIR = REPO / "manifests" / "kubernetes"
TEMPLATES = sorted(CFN_DIR.glob("*.yaml"))
TEMPLATE_URL_LIMIT_BYTES = 1_000_000
RESOLVE_SECRET = "{{resolve:secretsmanager:"


# ---- helpers -------------------------------------------------------------------------------------------------


def lint_findings(path: Path) -> list[str]:
    """Every cfn-lint finding for ``path`` as ``file:line rule path: message`` (warnings count: suppress in place)."""
    return [
        f"{match.filename}:{match.linenumber} {match.rule.id} {'/'.join(str(p) for p in match.path)}: {match.message}"
        for match in lint_file(path)
    ]


def load(path: Path) -> dict[str, Any]:
    template, matches = decode_str(path.read_text())
    assert not matches, f"{path.name} does not parse: {matches}"
    assert template is not None
    return dict(template)


def template(name: str) -> dict[str, Any]:
    return load(CFN_DIR / name)


def resources(tpl: dict[str, Any], type_: str | None = None) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if type_ is None or v["Type"] == type_}


def props(tpl: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return dict(tpl["Resources"][logical_id].get("Properties", {}))


def stacks_manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(STACKS_FILE.read_text())
    return data


def walk(node: Any) -> Any:
    """Every dict and list inside ``node``, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def sub_text(value: Any) -> str:
    """The format string of a ``!Sub`` (either form); ``""`` for anything else."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return ""


# ---- cfn-lint ------------------------------------------------------------------------------------------------


def test_there_are_the_five_platform_templates() -> None:
    assert {p.name for p in TEMPLATES} == {"network.yaml", "eks.yaml", "ecr.yaml", "data.yaml", "storage.yaml"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_passes_cfn_lint_without_findings(path: Path) -> None:
    findings = lint_findings(path)
    assert not findings, "cfn-lint findings:\n" + "\n".join(findings)


def test_lint_names_file_and_missing_field_of_a_broken_template(tmp_path: Path) -> None:
    source = (CFN_DIR / "eks.yaml").read_text()
    broken_text = source.replace("      RoleArn: !GetAtt ClusterRole.Arn\n", "", 1)
    assert broken_text != source, "the fixture line vanished from eks.yaml; pick another required property"
    broken = tmp_path / "eks.yaml"
    broken.write_text(broken_text)

    findings = lint_findings(broken)

    assert any(
        str(broken) in f and "E3003" in f and "Resources/Cluster/Properties" in f and "'RoleArn'" in f for f in findings
    ), findings


# ---- template size -------------------------------------------------------------------------------------------


def test_templates_fit_their_delivery_and_bootstrap_templates_fit_inline() -> None:
    manifest = stacks_manifest()
    limit = manifest["inline_template_limit_bytes"]
    assert limit == 51_200
    sizes = {s["template"]: (CFN_DIR / s["template"]).stat().st_size for s in manifest["stacks"]}
    # The provisioning step always uploads to the artifacts bucket and uses TemplateURL (limit 1 MB) ...
    assert all(size <= TEMPLATE_URL_LIMIT_BYTES for size in sizes.values()), sizes
    # ... but bootstrap stacks are deployed by hand with a plain --template-file, so they must fit inline.
    oversized = sorted(t for t, size in sizes.items() if size > limit)
    bootstrap = {s["template"] for s in manifest["stacks"] if s.get("bootstrap")}
    assert not bootstrap & set(oversized), f"bootstrap templates over {limit} bytes: {oversized}"


# ---- stacks.yaml ---------------------------------------------------------------------------------------------


def test_stacks_manifest_lists_every_template_once_outside_the_lint_glob() -> None:
    listed = [s["template"] for s in stacks_manifest()["stacks"]]
    assert sorted(listed) == [p.name for p in TEMPLATES]
    assert STACKS_FILE.parent != CFN_DIR  # `cfn-lint manifests/cloudformation/*.yaml` must not see it


def test_stacks_manifest_wiring_names_real_parameters_and_outputs_of_earlier_stacks() -> None:
    manifest = stacks_manifest()
    seen: dict[str, dict[str, Any]] = {}
    for stack in manifest["stacks"]:
        tpl = template(stack["template"])
        for parameter, source in stack["wiring"].items():
            assert parameter in tpl["Parameters"], f"{stack['suffix']}: no parameter {parameter}"
            source_suffix, output = source.split(".")
            assert source_suffix in seen, f"{stack['suffix']}.{parameter} wired from {source_suffix}, not earlier"
            assert output in seen[source_suffix].get("Outputs", {}), f"{source}: no such output"
        seen[stack["suffix"]] = tpl


def test_stacks_manifest_accounts_for_every_template_parameter() -> None:
    manifest = stacks_manifest()
    common = set(manifest["common_parameters"])
    for stack in manifest["stacks"]:
        parameters = template(stack["template"])["Parameters"]
        supplied = common | set(stack["inputs"]) | set(stack["wiring"])
        assert set(parameters) == supplied, (stack["suffix"], set(parameters) ^ supplied)
        assert not set(stack["inputs"]) & set(stack["wiring"]), stack["suffix"]


def test_templates_share_nothing_by_export() -> None:
    for path in TEMPLATES:
        tpl = load(path)
        assert not any(isinstance(n, dict) and "Fn::ImportValue" in n for n in walk(tpl)), path.name
        assert not any("Export" in o for o in tpl.get("Outputs", {}).values()), path.name


def test_stacks_manifest_declares_the_iam_capabilities_each_template_needs() -> None:
    for stack in stacks_manifest()["stacks"]:
        iam = resources(template(stack["template"]))
        iam = {k: r for k, r in iam.items() if r["Type"].startswith("AWS::IAM::")}
        named = any("RoleName" in r.get("Properties", {}) for r in iam.values())
        capabilities = set(stack["capabilities"])
        if named:
            assert "CAPABILITY_NAMED_IAM" in capabilities, stack["suffix"]
        elif iam:
            assert capabilities & {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}, stack["suffix"]


def test_environment_parameter_is_staging_or_production_everywhere() -> None:
    for path in TEMPLATES:
        environment = load(path)["Parameters"]["Environment"]
        assert environment["AllowedValues"] == list(platform.ENVIRONMENTS), path.name
        assert "Default" not in environment, path.name


# ---- house rules ---------------------------------------------------------------------------------------------


def test_every_taggable_resource_carries_project_and_environment_tags() -> None:
    untagged = []
    for path in TEMPLATES:
        for logical_id, resource in resources(load(path)).items():
            schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
            if "Tags" not in schema["properties"]:
                continue
            tags = resource.get("Properties", {}).get("Tags")
            keys = set(tags) if isinstance(tags, dict) else {t["Key"] for t in tags or []}
            if not {"Project", "Environment"} <= keys:
                untagged.append(f"{path.name} {logical_id}")
    assert not untagged, untagged


READ_ONLY_ACTION = re.compile(r"^[a-z0-9-]+:(Describe|List|Get)[A-Za-z*]*$")


def test_no_identity_policy_grants_on_every_resource_or_uses_full_access() -> None:
    """``Resource: "*"`` only for read-only actions (Describe/List/Get: most support no resource-level scoping)."""
    for path in TEMPLATES:
        for logical_id, resource in resources(load(path), "AWS::IAM::Role").items():
            properties = resource["Properties"]
            for arn in properties.get("ManagedPolicyArns", []):
                assert "FullAccess" not in sub_text(arn), f"{path.name} {logical_id}: {sub_text(arn)}"
            for policy in properties.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    if statement["Resource"] != "*":
                        continue
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    writes = [a for a in actions if not READ_ONLY_ACTION.match(a)]
                    assert not writes, f"{path.name} {logical_id} {statement.get('Sid')}: {writes} on every resource"


NAME_PROPERTIES = {
    "RepositoryName",
    "RoleName",
    "BucketName",
    "LogGroupName",
    "Name",
    "AliasName",
    "NodegroupName",
    "DBInstanceIdentifier",
    "ReplicationGroupId",
    "TopicName",
}


def test_only_the_seeds_repository_names_are_literal() -> None:
    for path in TEMPLATES:
        for logical_id, resource in resources(load(path)).items():
            for key, value in resource.get("Properties", {}).items():
                if key in NAME_PROPERTIES and isinstance(value, str):
                    assert resource["Type"] == "AWS::ECR::Repository", f"{path.name} {logical_id}.{key}={value}"


STATEFUL = {
    "AWS::RDS::DBInstance",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::ECR::Repository",
    "AWS::Logs::LogGroup",
    "AWS::SecretsManager::Secret",
}
# Derived from retained data and rebuilt on create: the read replica (RDS takes no final snapshot of one) and the
# connection-URL secrets data.yaml composes from the retained credential secrets.
DERIVED = {("data.yaml", "AnalyticsReplica"), ("data.yaml", "DatabaseUrlSecret"), ("data.yaml", "RedisUrlSecret")}


def test_data_survives_stack_deletion_and_replacement() -> None:
    for path in TEMPLATES:
        for logical_id, resource in resources(load(path)).items():
            if resource["Type"] not in STATEFUL or (path.name, logical_id) in DERIVED:
                continue
            for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
                assert resource.get(policy) in {"Retain", "Snapshot"}, f"{path.name} {logical_id} {policy}"


def test_secrets_are_generated_or_built_only_from_dynamic_references() -> None:
    for path in TEMPLATES:
        for logical_id, resource in resources(load(path), "AWS::SecretsManager::Secret").items():
            properties = resource["Properties"]
            if "GenerateSecretString" in properties:
                assert "SecretString" not in properties
                continue
            sub = properties["SecretString"]["Fn::Sub"]
            assert isinstance(sub, list), f"{path.name} {logical_id}: values must come from the variable map"
            for name, value in sub[1].items():
                assert sub_text(value).startswith(RESOLVE_SECRET), f"{path.name} {logical_id} {name}"
    for logical_id in ("Database", "AnalyticsReplica", "Redis"):
        for key in ("MasterUsername", "MasterUserPassword", "AuthToken"):
            value = props(template("data.yaml"), logical_id).get(key)
            assert value is None or sub_text(value).startswith(RESOLVE_SECRET), (logical_id, key)


# ---- seed facts: network -------------------------------------------------------------------------------------


def test_vpc_is_the_seeds_cidr_with_three_azs_of_public_private_and_database_subnets() -> None:
    tpl = template("network.yaml")
    cidrs = tpl["Mappings"]["Cidrs"]
    assert cidrs["Vpc"]["Block"] == platform.VPC_CIDR
    assert props(tpl, "Vpc")["CidrBlock"] == {"Fn::FindInMap": ["Cidrs", "Vpc", "Block"]}
    assert tuple(cidrs["Database"][f"Az{i}"] for i in (1, 2, 3)) == platform.DATABASE_SUBNET_CIDRS
    subnets = resources(tpl, "AWS::EC2::Subnet")
    for tier in ("Public", "Private", "Database"):
        azs = [props(tpl, f"{tier}Subnet{i}")["AvailabilityZoneId"] for i in (1, 2, 3)]
        assert azs == [{"Fn::Select": [i, {"Ref": "AvailabilityZoneIds"}]} for i in range(3)], tier
    assert len(subnets) == 9


# EKS cannot place a cluster's control plane in these AZ IDs (EKS user guide, "Subnet requirements").
EKS_UNSUPPORTED_AZ_IDS = {"use1-az3", "usw1-az2", "cac1-az3"}


def test_azs_are_chosen_by_id_among_those_eks_supports_never_by_get_azs() -> None:
    for path in TEMPLATES:
        assert "Fn::GetAZs" not in str(load(path)), f"{path.name}: !GetAZs can pick an AZ EKS does not support"
    default = template("network.yaml")["Parameters"]["AvailabilityZoneIds"]["Default"].split(",")
    assert len(default) == len(set(default)) == 3
    assert not set(default) & EKS_UNSUPPORTED_AZ_IDS


def test_postgres_is_pinned_at_its_major_version_so_minor_upgrades_never_block_an_update() -> None:
    for logical_id, resource in resources(template("data.yaml"), "AWS::RDS::DBInstance").items():
        properties = resource["Properties"]
        if "EngineVersion" in properties:
            assert properties["EngineVersion"] == "16", logical_id
        assert properties["AutoMinorVersionUpgrade"] is True, logical_id


def test_nat_is_single_in_staging_and_per_az_in_production() -> None:
    tpl = template("network.yaml")
    nats = resources(tpl, "AWS::EC2::NatGateway")
    assert "Condition" not in nats["NatGateway1"]
    assert nats["NatGateway2"]["Condition"] == nats["NatGateway3"]["Condition"] == "IsProduction"
    assert props(tpl, "PrivateDefaultRoute3")["NatGatewayId"] == {
        "Fn::If": ["IsProduction", {"Ref": "NatGateway3"}, {"Ref": "NatGateway1"}]
    }


def test_vpc_endpoints_cover_s3_ecr_sts_logs_eks_and_secrets_manager() -> None:
    tpl = template("network.yaml")
    services = {
        sub_text(r["Properties"]["ServiceName"]).split("}.")[-1]
        for r in resources(tpl, "AWS::EC2::VPCEndpoint").values()
    }
    assert services == {"s3", "ecr.api", "ecr.dkr", "sts", "logs", "eks", "secretsmanager"}


# ---- seed facts: ECR -----------------------------------------------------------------------------------------


def test_one_immutable_scanned_encrypted_repository_per_service() -> None:
    repositories = resources(template("ecr.yaml"), "AWS::ECR::Repository")
    names = {r["Properties"]["RepositoryName"] for r in repositories.values()}
    assert names == {s.repository for s in platform.SERVICES}
    assert len(repositories) == 7
    for logical_id, resource in repositories.items():
        properties = resource["Properties"]
        assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}, logical_id
        assert properties["ImageTagMutability"] == "IMMUTABLE", logical_id
        assert properties["EncryptionConfiguration"]["EncryptionType"] == "KMS", logical_id
        policy = sub_text(properties["LifecyclePolicy"]["LifecyclePolicyText"])
        assert '"tagStatus": "untagged"' in policy, logical_id
        assert "${UntaggedExpiryDays}" in policy, logical_id
        assert '"tagStatus": "tagged"' in policy, logical_id
        assert "${KeepTaggedImages}" in policy, logical_id


# ---- seed facts: EKS -----------------------------------------------------------------------------------------


def test_node_groups_follow_the_seed_per_environment() -> None:
    tpl = template("eks.yaml")
    sizes = tpl["Mappings"]["NodeGroups"]
    assert (sizes["staging"]["GeneralType"], sizes["staging"]["GeneralDesired"]) == ("t3.medium", 2)
    production = sizes["production"]
    assert (production["GeneralType"], production["GeneralMin"], production["GeneralMax"]) == ("t3.large", 3, 10)
    for environment in platform.ENVIRONMENTS:
        for group in ("General", "Compute", "Memory", "Spot"):
            s = sizes[environment]
            assert s[f"{group}Min"] <= s[f"{group}Desired"] <= s[f"{group}Max"], (environment, group)
    groups = resources(tpl, "AWS::EKS::Nodegroup")
    assert set(groups) == {"GeneralNodeGroup", "ComputeIntensiveNodeGroup", "MemoryOptimizedNodeGroup", "SpotNodeGroup"}
    assert props(tpl, "SpotNodeGroup")["CapacityType"] == "SPOT"
    single_az_in_staging = {
        "Fn::If": ["IsProduction", {"Ref": "PrivateSubnetIds"}, [{"Fn::Select": [0, {"Ref": "PrivateSubnetIds"}]}]]
    }
    for logical_id in groups:
        assert props(tpl, logical_id)["Subnets"] == single_az_in_staging, logical_id


def test_cluster_is_private_in_production_encrypted_and_logged() -> None:
    cluster = props(template("eks.yaml"), "Cluster")
    vpc = cluster["ResourcesVpcConfig"]
    assert vpc["EndpointPrivateAccess"] is True
    # A public endpoint only outside production and only for the CIDRs given; none by default.
    tpl = template("eks.yaml")
    assert vpc["EndpointPublicAccess"] == {"Fn::If": ["HasPublicEndpoint", True, False]}
    assert vpc["PublicAccessCidrs"] == {
        "Fn::If": ["HasPublicEndpoint", {"Ref": "PublicAccessCidrs"}, {"Ref": "AWS::NoValue"}]
    }
    assert tpl["Parameters"]["PublicAccessCidrs"]["Default"] == ""
    assert tpl["Conditions"]["HasPublicEndpoint"] == {
        "Fn::And": [
            {"Fn::Not": [{"Condition": "IsProduction"}]},
            {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "PublicAccessCidrs"}]}, ""]}]},
        ]
    }
    assert cluster["EncryptionConfig"][0]["Resources"] == ["secrets"]
    logged = {t["Type"] for t in cluster["Logging"]["ClusterLogging"]["EnabledTypes"]}
    assert logged == {"api", "audit", "authenticator", "controllerManager", "scheduler"}


def test_nodes_require_imdsv2_with_one_hop_so_pods_cannot_reach_the_instance_role() -> None:
    metadata = props(template("eks.yaml"), "NodeLaunchTemplate")["LaunchTemplateData"]["MetadataOptions"]
    assert metadata == {"HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}


def test_deploy_and_drift_roles_get_only_the_shipped_rbac_through_their_groups() -> None:
    entry = props(template("eks.yaml"), "DeployRoleAccessEntry")
    drift = props(template("eks.yaml"), "DriftRoleAccessEntry")
    assert entry["PrincipalArn"] == {"Ref": "DeployRoleArn"}
    assert drift["PrincipalArn"] == {"Ref": "DriftRoleArn"}
    assert "AccessPolicies" not in entry, "no EKS access policy: the shipped RBAC is the whole permission set"
    assert "AccessPolicies" not in drift
    bootstrap = list(yaml.safe_load_all((REPO / "manifests" / "cluster-bootstrap" / "rbac.yaml").read_text()))
    bound = {
        s["name"]
        for doc in bootstrap
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for s in doc["subjects"]
        if s["kind"] == "Group"
    }
    assert sorted(bound) == ["clinical-trials-drift", "clinical-trials-platform"]
    assert entry["KubernetesGroups"] == ["clinical-trials-platform"]
    assert drift["KubernetesGroups"] == ["clinical-trials-drift"]
    namespaced = {doc["metadata"].get("namespace") for doc in bootstrap if doc["kind"] in ("Role", "RoleBinding")}
    catalog = yaml.safe_load((REPO / "manifests" / "addons" / "addons.yaml").read_text())
    assert namespaced == {platform.NAMESPACE} | {a["namespace"] for a in catalog["addons"].values()}


MANAGED_ADDONS = {
    "vpc-cni",
    "coredns",
    "kube-proxy",
    "aws-ebs-csi-driver",
    "eks-pod-identity-agent",
    "metrics-server",
    "amazon-cloudwatch-observability",
}


def test_managed_addons_are_pinned_for_every_kubernetes_version_with_their_roles() -> None:
    tpl = template("eks.yaml")
    addons = {r["Properties"]["AddonName"]: r["Properties"] for r in resources(tpl, "AWS::EKS::Addon").values()}
    assert set(addons) == MANAGED_ADDONS
    versions = tpl["Mappings"]["AddonVersions"]
    assert set(versions) == set(tpl["Parameters"]["KubernetesVersion"]["AllowedValues"])
    for name, properties in addons.items():
        mapping, key, column = properties["AddonVersion"]["Fn::FindInMap"]
        assert (mapping, key) == ("AddonVersions", {"Ref": "KubernetesVersion"}), name
        for kubernetes, pins in versions.items():
            assert re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", pins[column]), (name, kubernetes, pins[column])
    for kubernetes, pins in versions.items():  # kube-proxy follows the cluster's minor version
        assert pins["KubeProxy"].startswith(f"v{kubernetes}."), pins["KubeProxy"]
    assert "ServiceAccountRoleArn" in addons["vpc-cni"]
    assert "ServiceAccountRoleArn" in addons["aws-ebs-csi-driver"]
    association = addons["amazon-cloudwatch-observability"]["PodIdentityAssociations"]
    assert association == [
        {"ServiceAccount": "cloudwatch-agent", "RoleArn": {"Fn::GetAtt": ["CloudWatchObservabilityRole", "Arn"]}}
    ]


def test_vpc_cni_enforces_network_policies() -> None:
    cni = props(template("eks.yaml"), "VpcCniAddon")
    assert json.loads(cni["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}


def test_vendored_addons_get_pod_identity_roles_trusted_only_by_the_pod_identity_service() -> None:
    tpl = template("eks.yaml")
    associations = {
        (p["Namespace"], p["ServiceAccount"]): p["RoleArn"]["Fn::GetAtt"][0]
        for p in (r["Properties"] for r in resources(tpl, "AWS::EKS::PodIdentityAssociation").values())
    }
    assert associations == {
        ("kube-system", "aws-load-balancer-controller"): "LoadBalancerControllerRole",
        ("kube-system", "cluster-autoscaler"): "ClusterAutoscalerRole",
    }
    for role in [*associations.values(), "CloudWatchObservabilityRole"]:
        (statement,) = props(tpl, role)["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_cluster_autoscaler_resizes_only_this_clusters_node_groups() -> None:
    policy = props(template("eks.yaml"), "ClusterAutoscalerRole")["Policies"][0]["PolicyDocument"]
    (resize,) = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert resize["Condition"]["StringEquals"] == {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        "aws:ResourceTag/eks:cluster-name": {"Ref": "ClusterName"},
    }


def _logical(service_name: str) -> str:
    return "".join(part.capitalize() for part in service_name.split("-")) + "Role"


def _external_secret_keys(service_name: str) -> set[str]:
    path = K8S_DIR / "services" / f"{service_name}.yaml"
    if not path.exists():
        return set()
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "ExternalSecret"]
    return {item["remoteRef"]["key"] for d in docs for item in d["spec"].get("data", [])}


@pytest.mark.parametrize("service", platform.SERVICES, ids=lambda s: s.name)
def test_each_service_has_an_irsa_role_trusted_by_its_service_account_reading_its_secrets(
    service: platform.Service,
) -> None:
    tpl = template("eks.yaml")
    logical_id = _logical(service.name)
    role = props(tpl, logical_id)
    assert sub_text(role["RoleName"]) == f"clinical-trials-${{Environment}}-{service.name}"
    trust = sub_text(role["AssumeRolePolicyDocument"])
    assert f'"${{Issuer}}:sub": "system:serviceaccount:{platform.NAMESPACE}:{service.name}"' in trust
    assert '"Federated": "${OidcProvider}"' in trust
    (policy,) = role["Policies"]
    (secrets,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "ReadOwnSecrets"]
    keys = {
        re.search(r"clinical-trials/\$\{Environment\}/([a-z-]+)-\?{6}$", sub_text(r)).group(1)  # type: ignore[union-attr]
        for r in secrets["Resource"]
    }
    assert ("database" in keys) == service.needs_database
    assert ("redis" in keys) == service.needs_redis
    assert _external_secret_keys(service.name) <= keys
    assert f"{logical_id}Arn" in tpl["Outputs"]


def test_irsa_role_names_match_the_kubernetes_sides_pattern() -> None:
    for environment in platform.ENVIRONMENTS:
        values_file = K8S_DIR / "environments" / f"{environment}.yaml"
        pattern = yaml.safe_load(values_file.read_text())["irsa_role_arn_pattern"]
        assert pattern.endswith(":role/clinical-trials-{environment}-{service}"), pattern
        assert yaml.safe_load(values_file.read_text())["secrets_prefix"] == f"clinical-trials/{environment}"


# ---- seed facts: data stores ---------------------------------------------------------------------------------


def test_postgres_is_encrypted_multi_az_in_production_backed_up_and_snapshotted() -> None:
    tpl = template("data.yaml")
    database = tpl["Resources"]["Database"]
    properties = database["Properties"]
    assert properties["StorageEncrypted"] is True
    assert properties["MultiAZ"] == {"Fn::If": ["IsProduction", True, False]}
    assert properties["PubliclyAccessible"] is False
    assert all(days >= 7 for days in (s["BackupDays"] for s in tpl["Mappings"]["Sizes"].values()))
    assert database["DeletionPolicy"] == "Snapshot"
    assert props(tpl, "AnalyticsReplica")["SourceDBInstanceIdentifier"] == {"Ref": "Database"}
    alarmed = {r["Properties"]["MetricName"] for r in resources(tpl, "AWS::CloudWatch::Alarm").values()}
    assert {"CPUUtilization", "FreeStorageSpace", "DatabaseConnections", "ReplicaLag"} <= alarmed


def test_redis_is_encrypted_in_transit_and_at_rest_with_failover_in_production() -> None:
    redis = props(template("data.yaml"), "Redis")
    assert redis["AtRestEncryptionEnabled"] is True
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["AutomaticFailoverEnabled"] == {"Fn::If": ["IsProduction", True, False]}
    assert redis["MultiAZEnabled"] == {"Fn::If": ["IsProduction", True, False]}


def test_data_stores_admit_only_the_cluster_security_group() -> None:
    tpl = template("data.yaml")
    for logical_id, port in (
        ("DatabaseSecurityGroup", platform.POSTGRES_PORT),
        ("RedisSecurityGroup", platform.REDIS_PORT),
    ):
        (rule,) = props(tpl, logical_id)["SecurityGroupIngress"]
        assert rule["SourceSecurityGroupId"] == {"Ref": "ClusterSecurityGroupId"}, logical_id
        assert rule["FromPort"] == rule["ToPort"] == port, logical_id
        assert "CidrIp" not in rule, logical_id


# ---- seed facts: storage -------------------------------------------------------------------------------------


def test_buckets_are_encrypted_versioned_private_tls_only_and_archive_to_glacier() -> None:
    tpl = template("storage.yaml")
    buckets = resources(tpl, "AWS::S3::Bucket")
    assert set(buckets) == {"DocumentsBucket", "GeneratedDataBucket", "BackupsBucket", "AccessLogsBucket"}
    policies = {
        r["Properties"]["Bucket"]["Ref"]: r["Properties"] for r in resources(tpl, "AWS::S3::BucketPolicy").values()
    }
    for logical_id, resource in buckets.items():
        properties = resource["Properties"]
        encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        # S3 server access log delivery supports SSE-S3 only on its destination.
        expected = "AES256" if logical_id == "AccessLogsBucket" else "aws:kms"
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == expected, logical_id
        if logical_id != "AccessLogsBucket":
            logging = properties["LoggingConfiguration"]
            assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}, logical_id
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert all(properties["PublicAccessBlockConfiguration"].values()), logical_id
        classes = {
            t["StorageClass"]
            for rule in properties["LifecycleConfiguration"]["Rules"]
            for t in rule.get("Transitions", []) + rule.get("NoncurrentVersionTransitions", [])
        }
        assert classes & {"GLACIER", "GLACIER_IR", "DEEP_ARCHIVE"}, logical_id
        statement = policies[logical_id]["PolicyDocument"]["Statement"][0]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (delivery,) = policies["AccessLogsBucket"]["PolicyDocument"]["Statement"][1:]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert len(delivery["Condition"]["ArnLike"]["aws:SourceArn"]) == 3


def test_log_groups_have_retention_and_a_budget_alerts_by_email() -> None:
    tpl = template("storage.yaml")
    groups = resources(tpl, "AWS::Logs::LogGroup")
    assert len(groups) == len(platform.SERVICES)
    assert all("RetentionInDays" in g["Properties"] for g in groups.values())
    (budget,) = resources(tpl, "AWS::Budgets::Budget").values()
    # No e-mail given (the control plane passes AlertEmail empty by default): no notifications, no subscription.
    condition, notifications, otherwise = budget["Properties"]["NotificationsWithSubscribers"]["Fn::If"]
    assert (condition, otherwise) == ("HasAlertEmail", {"Ref": "AWS::NoValue"})
    assert tpl["Conditions"]["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    subscribers = [s for n in notifications for s in n["Subscribers"]]
    assert subscribers
    assert all(s["Address"] == {"Ref": "AlertEmail"} for s in subscribers)
