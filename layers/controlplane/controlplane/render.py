"""Render the platform's Kubernetes objects for one environment: explicit, typed, no template language.

``manifests/kubernetes/`` holds real YAML that people edit. Rendering loads those documents and changes them only
at well-known places, from the environment's typed values file (``environments/<env>.yaml``):

- every container image ``clinical-trials/<service>`` (a placeholder) becomes
  ``<account>.dkr.ecr.<region>.amazonaws.com/clinical-trials/<service>@sha256:<digest>``;
- Deployment ``spec.replicas`` (only for a workload no HPA targets, see below) and the main container's
  ``resources``; HPA ``minReplicas``/``maxReplicas``;
- ServiceAccount ``eks.amazonaws.com/role-arn``; Ingress certificate annotation and rule hosts;
- ConfigMap ``platform-settings`` (environment, log level, feature flags); ExternalSecret remote keys (prefixed);
  ClusterSecretStore region;
- the ownership, part-of and environment labels on every object (and pod template).

Every problem is reported together, naming the file and the field, before anything is returned.

A Deployment or StatefulSet that a HorizontalPodAutoscaler of the same render targets never carries
``spec.replicas`` (rendering removes it if a file has it): the HPA owns the field. Applying it would make every deploy
reset the workload to the configured count, fighting the HPA (the Kubernetes guidance "Migrating Deployments and
StatefulSets to horizontal autoscaling"). :func:`without_hpa_replicas` does the same to objects recorded by an older
release; ``controlplane.kube.apply`` hands the field over when an earlier deploy still owns it, so dropping it never
resets the workload to the default of 1.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controlplane import platform
from controlplane.errors import ManifestValidationError
from controlplane.models.addons import ADDON_LABEL, ADDON_SPEC_ANNOTATION, PLACEHOLDERS, AddonCatalog, AddonSpec
from controlplane.models.kube import ObjectRef
from controlplane.models.release import validation_problems

if TYPE_CHECKING:
    from controlplane.settings import Settings

ENVIRONMENTS_DIR: Final = "environments"
CRDS_DIR: Final = "crds"
# The vendored add-ons live beside the Kubernetes bundle (manifests/addons next to manifests/kubernetes); their files
# are part of the bundle (and its hash) under this prefix.
ADDONS_DIR: Final = "addons"
ADDONS_CATALOG: Final = "addons.yaml"
ADDONS_PREFIX: Final = f"../{ADDONS_DIR}/"
PLATFORM_SETTINGS: Final = "platform-settings"
IRSA_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
CERTIFICATE_ANNOTATION: Final = "alb.ingress.kubernetes.io/certificate-arn"

DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
ACCOUNT_RE: Final = re.compile(r"^\d{12}$")
REGION_RE: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_PLACEHOLDER_RE: Final = re.compile(rf"^{re.escape(platform.REPOSITORY_PREFIX)}(?P<service>[a-z0-9-]+)$")

# Dependency order of server-side apply. Kinds not listed go last: they may depend on anything.
_APPLY_TIERS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "Namespace": 0,
        "CustomResourceDefinition": 0,
        "ConfigMap": 1,
        "Secret": 1,
        "ExternalSecret": 1,
        "SecretStore": 1,
        "ClusterSecretStore": 1,
        "ServiceAccount": 1,
        "Role": 1,
        "ClusterRole": 1,
        "RoleBinding": 1,
        "ClusterRoleBinding": 1,
        "StorageClass": 1,
        "PersistentVolumeClaim": 1,
        "NetworkPolicy": 2,
        "Service": 3,
        "Deployment": 4,
        "StatefulSet": 4,
        "DaemonSet": 4,
        "Job": 4,
        "CronJob": 4,
        "HorizontalPodAutoscaler": 5,
        "PodDisruptionBudget": 5,
        "Ingress": 6,
    }
)
_UNKNOWN_TIER: Final = 7

_Object = TypeVar("_Object", bound=Mapping[str, Any])


class MissingImageDigestError(ManifestValidationError):
    """``images`` has no digest for a service the manifests run; ``services`` names them."""

    def __init__(self, services: Iterable[str]) -> None:
        self.services = tuple(sorted(set(services)))
        self.service = self.services[0]
        super().__init__(
            f"no image digest for service(s) {', '.join(self.services)}: "
            "render needs images[<service>] = 'sha256:<64 hex>' for every service it pins"
        )


# --- the environment's typed values --------------------------------------------------------------------------------

_Quantity = Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ResourceAmounts(_Strict):
    cpu: str = _Quantity
    memory: str = _Quantity


class ContainerResources(_Strict):
    requests: ResourceAmounts
    limits: ResourceAmounts


class ServiceValues(_Strict):
    """One service in one environment: replicas, HPA bounds, main container resources.

    ``replicas`` is rendered into ``spec.replicas`` only when no HPA targets the service's Deployment; with an HPA
    (every service of the platform today) the HPA owns the count between ``min_replicas`` and ``max_replicas``, and
    ``replicas`` only has to lie within them (so removing the HPA later gives a sensible fixed size).
    """

    replicas: int = Field(ge=1)
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    resources: ContainerResources
    # How long the service's new pods may run without becoming ready (a Deployment annotation; unset: the
    # READINESS_DEADLINE_SECONDS setting of the health check).
    readiness_deadline_seconds: int | None = Field(default=None, ge=10, le=3_600)
    # The eks stack's node group the service's pods run on (platform.NODE_GROUPS): rendered as the pod template's
    # nodeSelector and the toleration of that group's taint.
    node_group: Literal["general", "compute-intensive", "memory-optimized", "spot"] = "general"

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> ServiceValues:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"need min_replicas <= replicas <= max_replicas, got {self.min_replicas} <= {self.replicas} "
                f"<= {self.max_replicas}"
            )
        return self


def _check_placeholders(value: str, allowed: frozenset[str]) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    unknown = names - allowed
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return value


class EnvironmentConfig(_Strict):
    """``manifests/kubernetes/environments/<env>.yaml``. Unknown keys are errors."""

    account_id: str | None = Field(default=None, pattern=ACCOUNT_RE.pattern)
    region: str = Field(pattern=REGION_RE.pattern)
    hostname: str = Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    certificate_arn: str = Field(pattern=r"^arn:aws[a-z-]*:acm:")
    irsa_role_arn_pattern: str = Field(pattern=r"^arn:aws[a-z-]*:iam::")
    secrets_prefix: str = Field(pattern=r"^[A-Za-z0-9/_+=.@-]+[^/]$")
    install_bootstrap_crds: bool
    addons: list[str] = Field(
        default_factory=list,
        description="the vendored add-ons (manifests/addons) installed before every release of this environment",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    feature_flags: dict[str, bool] = Field(default_factory=dict)
    services: dict[str, ServiceValues]

    @field_validator("certificate_arn")
    @classmethod
    def _certificate_placeholders(cls, value: str) -> str:
        return _check_placeholders(value, frozenset({"account_id", "region"}))

    @field_validator("irsa_role_arn_pattern")
    @classmethod
    def _role_placeholders(cls, value: str) -> str:
        _check_placeholders(value, frozenset({"account_id", "region", "environment", "service"}))
        if "{service}" not in value:
            raise ValueError("must contain {service}: every service has its own role")
        return value

    @field_validator("feature_flags")
    @classmethod
    def _flag_names(cls, value: dict[str, bool]) -> dict[str, bool]:
        bad = [name for name in value if not re.fullmatch(r"[a-z][a-z0-9_]*", name)]
        if bad:
            raise ValueError(f"flag names must be lower_snake_case: {bad}")
        return value

    @field_validator("services")
    @classmethod
    def _every_service_once(cls, value: dict[str, ServiceValues]) -> dict[str, ServiceValues]:
        missing = [name for name in platform.SERVICE_NAMES if name not in value]
        unknown = [name for name in value if name not in platform.SERVICE_NAMES]
        if missing or unknown:
            raise ValueError(f"must list exactly the platform's services; missing {missing}, unknown {unknown}")
        return value

    def certificate(self, *, account_id: str, region: str) -> str:
        return self.certificate_arn.format(account_id=account_id, region=region)

    def role_arn(self, *, account_id: str, region: str, environment: str, service: str) -> str:
        return self.irsa_role_arn_pattern.format(
            account_id=account_id, region=region, environment=environment, service=service
        )


# --- the bundle ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document of the bundle, as written (never mutated: rendering works on a deep copy)."""

    file: str
    index: int
    body: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def where(self) -> str:
        return f"{self.file}: {self.kind}/{self.name}"


