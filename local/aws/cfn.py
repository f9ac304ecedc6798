"""CloudFormation in the local cloud: what moto skips, created through the matching APIs, and a fault switch.

moto's CloudFormation creates the resource types it models and silently skips the rest (EKS, ElastiCache, Secrets
Manager, IAM OIDC providers, ...); it never fails or rolls back. With :class:`CfnFaults` installed (every LocalCloud
does), after moto's ``CreateStack`` / ``UpdateStack`` / ``ExecuteChangeSet``:

* ``AWS::EKS::Cluster`` and ``AWS::EKS::Nodegroup`` in the stack's template are created through the EKS API (names
  resolved from properties, parameters and the stack's resources; unresolvable role/subnet values get placeholders),
  with ``CREATE_COMPLETE`` resource events. If a cluster emulator was bound to the cluster name
  (:meth:`CfnFaults.bind_cluster`, or the cloud's own ``cluster``), the cluster is registered with it
  (``DescribeCluster`` returns the emulator's endpoint/CA; node group sizes drive its NodePool).
* Other skipped types stay skipped: they are listed in :attr:`CfnFaults.skipped` per stack (not silently).
* :meth:`CfnFaults.fail_next` arms one failure for a stack name: the next create (``CREATE_FAILED``,
  ``ROLLBACK_COMPLETE``) or update (``UPDATE_ROLLBACK_COMPLETE``) ends in that state, with resource and stack events
  carrying ``ResourceStatusReason`` as CloudFormation writes them. After an update rollback the stack's template is
  the previous one again (moto's already-updated resources are not reverted).
* Each resource a create adds, or an update adds or changes, is authorized as CloudFormation's principal (the
  stack's service role, session ``AWSCloudFormation``, else the caller) with :mod:`local.aws.cfn_authz`; the first
  refusal fails the resource with the handler's AccessDenied message and rolls the stack back.
* ``UpdateTerminationProtection`` (moto has no such action) sets the stack's ``EnableTerminationProtection``, and
  ``DeleteStack`` of a protected stack is refused with CloudFormation's ``ValidationError``.
* Stacks made or changed by ``ExecuteChangeSet`` have ``Outputs`` (moto keeps the outputs of the template the stack
  was created with, none for a change-set create). An output moto cannot evaluate because it names a skipped
  resource gets the value the harness gave that resource (EKS cluster: name, ARN, endpoint, CA, security group;
  node group: name) or a ``local-<Logical>-<Attribute>`` placeholder.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from unittest import mock

from local.aws.authz import Principal
from local.aws.cfn_authz import Arns, resource_accesses
from local.aws.iam import Policy, denial_message, evaluate
from local.aws.template import Pseudo, Resolver, TemplateError

if TYPE_CHECKING:
    from local.aws.cloud import ClusterLike, LocalCloud

FailureState = Literal["CREATE_FAILED", "ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"]
_CREATE_STATES = {"CREATE_FAILED", "ROLLBACK_COMPLETE"}
_HANDLED_SKIPPED = {"AWS::EKS::Cluster", "AWS::EKS::Nodegroup"}
_KNOWN_SKIPPED = {
    "AWS::EKS::Addon", "AWS::EKS::AccessEntry", "AWS::EKS::PodIdentityAssociation", "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::SubnetGroup", "AWS::SecretsManager::Secret",
    "AWS::IAM::OIDCProvider",
}  # fmt: skip


@dataclass(frozen=True)
class _Fault:
    state: FailureState
    reason: str
    resource: str | None


class CfnFaults:
    """Fault switch and skipped-resource hook for moto's CloudFormation (see the module docstring)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self._faults: dict[str, _Fault] = {}
        self._bound: dict[str, ClusterLike] = {}
        self._lock = threading.Lock()
        self.skipped: dict[str, list[tuple[str, str]]] = {}

    def fail_next(
        self,
        stack_name: str,
        state: FailureState = "ROLLBACK_COMPLETE",
        reason: str = 'Resource handler returned message: "Internal failure"',
        *,
        resource: str | None = None,
    ) -> None:
        """Fail the next create (CREATE_FAILED, ROLLBACK_COMPLETE) or update (UPDATE_ROLLBACK_COMPLETE) of a stack."""
        with self._lock:
            self._faults[stack_name] = _Fault(state, reason, resource)

    def bind_cluster(self, cluster_name: str, cluster: ClusterLike) -> None:
        """Register this emulator when a stack creates an EKS cluster named ``cluster_name``."""
        self._bound[cluster_name] = cluster

    def _take(self, stack_name: str, *, update: bool) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(stack_name)
            if fault is None or (fault.state in _CREATE_STATES) == update:
                return None
            return self._faults.pop(stack_name)

    @contextmanager
    def installed(self) -> Iterator[None]:
        from moto.cloudformation import exceptions as cfn_exceptions  # noqa: PLC0415
        from moto.cloudformation import models as cfn_models  # noqa: PLC0415
        from moto.cloudformation import responses as cfn_responses  # noqa: PLC0415
        from moto.core.responses import ActionResult  # noqa: PLC0415

        backend_cls = cfn_models.CloudFormationBackend
        original_create = backend_cls.create_stack
        original_update = backend_cls.update_stack
        original_execute = backend_cls.execute_change_set
        original_delete = backend_cls.delete_stack
        faults = self

        def create_stack(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            stack = original_create(backend, name, *args, **kwargs)
            fault = faults._take(name, update=False) or faults._authorize(stack, previous=None)
            faults._after(stack, fault, event_model=cfn_models.Event)
            return stack

        def update_stack(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            before = backend.get_stack(name)
            previous, previous_resources = before.template, dict(before.template_dict.get("Resources") or {})
            stack = original_update(backend, name, *args, **kwargs)
            fault = faults._take(name, update=True) or faults._authorize(stack, previous=previous_resources)
            faults._after(stack, fault, event_model=cfn_models.Event, previous=previous)
            return stack

        def execute_change_set(backend: Any, change_set_name: str, stack_name: str | None = None) -> Any:
            stack = next(
                (s for s in backend.stacks.values() if stack_name in {s.name, s.stack_id}),
                None,
            )
            change_set = backend.change_sets.get(change_set_name) or next(
                (c for c in backend.change_sets.values() if c.change_set_name == change_set_name), None
            )
            denied = None
            if stack is not None and change_set is not None and change_set.change_set_type == "UPDATE":
                denied = faults._stack_policy_denial(stack, change_set.template_dict)
            if stack is not None and change_set is not None and denied is not None:
                # The update stops at the protected resource and rolls back: nothing changes.
                stack.status = "UPDATE_IN_PROGRESS"
                change_set.execution_status = "EXECUTE_FAILED"
                faults._after(stack, denied, event_model=cfn_models.Event, previous=stack.template)
                return None
            previous = stack.template if stack is not None else None
            previous_resources = dict((stack.template_dict.get("Resources") or {}) if stack is not None else {})
            result = original_execute(backend, change_set_name, stack_name)
            stack = next((s for s in backend.stacks.values() if stack_name in {s.name, s.stack_id}), stack)
            if stack is not None:
                update = stack.status.startswith("UPDATE")
                fault = faults._take(stack.name, update=update)
                if fault is None:
                    stack._parse_template()
                    stack.output_map = stack._create_output_map()
                    fault = faults._authorize(stack, previous=previous_resources if update else None)
                faults._after(stack, fault, event_model=cfn_models.Event, previous=previous if update else None)
            return result

        def delete_stack(backend: Any, name: str) -> Any:
            stack = next((s for s in backend.stacks.values() if name in {s.name, s.stack_id}), None)
            if stack is not None and stack.enable_termination_protection:
                raise cfn_exceptions.ValidationError(
                    name,
                    message=f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled",
                )
            if stack is not None and stack.status == "ROLLBACK_COMPLETE":
                # A rolled-back create holds no resources: deleting it deletes only the stack (moto would delete
                # what its rollback already removed, and fail on the first one that is gone).
                with contextlib.suppress(Exception):
                    stack.resource_map.delete()
                stack.resource_map._resource_json_map = {}
            return original_delete(backend, name)

        def update_termination_protection(response: Any) -> Any:
            stack_name = response._get_param("StackName")
            enabled = str(response._get_param("EnableTerminationProtection")).lower() == "true"
            stack = response.cloudformation_backend.describe_stacks(stack_name)[0]
            stack.enable_termination_protection = enabled
            return ActionResult({"StackId": stack.stack_id})

        with (
            mock.patch.object(backend_cls, "create_stack", create_stack),
            mock.patch.object(backend_cls, "update_stack", update_stack),
            mock.patch.object(backend_cls, "execute_change_set", execute_change_set),
            mock.patch.object(backend_cls, "delete_stack", delete_stack),
            mock.patch.object(
                cfn_responses.CloudFormationResponse,
                "update_termination_protection",
                update_termination_protection,
                create=True,
            ),
        ):
            yield

    # -- CloudFormation's own authorization, resource by resource ------------------------------------------------------
    def _principal(self, stack: Any) -> Principal | None:
        """Who CloudFormation acts as: the stack's service role (session AWSCloudFormation), else its caller."""
        role_arn = getattr(stack, "role_arn", None)
        if role_arn:
            name = str(role_arn).rsplit("/", 1)[-1]
            return Principal(f"arn:aws:sts::{self._cloud.account_id}:assumed-role/{name}/AWSCloudFormation", role_arn)
        return self._cloud.iam.caller()

    def _authorize(self, stack: Any, *, previous: dict[str, Any] | None) -> _Fault | None:
        """Each resource created (``previous`` None) or added/changed by an update, authorized as CloudFormation's
        principal; the first refusal fails the stack as CloudFormation does (``CREATE_FAILED``/``UPDATE_FAILED`` with
        the handler's AccessDenied message, then rollback). A create's rollback deletes what moto made."""
        iam = self._cloud.iam
        principal = self._principal(stack)
        if not iam.enforce or principal is None:
            return None
        resources: dict[str, Any] = stack.template_dict.get("Resources") or {}
        resolver = self._resolver_for(stack, resources)
        arns = Arns(self._cloud.region, self._cloud.account_id, self._role_boundary)
        state: FailureState = "ROLLBACK_COMPLETE" if previous is None else "UPDATE_ROLLBACK_COMPLETE"
        for logical, body in resources.items():
            if previous is not None and previous.get(logical) == body:
                continue
            if body.get("Condition") and not _holds(resolver, str(body["Condition"])):
                continue
            kind = str(body.get("Type"))
            physical = str(resolver.refs.get(logical) or f"{stack.name}-{logical}")
            accesses = resource_accesses(kind, _resolve_lenient(resolver, body.get("Properties") or {}), physical, arns)
            if accesses is None:
                reason = f"local cloud: resource type {kind} has no IAM mapping (local/aws/cfn_authz.py): add it"
                return self._refused(stack, _Fault(state, reason, logical), create=previous is None)
            for access in accesses:
                decision = iam.decide(principal, access)
                if decision != "Allow":
                    message = denial_message(principal.arn, access.action, access.resource, decision)
                    service = access.action.split(":", 1)[0].capitalize()
                    reason = (
                        f'Resource handler returned message: "{message} (Service: {service}, Status Code: 403, '
                        f'Request ID: {uuid.uuid4()})" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: AccessDenied)'
                    )
                    return self._refused(stack, _Fault(state, reason, logical), create=previous is None)
        return None

    def _stack_policy_denial(self, stack: Any, new_template: dict[str, Any]) -> _Fault | None:
        """``Update:Delete`` of every resource the update removes, checked against the stack's policy (a stack with
        a policy protects every resource the policy does not allow to change). ``Update:Replace`` is not checked:
        moto cannot tell which property changes replace a resource."""
        if not stack.policy:
            return None
        statements = [
            {k: v for k, v in raw.items() if k not in {"Principal", "NotPrincipal"}}
            for raw in json.loads(stack.policy).get("Statement") or []
        ]
        policy = Policy.parse("stack policy", {"Statement": statements})
        old: dict[str, Any] = stack.template_dict.get("Resources") or {}
        new: dict[str, Any] = new_template.get("Resources") or {}
        for logical in sorted(set(old) - set(new)):
            resource = f"LogicalResourceId/{logical}"
            context = {"ResourceType": [str(old[logical].get("Type"))]}
            if evaluate([policy], "Update:Delete", resource, context) == "Allow":
                continue
            deny = next(
                (
                    n
                    for n, statement in enumerate(policy.statements, start=1)
                    if statement.effect == "Deny" and statement.applies("Update:Delete", resource, context)
                ),
                None,
            )
            which = f"Statement [#{deny}] does not allow" if deny else "No statement allows"
            reason = f"Action denied by stack policy: {which} [Update:Delete] for resource [{resource}]."
            return _Fault("UPDATE_ROLLBACK_COMPLETE", reason, logical)
        return None

    def _refused(self, stack: Any, fault: _Fault, *, create: bool) -> _Fault:
        """A create's rollback: nothing it made survives (Retain resources aside, as on AWS), roles above all."""
        if not create:
            return fault
        with contextlib.suppress(Exception):  # moto's delete of partly modelled resources is best effort
            stack.resource_map.delete()
        iam = self._cloud.client("iam")
        for logical, body in (stack.template_dict.get("Resources") or {}).items():
            if body.get("Type") != "AWS::IAM::Role":
                continue
            name = str(self._resolver_for(stack, {logical: body}).refs.get(logical) or "")
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):
                for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=name, PolicyName=policy)
                for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                    iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
                iam.delete_role(RoleName=name)
        return fault

    def _role_boundary(self, role: str) -> str | None:
        iam = self._cloud.client("iam")
        try:
            found = iam.get_role(RoleName=role.rsplit("/", 1)[-1])["Role"]
        except iam.exceptions.NoSuchEntityException:
            return None
        return (found.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")

    # -- after moto has done its part -------------------------------------------------------------------------------
    def _after(self, stack: Any, fault: _Fault | None, *, event_model: Any, previous: str | None = None) -> None:
        resources: dict[str, Any] = stack.template_dict.get("Resources") or {}
        self.skipped[stack.name] = [
            (logical, body.get("Type")) for logical, body in resources.items() if body.get("Type") in _KNOWN_SKIPPED
        ]

        def event(logical: str, kind: str, status: str, reason: str | None = None, physical: str = "") -> None:
            stack.events.append(
                event_model(
                    stack_id=stack.stack_id,
                    stack_name=stack.name,
                    logical_resource_id=logical,
                    physical_resource_id=physical,
                    resource_type=kind,
                    resource_status=status,
                    resource_status_reason=reason,
                    resource_properties=None,
                )
            )

        if fault is None:
            resolver = self._create_skipped(stack, resources, event)
            self._fill_outputs(stack, resolver)
            return
        failed = fault.resource or next(
            (logical for logical, body in resources.items() if body.get("Type") in _HANDLED_SKIPPED),
            next(iter(resources), stack.name),
        )
        failed_type = str((resources.get(failed) or {}).get("Type", "AWS::CloudFormation::Stack"))
        stack_type = "AWS::CloudFormation::Stack"
        if fault.state == "UPDATE_ROLLBACK_COMPLETE":
            event(failed, failed_type, "UPDATE_FAILED", fault.reason)
            event(
                stack.name,
                stack_type,
                "UPDATE_ROLLBACK_IN_PROGRESS",
                f"The following resource(s) failed to update: [{failed}].",
            )
            event(stack.name, stack_type, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
            event(stack.name, stack_type, "UPDATE_ROLLBACK_COMPLETE")
            if previous is not None:
                stack.template = previous
                stack._parse_template()
        else:
            event(failed, failed_type, "CREATE_FAILED", fault.reason)
            summary = f"The following resource(s) failed to create: [{failed}]."
            if fault.state == "CREATE_FAILED":
                event(stack.name, stack_type, "CREATE_FAILED", summary)
            else:
                event(stack.name, stack_type, "ROLLBACK_IN_PROGRESS", f"{summary} Rollback requested by user.")
                for logical, body in resources.items():
                    event(logical, str(body.get("Type")), "DELETE_COMPLETE")
                event(stack.name, stack_type, "ROLLBACK_COMPLETE")
        stack.status = fault.state

    def _create_skipped(self, stack: Any, resources: dict[str, Any], event: Any) -> Resolver:
        handled = {k: v for k, v in resources.items() if v.get("Type") in _HANDLED_SKIPPED}
        resolver = self._resolver_for(stack, resources)
        for logical, body in handled.items():
            if body["Type"] == "AWS::EKS::Cluster":
                self._create_cluster(stack, logical, body, resolver, event)
        for logical, body in handled.items():
            if body["Type"] == "AWS::EKS::Nodegroup":
                self._create_nodegroup(logical, body, resolver, event)
        self._create_access_entries(resources, resolver)
        return resolver

    def _resolver_for(self, stack: Any, resources: dict[str, Any]) -> Resolver:
        """A resolver with the stack's parameters and the physical ids of the resources moto did create."""
        cloud = self._cloud
        parameters = dict(getattr(stack.resource_map, "resolved_parameters", {}) or {})
        resolver = Resolver(pseudo=Pseudo(cloud.region, cloud.account_id, stack.name), parameters=parameters)
        for logical in resources:
            try:
                physical = stack.resource_map[logical]
            except Exception:  # noqa: BLE001, S112 - moto raises varied errors for skipped resources
                continue
            if physical is not None:
                resolver.refs[logical] = getattr(physical, "physical_resource_id", logical)
        return resolver

    def _create_cluster(self, stack: Any, logical: str, body: dict[str, Any], resolver: Resolver, event: Any) -> None:
        """``AWS::EKS::Cluster``: a moto EKS cluster, bound to the emulator, with the attributes EKS returns."""
        cloud = self._cloud
        eks = cloud.client("eks")
        props = _resolve_lenient(resolver, body.get("Properties") or {})
        name = str(props.get("Name") or f"{stack.name}-{logical}")
        if name not in eks.list_clusters()["clusters"]:
            vpc = props.get("ResourcesVpcConfig") or {}
            subnets = [s for s in vpc.get("SubnetIds", []) if isinstance(s, str)] or ["subnet-local-a"]
            eks.create_cluster(
                name=name,
                version=str(props.get("Version", "1.31")),
                roleArn=_arn_or(props.get("RoleArn"), f"arn:aws:iam::{cloud.account_id}:role/{name}-cluster"),
                resourcesVpcConfig={"subnetIds": subnets},
            )
        resolver.refs[logical] = name
        event(logical, "AWS::EKS::Cluster", "CREATE_COMPLETE", physical=name)
        emulator = self._bound.get(name) or cloud.cluster
        if emulator is not None:
            cloud.register_cluster(name, emulator)
        described = eks.describe_cluster(name=name)["cluster"]
        resolver.attrs[logical] = {
            "Arn": f"arn:aws:eks:{cloud.region}:{cloud.account_id}:cluster/{name}",
            "Endpoint": described.get("endpoint", ""),
            "CertificateAuthorityData": (described.get("certificateAuthority") or {}).get("data", ""),
            "ClusterSecurityGroupId": f"sg-{name}-cluster",
            "OpenIdConnectIssuerUrl": f"https://oidc.eks.{cloud.region}.amazonaws.com/id/{name.upper()}",
        }

    def _create_nodegroup(self, logical: str, body: dict[str, Any], resolver: Resolver, event: Any) -> None:
        """``AWS::EKS::Nodegroup``: a moto node group whose labels, taints and capacity type reach the emulator."""
        cloud = self._cloud
        props = _resolve_lenient(resolver, body.get("Properties") or {})
        cluster_name = str(props.get("ClusterName"))
        group = str(props.get("NodegroupName") or logical)
        scaling = props.get("ScalingConfig") or {}
        desired = int(scaling.get("DesiredSize", 2))
        instance_type = str((props.get("InstanceTypes") or ["m6i.large"])[0])
        labels = {str(k): str(v) for k, v in (props.get("Labels") or {}).items()}
        taints = [{k.lower(): str(v) for k, v in t.items()} for t in props.get("Taints") or []]
        capacity_type = str(props.get("CapacityType") or "ON_DEMAND")
        cloud.client("eks").create_nodegroup(
            clusterName=cluster_name,
            nodegroupName=group,
            scalingConfig={
                "minSize": int(scaling.get("MinSize", 1)),
                "maxSize": int(scaling.get("MaxSize", max(desired, 1))),
                "desiredSize": desired,
            },
            instanceTypes=[instance_type],
            nodeRole=_arn_or(props.get("NodeRole"), f"arn:aws:iam::{cloud.account_id}:role/{cluster_name}-nodes"),
            subnets=[s for s in props.get("Subnets", []) if isinstance(s, str)] or ["subnet-local-a"],
            labels=labels,
            taints=taints,
            capacityType=capacity_type,
        )
        event(logical, "AWS::EKS::Nodegroup", "CREATE_COMPLETE", physical=f"{cluster_name}/{group}")
        resolver.refs[logical] = f"{cluster_name}/{group}"
        resolver.attrs[logical] = {"NodegroupName": group, "ClusterName": cluster_name}
        emulator = self._bound.get(cluster_name) or cloud.cluster
        if emulator is not None:
            emulator.nodes.set_group(
                group,
                desired,
                instance_type,
                labels=labels,
                taints=taints,
                capacity_type=capacity_type,
                min_size=min(desired, int(scaling.get("MinSize", 1))),
                max_size=max(desired, int(scaling.get("MaxSize", max(desired, 1)))),
            )

    def _create_access_entries(self, resources: dict[str, Any], resolver: Resolver) -> None:
        """``AWS::EKS::AccessEntry``: the emulator maps the principal as EKS would (a principal that is not an ARN,
        e.g. an empty optional parameter behind a false Condition, creates nothing)."""
        cloud = self._cloud
        for body in resources.values():
            if body.get("Type") != "AWS::EKS::AccessEntry":
                continue
            props = _resolve_lenient(resolver, body.get("Properties") or {})
            principal = props.get("PrincipalArn")
            if not isinstance(principal, str) or not principal.startswith("arn:"):
                continue
            emulator = self._bound.get(str(props.get("ClusterName"))) or cloud.cluster
            entries = getattr(emulator, "access_entries", None)
            if entries is not None:
                entries.from_cloudformation(props)

    def _fill_outputs(self, stack: Any, resolver: Resolver) -> None:
        """Give every output a value: moto's, else the harness's for skipped resources, else a placeholder."""
        from moto.cloudformation.parsing import Output  # noqa: PLC0415

        declared: dict[str, Any] = stack.template_dict.get("Outputs") or {}
        output_map = stack.output_map
        for key, body in declared.items():
            try:
                parsed = output_map[key]
            except Exception:  # noqa: BLE001 - moto raises varied errors for outputs naming skipped resources
                parsed = None
            if parsed is not None and parsed.value not in (None, ""):
                continue
            value = _resolve_lenient(resolver, {"Value": body.get("Value")}).get("Value")
            if not isinstance(value, str) or not value:
                value = f"local-{key}"
            output_map._parsed_outputs[key] = Output(key=key, value=value, description=body.get("Description"))


def _holds(resolver: Resolver, condition: str) -> bool:
    try:
        return resolver.condition(condition)
    except (TemplateError, KeyError):
        return True  # a condition the harness cannot evaluate: authorize the resource (stricter)


def _resolve_lenient(resolver: Resolver, props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in props.items():
        try:
            out[key] = resolver.resolve(value)
        except (TemplateError, KeyError, IndexError, TypeError):
            out[key] = None
    return out


def _arn_or(value: Any, fallback: str) -> str:
    return value if isinstance(value, str) and value.startswith("arn:") else fallback
