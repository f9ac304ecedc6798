"""A Kubernetes API emulator standing in for an Amazon EKS cluster: real HTTPS, EKS tokens, the real wire format.

``Cluster`` serves the Kubernetes REST API over HTTPS on ``127.0.0.1`` (a free port) with a CA generated at start,
authenticates ``aws eks get-token`` style bearer tokens, and runs the controllers (``controllers/``, one module per
controller), a simulated kubelet (``kubelet.py``) and managed node groups (``nodes.py``) on a simulated clock. The
official Python client (typed APIs and ``kubernetes.dynamic.DynamicClient``) and ``kubectl`` 1.32 (``apply
--server-side``, ``get``, ``scale``, ``rollout status|undo``) work against it unchanged::

    with Cluster("sts-staging") as cluster:
        api = api_client(cluster)                      # kubernetes.client.ApiClient, no global kubeconfig
        cluster.write_kubeconfig(tmp / "kubeconfig")   # for kubectl
        cluster.faults.add(verb="patch", resource="deployments", status=429, retry_after=2)
        cluster.deny(verb="delete", resource="namespaces")
        cluster.advance(30)                            # simulated time passes; controllers reconcile

Who may do what is EKS's: a token names an IAM principal (``cluster.identities``: access key -> the ARN STS would
return), EKS access entries map it to a username, groups and access policies (``cluster.access_entries``), and
RBAC plus those policies authorize every request. ``cluster.token()``/``admin_token()`` is the cluster creator
(AmazonEKSClusterAdminPolicy, as ``bootstrapClusterCreatorAdminPermissions`` gives); ``token_for(key, secret)`` signs
as anyone; ``cluster.bootstrap(docs)`` applies objects as the creator.

Served: core/v1 namespaces, pods, services (+ ``/proxy``), endpoints, configmaps, secrets, serviceaccounts,
persistentvolumeclaims, nodes, events; apps/v1 deployments, replicasets, statefulsets (``/status``, ``/scale``),
daemonsets, controllerrevisions; batch/v1 jobs, cronjobs; autoscaling/v2 horizontalpodautoscalers; policy/v1
poddisruptionbudgets; networking.k8s.io/v1 ingresses, ingressclasses, networkpolicies; storage.k8s.io/v1
storageclasses; rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles, clusterrolebindings;
admissionregistration.k8s.io/v1 mutatingwebhookconfigurations, validatingwebhookconfigurations (stored only);
apiextensions.k8s.io/v1 customresourcedefinitions and, once a CRD exists, its custom resources;
authorization.k8s.io/v1 selfsubjectaccessreviews, selfsubjectrulesreviews and authentication.k8s.io/v1
selfsubjectreviews (``kubectl auth can-i``/``whoami``).

Verbs: get, list (label/field selectors, limit/continue), watch (chunked JSON lines, 410 ``Expired`` ERROR events,
``sendInitialEvents``), create, update (resourceVersion preconditions), patch (JSON patch, merge patch, strategic
merge patch for built-ins, server-side apply with managedFields, conflicts and ``force``), delete (propagation
policies, ownerReference garbage collection), deletecollection; ``dryRun=All`` on every write.

Known deviations (simplifications of the real API server):

- Admission webhooks are never called: Mutating/ValidatingWebhookConfigurations are stored and served, but no
  request is sent to their services (the AWS Load Balancer Controller's pod readiness-gate injection and Ingress
  validation do not happen; a webhook that would fail a request with ``failurePolicy: Fail`` does not).
- Deletion is immediate: no ``deletionTimestamp``/finalizers phase; ``Foreground`` deletes dependents at once like
  ``Background``; namespaces never show ``Terminating`` (their contents go with them).
- Garbage collection is synchronous: when an owner is deleted, dependents whose owners are all gone are deleted
  before the response (``Orphan`` strips the ownerReference instead).
- Server-side apply knows the list/map semantics (associative keys, sets, atomic structs/maps) of the built-in types
  we deploy by field name (containers, env, ports with the ``protocol: TCP`` key default, volumes, volumeMounts,
  selectors, ...); custom resources use the "deduced" schema (granular maps, atomic lists) rather than their CRD's
  ``x-kubernetes-list-type`` markers. Objects written without managedFields (by controllers) get no
  ``before-first-apply`` manager. Update managers are not capped at 10 (no ``ancient-changes``). ``.`` membership
  in Update entries follows the Go types' pointer/struct shapes only approximately.
- Strategic merge patch supports the merge keys of the pod template and Service and the ``$patch``,
  ``$retainKeys``, ``$setElementOrder`` and ``$deleteFromPrimitiveList`` directives; other lists are replaced.
- Defaulting and validation cover what our workloads touch (names, labels, workload selectors/templates, containers,
  tolerations, node affinity, services, config keys, CRDs); ``fieldValidation=Strict`` is accepted but unknown fields
  are not rejected; custom resources are not validated against their OpenAPI schema and are not pruned. Multi-version
  CRDs share one storage bucket without conversion (``apiVersion`` is rewritten on the way out).
- Watches filter by the current state of each object (objects entering/leaving a selector become ADDED/DELETED as
  the watch cache does); the event history is bounded (older resourceVersions get a 410 ``Expired`` ERROR event).
  ``timeoutSeconds`` counts simulated seconds (and, so a clock nobody moves cannot hang a client, at most as many
  wall seconds); without it a watch lasts 1800 s (the API server randomises 30-60 min). With
  ``allowWatchBookmarks`` a BOOKMARK comes every simulated minute and 2 s before the timeout (the watch cache's
  ``bookmarkFrequency`` and deadline), never otherwise. When the clock is driven by its waiters (the AWS harness's
  simulated time), a watch with nothing to report for 20 ms of wall time lets one simulated second pass
  (``clock.py``): a client may see an event up to about a simulated second after it happened. Every answer's
  ``Date`` header is the simulated time.
- Discovery: ``/api`` and ``/apis`` answer aggregated ``apidiscovery.k8s.io/v2`` when asked (JSON only; no
  protobuf, no ``v2beta1``, no peer/aggregated-apiserver ``freshness`` other than ``Current``), else the legacy form;
  ``/openapi/v3`` serves the built-in types' schemas converted from
  the Kubernetes 1.32 JSON schemas (``kubectl explain`` works) but custom resources get paths without schemas;
  ``/openapi/v2`` answers 404; no server-side ``Table`` printing (kubectl falls back to NAME/AGE columns).
- Authentication checks the presigned STS URL's shape, required parameters, signed ``x-k8s-aws-id`` header and its
  15-minute window (wall clock) but does not call STS or verify the signature: the URL's access key id is taken as
  the caller, and ``cluster.identities`` says which ARN STS would answer for it (unknown key, or a principal without
  an access entry: 401). Access entries are registered in-process (``cluster.access_entries``, or from an
  ``AWS::EKS::AccessEntry``'s properties), not through the EKS API; usernames support ``{{SessionName}}``,
  ``{{AccessKeyID}}`` and ``{{AccountID}}``.
- Authorization is RBAC (Roles, ClusterRoles, bindings to users, groups and service accounts, ``resourceNames``,
  ``nonResourceURLs``, ``aggregationRule`` evaluated at request time: the aggregated ClusterRole's stored ``rules``
  stay as written) then the entry's EKS access policies (the rules AWS documents; cluster or namespace scope). A
  new cluster has ``cluster-admin``, ``system:discovery``, ``system:basic-user`` and ``system:public-info-viewer``
  and their bindings, not the rest of the bootstrap policy (no ``admin``/``edit``/``view``, no controller roles).
  RBAC's escalation checks on writing Roles/bindings and ``impersonate``, ``bind``, ``escalate`` are not enforced;
  ``SubjectAccessReview``/``LocalSubjectAccessReview`` are not served (the three self reviews are; the rules
  review reports RBAC's rules and ``incomplete`` when access policies apply, as EKS's webhook cannot list them).
  Allowed reviews carry no ``reason``. Cluster-scoped self reviews sent as protobuf are decoded; every other
  protobuf body is 415. ``cluster.deny`` rules and injected 403s apply on top.
- Status: on every write the API server gives a workload's status the fields its Go type always serialises (0 when
  unset: ReplicaSet ``replicas``, StatefulSet ``replicas``/``availableReplicas``, the four DaemonSet counts, HPA
  ``desiredReplicas``, the four PodDisruptionBudget counts); DELETE answers with the object for pods, services,
  service accounts, PVCs, storage classes, namespaces and CRDs, with a Status otherwise.
- Faults apply to resource requests only (discovery is never faulted).
- A new cluster has one node group, ``general`` (3 booted t3.medium nodes labelled ``workload-class: general`` like
  the eks stack's GeneralNodeGroup); the add-ons of ``manifests/addons`` are served by the built-in kinds and CRDs
  above (no admission webhook, APIService or conversion webhook is needed by them, and none is served). The
  vendored add-ons' pods run like any image (``ImageBehaviours``: ready by default); of their controllers only the
  Cluster Autoscaler is simulated (``controllers/autoscaler.py``, scale-up only, while its pod runs and discovers
  this cluster: node groups carry ``min_size``/``max_size``, ``NodePool.set_group``), the others are not (no Secret
  is written for an ExternalSecret, no load balancer for an Ingress). The eks
  stack's EKS managed add-ons (``AWS::EKS::Addon``: vpc-cni, kube-proxy, CoreDNS, EBS CSI, Pod Identity agent,
  metrics-server, CloudWatch observability) are recorded by local CloudFormation, not run here: no kube-system pods
  for them, NetworkPolicies are stored but not enforced, no resource metrics (the HPA controller works without).
- What the controllers, the scheduler, the kubelet and the node groups do differently from kube-controller-manager,
  kube-scheduler, the kubelet and EKS managed node groups is listed in ``controllers/__init__.py``, ``kubelet.py``
  and ``nodes.py``.
- Request bodies must be JSON or YAML: protobuf bodies (what kubectl's typed generators such as
  ``kubectl create namespace`` send) are answered 415 naming JSON and YAML (the self reviews excepted); responses
  are always JSON ending with a newline, which client-go accepts.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from local.cluster.access import AccessEntries, AccessPolicy, Identities
from local.cluster.api import ApiServer, now_string
from local.cluster.auth import DenyRule, TokenVerifier, make_token
from local.cluster.clock import SimClock
from local.cluster.controllers import ControllerManager
from local.cluster.faults import Fault, FaultInjector, RequestLog, RequestRecord
from local.cluster.kubelet import Behaviour, ImageBehaviours
from local.cluster.nodes import NodePool
from local.cluster.proxy import service_proxy
from local.cluster.rbac import bootstrap_objects
from local.cluster.resources import Registry
from local.cluster.server import HttpsServer, TlsMaterial, make_tls
from local.cluster.store import GroupResource, Store

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "AccessPolicy",
    "Behaviour",
    "Cluster",
    "DenyRule",
    "Fault",
    "RequestRecord",
    "api_client",
    "creator_token",
    "make_token",
]

logger = logging.getLogger(__name__)

TOKEN_REFRESH_SECONDS = 600
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CREATOR_ROLE = "cluster-creator"
CREATOR_SESSION = "local-harness"
CREATOR_KEY = "ASIALOCALCLUSTERADMN"
_CREATOR_SECRET = "local-cluster-creator-secret-not-a-real-key"  # noqa: S105 - a fixed local test credential


class Cluster:
    """One emulated EKS cluster: store, clock, controllers, node pool and an HTTPS API server."""

    def __init__(
        self,
        name: str = "sts-staging",
        *,
        region: str = "us-east-1",
        clock: SimClock | None = None,
        default_nodes: bool = True,
        port: int = 0,
        account_id: str = "123456789012",
    ) -> None:
        self.name = name
        self.region = region
        self.clock = clock or SimClock()
        self.store = Store()
        self.registry = Registry()
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.deny_rules: list[DenyRule] = []
        self.account_id = account_id
        self.identities = Identities()
        self.access_entries = AccessEntries()
        self.creator_arn = f"arn:aws:iam::{account_id}:role/{CREATOR_ROLE}"
        self.admin_username = f"arn:aws:sts::{account_id}:assumed-role/{CREATOR_ROLE}/{CREATOR_SESSION}"
        self.identities.register(CREATOR_KEY, self.admin_username)  # STS's answer for the creator's key
        self.access_entries.put(self.creator_arn, policies=[AccessPolicy(CLUSTER_ADMIN_POLICY)])
        self._tls: TlsMaterial = make_tls(f"{name}-ca")
        self.ca_pem: bytes = self._tls.ca_pem
        self.ca_data: str = base64.b64encode(self.ca_pem).decode()
        self._port = port
        self._server: HttpsServer | None = None
        self._ca_file: Path | None = None
        self._lock = threading.Lock()
        self.images = ImageBehaviours()
        self.nodes = NodePool(self.store, self.clock, region=self.region)
        if default_nodes:
            self.nodes.add_default_group()
        self.controllers = ControllerManager(
            self.store, self.clock, self.images, self.nodes, root_ca=self.ca_pem.decode(), cluster_name=name
        )
        self.api = ApiServer(
            store=self.store,
            clock=self.clock,
            registry=self.registry,
            faults=self.faults,
            requests=self.requests,
            verifier=TokenVerifier(),
            identities=self.identities,
            access_entries=self.access_entries,
            deny_rules=self.deny_rules,
            after_write=self.reconcile,
            proxy=service_proxy,
            address=lambda: f"127.0.0.1:{self.port}",
        )
        self._seed()
        self.reconcile()  # what the controllers do for a new cluster (kube-root-ca.crt in every namespace)

    # --- seeding ------------------------------------------------------------------------------------------------
    def _seed(self) -> None:
        """What a new EKS cluster has: its namespaces, the ``kubernetes`` Service, a gp2 StorageClass, the default
        RBAC roles and bindings."""
        now = now_string(self.clock)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._put(
                GroupResource("", "namespaces"),
                {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
                now,
            )
            self._put(
                GroupResource("", "serviceaccounts"),
                {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "default", "namespace": ns}},
                now,
            )
        self._put(
            GroupResource("", "services"),
            {
                "kind": "Service",
                "apiVersion": "v1",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                    "clusterIP": "10.100.0.1",
                    "clusterIPs": ["10.100.0.1"],
                    "type": "ClusterIP",
                    "sessionAffinity": "None",
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                },
                "status": {"loadBalancer": {}},
            },
            now,
        )
        self._put(
            GroupResource("storage.k8s.io", "storageclasses"),
            {
                "kind": "StorageClass",
                "apiVersion": "storage.k8s.io/v1",
                "metadata": {"name": "gp2"},
                "provisioner": "kubernetes.io/aws-ebs",
                "parameters": {"fsType": "ext4", "type": "gp2"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            now,
        )
        for gr, obj in bootstrap_objects():
            self._put(gr, obj, now)

    def _put(self, gr: GroupResource, obj: dict[str, Any], now: str) -> None:
        import uuid  # noqa: PLC0415

        obj["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now)
        self.store.put(gr, obj)

    def reconcile(self) -> None:
        """Run the controllers until stable (the API server calls this after every write)."""
        self.controllers.reconcile()

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> Cluster:
        with self._lock:
            if self._server is None:
                self._server = HttpsServer(self.api.handle, self._tls, port=self._port, stopping=self.api.stopping)
                self._server.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self._ca_file is not None:
            self._ca_file.unlink(missing_ok=True)
            self._ca_file = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the cluster is not started")
        return self._server.port

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate as a file (for ``ssl_ca_cert``); removed by :meth:`stop`."""
        if self._ca_file is None:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-ca-", suffix=".crt")
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.ca_pem)
            self._ca_file = Path(path)
        return self._ca_file

    # --- access -------------------------------------------------------------------------------------------------
    def token(self) -> str:
        """A fresh bearer token of the cluster creator (see :meth:`admin_token`)."""
        return self.admin_token()

    def admin_token(self) -> str:
        """A token of the cluster creator principal, which has AmazonEKSClusterAdminPolicy (what EKS's
        ``bootstrapClusterCreatorAdminPermissions`` gives); valid 15 minutes of wall time."""
        return creator_token(self.name, self.region)

    def bootstrap(self, documents: list[dict[str, Any]]) -> None:
        """Server-side apply ``documents`` as the cluster creator (``kubectl apply --server-side`` by an admin),
        through the API server's whole pipeline (authentication, RBAC, validation); raises on the first refusal."""
        import json  # noqa: PLC0415

        from local.cluster.wire import Request  # noqa: PLC0415

        header = f"Bearer {self.admin_token()}"
        for doc in documents:
            rt = next(
                (
                    t
                    for t in self.registry.all()
                    if t.api_version == doc.get("apiVersion") and t.kind == doc.get("kind")
                ),
                None,
            )
            meta = doc.get("metadata") or {}
            if rt is None or not meta.get("name"):
                raise ValueError(f"cannot bootstrap {doc.get('kind')}/{meta.get('name')}: unknown kind or no name")
            prefix = f"/apis/{rt.api_version}" if rt.group else f"/api/{rt.version}"
            ns = f"/namespaces/{meta.get('namespace') or 'default'}" if rt.namespaced else ""
            resp = self.api.handle(
                Request(
                    "PATCH",
                    f"{prefix}{ns}/{rt.plural}/{meta['name']}",
                    {"fieldManager": ["cluster-bootstrap"], "force": ["true"]},
                    {
                        "Authorization": header,
                        "Content-Type": "application/apply-patch+yaml",
                        "User-Agent": "kubectl/v1.32.0",
                    },
                    json.dumps(doc).encode(),
                )
            )
            if resp.status >= 300:
                raise RuntimeError(f"bootstrap apply of {rt.kind}/{meta['name']} failed: {resp.body.decode()}")

    def token_for(self, access_key_id: str, secret: str, session_token: str | None = None) -> str:
        """A token signed with these credentials (who it names is up to ``identities`` and ``access_entries``)."""
        return make_token(
            self.name, self.region, access_key=access_key_id, secret_key=secret, session_token=session_token
        )

    def write_kubeconfig(self, path: str | os.PathLike[str], *, token: str | None = None) -> Path:
        """A kubeconfig with this cluster's server, CA data and a user holding a valid token."""
        import yaml  # noqa: PLC0415

        arn = f"arn:aws:eks:{self.region}:123456789012:cluster/{self.name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": arn, "cluster": {"server": self.endpoint, "certificate-authority-data": self.ca_data}}
            ],
            "users": [{"name": arn, "user": {"token": token or self.token()}}],
            "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}],
            "current-context": arn,
            "preferences": {},
        }
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        out.chmod(0o600)
        return out

    # --- behaviour ----------------------------------------------------------------------------------------------
    def advance(self, seconds: float, *, step: float = 1.0) -> None:
        """Move the simulated clock forward (controllers reconcile on each tick of ``step`` seconds) and reconcile once
        more. A larger ``step`` crosses long idle stretches (hours of a sleeping environment) in fewer reconciles."""
        self.clock.advance(seconds, step=step)
        self.reconcile()

    def deny(
        self,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> DenyRule:
        """Refuse matching requests with 403 Forbidden (RBAC's message shape). ``allow_all()`` lifts every rule."""
        rule = DenyRule(verb, resource, namespace, name)
        self.deny_rules.append(rule)
        return rule

    def allow_all(self) -> None:
        self.deny_rules.clear()


def creator_token(cluster_name: str, region: str = "us-east-1") -> str:
    """The cluster creator's token for any emulated cluster named ``cluster_name`` (see ``Cluster.admin_token``)."""
    return make_token(cluster_name, region, access_key=CREATOR_KEY, secret_key=_CREATOR_SECRET)


def api_client(cluster: Cluster) -> ApiClient:
    """An official-client ``ApiClient`` for ``cluster`` (its own Configuration; the token refreshes itself)."""
    from kubernetes import client  # noqa: PLC0415

    config = client.Configuration(host=cluster.endpoint)
    config.ssl_ca_cert = str(cluster.ca_file)
    config.verify_ssl = True
    issued = [time.monotonic()]
    config.api_key = {"authorization": cluster.token()}
    config.api_key_prefix = {"authorization": "Bearer"}

    def refresh(cfg: Any) -> None:
        if time.monotonic() - issued[0] > TOKEN_REFRESH_SECONDS:
            cfg.api_key["authorization"] = cluster.token()
            issued[0] = time.monotonic()

    config.refresh_api_key_hook = refresh
    return client.ApiClient(configuration=config)