@dataclass(frozen=True)
class ManifestBundle:
    """The manifests directory, loaded: the YAML files, their parsed documents and the environments' values.

    ``hash`` is the sha256 of every YAML file's relative path and content (sorted by path): the same files give the
    same hash wherever the directory lives; any change to any file gives another.
    """

    root: Path
    files: Mapping[str, str]
    hash: str
    documents: tuple[SourceDocument, ...]
    environments: Mapping[str, EnvironmentConfig] = field(default_factory=dict)
    addons: Mapping[str, AddonSpec] = field(default_factory=dict)
    """The add-on catalog (``../addons/addons.yaml``); its files are in ``files`` under :data:`ADDONS_PREFIX`."""


def _bundle_hash(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for relative in sorted(files):
        content = files[relative].encode()
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


_Loader: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> tuple[Any, ...]:
    """The documents of ``text``, parsed once per process (vendored CRDs are large); never mutate them."""
    return tuple(doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None)


def _yaml_documents(relative: str, text: str, problems: list[str]) -> list[Any]:
    try:
        return list(_parsed(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problems.append(f"{relative}: {where}YAML syntax error: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.append(f"{relative}: YAML error: {exc}")
    return []


def _check_document(relative: str, index: int, doc: Any, problems: list[str]) -> bool:
    where = f"{relative}: document {index + 1}"
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping (a Kubernetes object), got {type(doc).__name__}")
        return False
    ok = True
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            problems.append(f"{where}: {key}: required (a non-empty string)")
            ok = False
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        problems.append(f"{where}: metadata.name: required (a non-empty string)")
        ok = False
    return ok


def _load_environment(relative: str, text: str, problems: list[str]) -> EnvironmentConfig | None:
    documents = _yaml_documents(relative, text, problems)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        if documents:
            problems.append(f"{relative}: expected one mapping of values")
        return None
    try:
        return EnvironmentConfig.model_validate(documents[0])
    except ValidationError as exc:
        problems += validation_problems(exc, prefix=f"{relative}: ", whole="(file)")
    return None


def load_bundle(path: Path) -> ManifestBundle:
    """Read and parse every ``*.yaml``/``*.yml`` under ``path``; ``ManifestValidationError`` lists every problem."""
    if not path.is_dir():
        raise ManifestValidationError(f"{path}: not a manifests directory")
    files = {
        file.relative_to(path).as_posix(): file.read_text(encoding="utf-8")
        for file in sorted(path.rglob("*"))
        if file.is_file() and file.suffix in {".yaml", ".yml"}
    }
    problems: list[str] = []
    environments: dict[str, EnvironmentConfig] = {}
    documents: list[SourceDocument] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    # CRDs first: the emulator (and a fresh cluster) serves custom resources only once their CRD exists.
    ordered = sorted(files, key=lambda rel: (not rel.startswith(f"{CRDS_DIR}/"), rel))
    for relative in ordered:
        if relative.startswith(f"{ENVIRONMENTS_DIR}/"):
            config = _load_environment(relative, files[relative], problems)
            if config is not None:
                environments[Path(relative).stem] = config
            continue
        for index, doc in enumerate(_yaml_documents(relative, files[relative], problems)):
            if not _check_document(relative, index, doc, problems):
                continue
            source = SourceDocument(relative, index, doc)
            group = doc["apiVersion"].rpartition("/")[0]
            identity = (group, source.kind, str(doc["metadata"].get("namespace", "")), source.name)
            if identity in seen:
                problems.append(f"{source.where}: metadata.name: also defined in {seen[identity]}")
            seen[identity] = relative
            documents.append(source)
    addons = _load_addons(path.parent / ADDONS_DIR, files, problems)
    problems += _unknown_addons(environments, addons)
    if problems:
        raise ManifestValidationError(f"manifests in {path} are invalid:\n  " + "\n  ".join(problems))
    return ManifestBundle(
        root=path,
        files=MappingProxyType(files),
        hash=_bundle_hash(files),
        documents=tuple(documents),
        environments=MappingProxyType(environments),
        addons=MappingProxyType(addons),
    )


def _unknown_addons(environments: Mapping[str, EnvironmentConfig], addons: Mapping[str, AddonSpec]) -> list[str]:
    return [
        f"{ENVIRONMENTS_DIR}/{name}.yaml: addons: not in {ADDONS_PREFIX}{ADDONS_CATALOG}: {unknown}"
        for name, config in environments.items()
        if (unknown := [a for a in config.addons if a not in addons])
    ]


def _load_addons(root: Path, files: dict[str, str], problems: list[str]) -> dict[str, AddonSpec]:
    """The add-on catalog beside the bundle and every file it names, into ``files`` (so into the bundle's hash).
    No ``addons`` directory: no add-ons (an environment that lists one is then refused)."""
    catalog_file = root / ADDONS_CATALOG
    if not catalog_file.is_file():
        return {}
    text = catalog_file.read_text(encoding="utf-8")
    files[ADDONS_PREFIX + ADDONS_CATALOG] = text
    where = f"{ADDONS_PREFIX}{ADDONS_CATALOG}"
    documents = _yaml_documents(where, text, problems)
    try:
        catalog = AddonCatalog.model_validate(documents[0] if len(documents) == 1 else None)
    except ValidationError as exc:
        problems += validation_problems(exc, prefix=f"{where}: ", whole="(file)")
        return {}
    for name, spec in catalog.addons.items():
        for file in spec.files:
            relative = f"{name}/{file}"
            if not (root / relative).is_file():
                problems.append(f"{where}: addons.{name}.files: {ADDONS_PREFIX}{relative} does not exist")
                continue
            files[ADDONS_PREFIX + relative] = (root / relative).read_text(encoding="utf-8")
            if file not in spec.substitute:  # substituted files are parsed when rendered (their values vary)
                for index, doc in enumerate(_yaml_documents(relative, files[ADDONS_PREFIX + relative], problems)):
                    _check_document(ADDONS_PREFIX + relative, index, doc, problems)
    return dict(catalog.addons)


# --- rendering -----------------------------------------------------------------------------------------------------


HPA_TARGET_KINDS: Final = frozenset({"Deployment", "StatefulSet"})


def hpa_targets(objects: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str, str]]:
    """``(namespace, kind, name)`` of every Deployment/StatefulSet an HPA among ``objects`` scales."""
    found: set[tuple[str, str, str]] = set()
    for obj in objects:
        if obj.get("kind") != "HorizontalPodAutoscaler":
            continue
        target = ObjectRef.scale_target_of(obj)
        if target.kind in HPA_TARGET_KINDS:
            found.add((target.namespace or "", target.kind, target.name))
    return frozenset(found)


def _hpa_managed(obj: Mapping[str, Any], targets: frozenset[tuple[str, str, str]]) -> bool:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(obj.get("kind")), str(meta.get("name"))) in targets


def without_hpa_replicas(objects: Iterable[_Object]) -> list[_Object]:
    """``objects`` with ``spec.replicas`` removed from every workload an HPA among them scales (copies; the input is
    not changed). For objects recorded before rendering left the field out (a rollback to an older release)."""
    objects = list(objects)
    targets = hpa_targets(objects)
    out: list[_Object] = []
    for obj in objects:
        spec = obj.get("spec")
        if _hpa_managed(obj, targets) and isinstance(spec, Mapping) and "replicas" in spec:
            body = copy.deepcopy(dict(obj))
            del body["spec"]["replicas"]
            out.append(body)  # type: ignore[arg-type]
        else:
            out.append(obj)
    return out


@dataclass
class _Context:
    environment: str
    overlay: str
    config: EnvironmentConfig
    account_id: str
    region: str
    images: Mapping[str, str]
    problems: list[str] = field(default_factory=list)
    missing_digests: set[str] = field(default_factory=set)
    hpa_targets: frozenset[tuple[str, str, str]] = frozenset()

    def service_values(self, name: str, where: str, path: str) -> ServiceValues | None:
        values = self.config.services.get(name)
        if values is None:
            self.problems.append(f"{where}: {path}: {name!r} is not a service in {self.overlay}")
        return values


def _mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]`` as a dict, created when absent (the documents were checked to be mappings at their root)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _labels(obj: dict[str, Any], ctx: _Context) -> None:
    labels = _mapping(_mapping(obj, "metadata"), "labels")
    labels[platform.LABEL_MANAGED_BY] = platform.MANAGED_BY
    labels[platform.LABEL_PART_OF] = platform.PART_OF
    labels[platform.LABEL_ENVIRONMENT] = ctx.environment


def _pod_spec(obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    path = platform.POD_SPEC_PATHS.get(obj["kind"])
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return (".".join(path), node) if isinstance(node, dict) else None


def _render_pod_template(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    found = _pod_spec(obj)
    if found is None:
        return
    path, spec = found
    if obj["kind"] != "Pod":
        template_path = platform.POD_SPEC_PATHS[obj["kind"]][:-1]
        template: Any = obj
        for key in template_path:
            template = template[key]
        _labels(template, ctx)
    for list_name in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(list_name) or []):
            field_path = f"{path}.{list_name}[{i}].image"
            image = container.get("image") if isinstance(container, dict) else None
            match = _PLACEHOLDER_RE.match(image) if isinstance(image, str) else None
            if match is None or match["service"] not in platform.SERVICE_NAMES:
                ctx.problems.append(
                    f"{where}: {field_path}: {image!r} is not an image placeholder "
                    f"'{platform.REPOSITORY_PREFIX}<service>' of a known service; images are never written into "
                    "manifests, rendering pins them by digest"
                )
                continue
            service = match["service"]
            digest = ctx.images.get(service)
            if digest is None:
                ctx.missing_digests.add(service)
                continue
            container["image"] = platform.pinned_image(ctx.account_id, ctx.region, service, digest)


def _render_deployment(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    values = ctx.service_values(obj["metadata"]["name"], where, "metadata.name")
    if values is None:
        return
    spec = _mapping(obj, "spec")
    if _hpa_managed(obj, ctx.hpa_targets):
        spec.pop("replicas", None)  # the HPA owns it: applying it would reset what the HPA scaled to
    else:
        spec["replicas"] = values.replicas
    containers = _mapping(_mapping(spec, "template"), "spec").get("containers") or []
    main = [c for c in containers if isinstance(c, dict) and c.get("name") == obj["metadata"]["name"]]
    if not main:
        ctx.problems.append(f"{where}: spec.template.spec.containers: no container named after the service")
        return
    main[0]["resources"] = values.resources.model_dump()
    _render_placement(_mapping(spec, "template")["spec"], values.node_group)
    if values.readiness_deadline_seconds is not None:
        annotations = _mapping(obj["metadata"], "annotations")
        annotations[platform.READINESS_DEADLINE_ANNOTATION] = str(values.readiness_deadline_seconds)


def _render_placement(pod_spec: dict[str, Any], node_group: str) -> None:
    """The pod runs on ``node_group`` only: its label as nodeSelector, its taint tolerated (the general group has
    none); any placement the manifest wrote is replaced."""
    group = platform.NODE_GROUPS[node_group]
    pod_spec["nodeSelector"] = {platform.NODE_GROUP_LABEL: group.name}
    toleration = group.toleration()
    if toleration is None:
        pod_spec.pop("tolerations", None)
    else:
        pod_spec["tolerations"] = [toleration]


def _render_hpa(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    spec = _mapping(obj, "spec")
    target = _mapping(spec, "scaleTargetRef").get("name")
    values = ctx.service_values(str(target), where, "spec.scaleTargetRef.name")
    if values is not None:
        spec["minReplicas"] = values.min_replicas
        spec["maxReplicas"] = values.max_replicas


def _render_service_account(obj: dict[str, Any], where: str, ctx: _Context) -> None:  # noqa: ARG001
    name = obj["metadata"]["name"]
    if name in platform.SERVICE_NAMES:
        annotations = _mapping(obj["metadata"], "annotations")
        annotations[IRSA_ANNOTATION] = ctx.config.role_arn(
            account_id=ctx.account_id, region=ctx.region, environment=ctx.environment, service=name
        )


def _render_ingress(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    annotations = _mapping(obj["metadata"], "annotations")
    annotations[CERTIFICATE_ANNOTATION] = ctx.config.certificate(account_id=ctx.account_id, region=ctx.region)
    rules = _mapping(obj, "spec").get("rules")
    if not isinstance(rules, list) or not rules:
        ctx.problems.append(f"{where}: spec.rules: at least one rule is required (rendering sets its host)")
        return
    for rule in rules:
        if isinstance(rule, dict):
            rule["host"] = ctx.config.hostname


def _render_config_map(obj: dict[str, Any], where: str, ctx: _Context) -> None:  # noqa: ARG001
    if obj["metadata"]["name"] != PLATFORM_SETTINGS:
        return
    data = _mapping(obj, "data")
    data["ENVIRONMENT"] = ctx.environment
    data["LOG_LEVEL"] = ctx.config.log_level
    for flag, enabled in sorted(ctx.config.feature_flags.items()):
        data[f"FEATURE_{flag.upper()}"] = "true" if enabled else "false"


def _render_external_secret(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    for i, item in enumerate(_mapping(obj, "spec").get("data") or []):
        remote = item.get("remoteRef") if isinstance(item, dict) else None
        key = remote.get("key") if isinstance(remote, dict) else None
        if not isinstance(remote, dict) or not isinstance(key, str) or not key or key.startswith("/"):
            ctx.problems.append(f"{where}: spec.data[{i}].remoteRef.key: required, relative to secrets_prefix")
            continue
        remote["key"] = f"{ctx.config.secrets_prefix}/{key}"


def _render_cluster_secret_store(obj: dict[str, Any], where: str, ctx: _Context) -> None:
    aws = _mapping(_mapping(obj, "spec"), "provider").get("aws")
    if not isinstance(aws, dict):
        ctx.problems.append(f"{where}: spec.provider.aws: required (the platform's secrets live in AWS)")
        return
    aws["region"] = ctx.region


def _render_stateful_set(obj: dict[str, Any], where: str, ctx: _Context) -> None:  # noqa: ARG001
    spec = obj.get("spec")
    if isinstance(spec, dict) and _hpa_managed(obj, ctx.hpa_targets):
        spec.pop("replicas", None)


_KIND_RENDERERS: Final = MappingProxyType(
    {
        "Deployment": _render_deployment,
        "StatefulSet": _render_stateful_set,
        "HorizontalPodAutoscaler": _render_hpa,
        "ServiceAccount": _render_service_account,
        "Ingress": _render_ingress,
        "ConfigMap": _render_config_map,
        "ExternalSecret": _render_external_secret,
        "ClusterSecretStore": _render_cluster_secret_store,
    }
)


def _check_inputs(
    bundle: ManifestBundle, environment: str, images: Mapping[str, str], account_id: str, region: str
) -> _Context:
    config = bundle.environments.get(environment)
    if config is None:
        known = ", ".join(sorted(bundle.environments)) or "none"
        raise ManifestValidationError(
            f"{ENVIRONMENTS_DIR}/{environment}.yaml: no such environment values file (environments: {known})"
        )
    ctx = _Context(environment, f"{ENVIRONMENTS_DIR}/{environment}.yaml", config, account_id, region, images)
    if not ACCOUNT_RE.match(account_id):
        ctx.problems.append(f"account_id: {account_id!r} is not a 12-digit AWS account id")
    if not REGION_RE.match(region):
        ctx.problems.append(f"region: {region!r} is not an AWS region")
    if region != config.region:
        ctx.problems.append(f"{ctx.overlay}: region: environment {environment} lives in {config.region}, not {region}")
    if config.account_id is not None and account_id != config.account_id:
        ctx.problems.append(
            f"{ctx.overlay}: account_id: environment {environment} is pinned to {config.account_id}, not {account_id}"
        )
    for service, digest in images.items():
        if service not in platform.SERVICE_NAMES:
            ctx.problems.append(f"images: {service!r} is not a service of the platform")
        elif not DIGEST_RE.match(digest):
            ctx.problems.append(f"images.{service}: {digest!r} is not a digest 'sha256:<64 lowercase hex>'")
    return ctx


def render(
    bundle: ManifestBundle, environment: str, images: Mapping[str, str], *, account_id: str, region: str
) -> list[dict[str, Any]]:
    """The objects of ``bundle`` for ``environment``, images pinned from ``images`` (service -> digest), in apply order.

    Raises ``MissingImageDigestError`` when a service has no digest, ``ManifestValidationError`` listing every other
    problem (file, object and field) otherwise. Never returns a partial result.
    """
    ctx = _check_inputs(bundle, environment, images, account_id, region)
    ctx.hpa_targets = hpa_targets(source.body for source in bundle.documents)
    objects: list[dict[str, Any]] = []
    provided = {crd for name in ctx.config.addons for crd in bundle.addons[name].provides}
    for source in bundle.documents:
        if source.file.startswith(f"{CRDS_DIR}/") and (
            not ctx.config.install_bootstrap_crds or source.name in provided
        ):
            continue  # an add-on this environment installs owns the real CRD: never a bootstrap copy over it
        if ADDON_LABEL in (source.body.get("metadata", {}).get("labels") or {}):
            ctx.problems.append(f"{source.where}: metadata.labels: {ADDON_LABEL} is for manifests/addons objects only")
        obj = copy.deepcopy(dict(source.body))
        renderer = _KIND_RENDERERS.get(source.kind)
        if renderer is not None:
            renderer(obj, source.where, ctx)
        _render_pod_template(obj, source.where, ctx)
        _labels(obj, ctx)
        objects.append(obj)
    if ctx.problems:
        raise ManifestValidationError(
            f"cannot render {environment} from {bundle.root}:\n  " + "\n  ".join(ctx.problems)
        )
    if ctx.missing_digests:
        raise MissingImageDigestError(ctx.missing_digests)
    return apply_order(objects)


def render_addons(
    bundle: ManifestBundle, environment: str, *, account_id: str, region: str, cluster_name: str
) -> list[dict[str, Any]]:
    """The objects of the add-ons ``environment`` lists, as vendored, with the placeholders of the files the catalog
    names filled in, the ownership labels and :data:`ADDON_LABEL`; in apply order. ``ManifestValidationError``
    lists every problem."""
    config = bundle.environments.get(environment)
    if config is None:
        raise ManifestValidationError(f"{ENVIRONMENTS_DIR}/{environment}.yaml: no such environment values file")
    values = {"ACCOUNT_ID": account_id, "REGION": region, "ENVIRONMENT": environment, "CLUSTER_NAME": cluster_name}
    assert set(values) == PLACEHOLDERS
    problems: list[str] = []
    ctx = _Context(environment, f"{ENVIRONMENTS_DIR}/{environment}.yaml", config, account_id, region, {})
    objects: list[dict[str, Any]] = []
    for name in config.addons:
        spec = bundle.addons[name]
        for file in spec.files:
            relative = f"{ADDONS_PREFIX}{name}/{file}"
            text = bundle.files[relative]
            if file in spec.substitute:
                try:
                    text = string.Template(text).substitute(values)
                except (KeyError, ValueError) as exc:
                    allowed = ", ".join(f"${{{v}}}" for v in sorted(values))
                    problems.append(f"{relative}: bad placeholder ({exc}); allowed: {allowed}")
                    continue
            for index, doc in enumerate(_yaml_documents(relative, text, problems)):
                if not _check_document(relative, index, doc, problems):
                    continue
                obj = copy.deepcopy(dict(doc))
                _labels(obj, ctx)
                obj["metadata"]["labels"][ADDON_LABEL] = name
                _mapping(obj["metadata"], "annotations")[ADDON_SPEC_ANNOTATION] = spec.model_dump_json()
                objects.append(obj)
    if problems:
        raise ManifestValidationError(f"cannot render the add-ons of {environment}:\n  " + "\n  ".join(problems))
    return apply_order(objects)


def render_release(
    bundle: ManifestBundle,
    environment: str,
    images: Mapping[str, str],
    *,
    account_id: str,
    region: str,
    cluster_name: str,
) -> list[dict[str, Any]]:
    """Everything a release applies: the environment's add-ons, then the platform (:func:`render`), in apply order."""
    addons = render_addons(bundle, environment, account_id=account_id, region=region, cluster_name=cluster_name)
    return apply_order([*addons, *render(bundle, environment, images, account_id=account_id, region=region)])


def render_release_for(
    settings: Settings, bundle: ManifestBundle, environment: str, images: Mapping[str, str]
) -> list[dict[str, Any]]:
    """:func:`render_release` for this control plane: the account, region and cluster name from its settings (what
    PlanRelease, ApplyRelease and the approval diff render alike)."""
    return render_release(
        bundle,
        environment,
        images,
        account_id=settings.account_id,
        region=settings.region,
        cluster_name=settings.cluster_name,
    )


def addon_objects(objects: Iterable[_Object]) -> list[_Object]:
    """The add-ons' objects among a release's (their :data:`ADDON_LABEL`), in the given order."""
    return [o for o in objects if ADDON_LABEL in ((o.get("metadata") or {}).get("labels") or {})]


def without_addons(objects: Iterable[_Object]) -> list[_Object]:
    """The release's own objects: all but its add-ons' (:func:`addon_objects`), in the given order."""
    return [o for o in objects if ADDON_LABEL not in ((o.get("metadata") or {}).get("labels") or {})]


def apply_order(objects: Iterable[_Object]) -> list[_Object]:
    """``objects`` sorted for server-side apply: namespaces and CRDs, config, network policies, services,
    workloads, HPA/PDB, ingress; unknown kinds last. Stable: within a tier the input order is kept."""
    return sorted(objects, key=lambda obj: _APPLY_TIERS.get(str(obj.get("kind")), _UNKNOWN_TIER))
