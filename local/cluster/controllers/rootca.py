"""The root CA certificate publisher (pkg/controller/certificates/rootcacertpublisher).

Every namespace gets the ConfigMap ``kube-root-ca.crt`` holding the cluster's CA bundle under ``ca.crt`` (what
projected service account volumes mount); a deleted or altered one is put back.
"""

from __future__ import annotations

from local.cluster.controllers.base import Context
from local.cluster.objects import CONFIGMAPS, NAMESPACES, fmt_time, is_deleting, name_of, new_uid
from local.cluster.store import Obj

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes "
    "clusters."
)


class RootCaPublisher:
    def __init__(self, ctx: Context, ca_pem: str) -> None:
        self.ctx = ctx
        self.ca_pem = ca_pem

    def run(self, now: float) -> None:
        for namespace in self.ctx.cache.objects(NAMESPACES):
            if not is_deleting(namespace):
                self._publish(name_of(namespace), now)

    def _publish(self, namespace: str, now: float) -> None:
        data = {"ca.crt": self.ca_pem}
        annotations = {"kubernetes.io/description": DESCRIPTION}
        current = self.ctx.store.peek(CONFIGMAPS, namespace, ROOT_CA_CONFIGMAP)
        if current is None:
            self.ctx.create(
                CONFIGMAPS,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": ROOT_CA_CONFIGMAP,
                        "namespace": namespace,
                        "uid": new_uid(),
                        "creationTimestamp": fmt_time(now),
                        "annotations": annotations,
                    },
                    "data": data,
                },
            )
            return
        if current.get("data") == data and (current["metadata"].get("annotations") or {}) == annotations:
            return

        def restore(obj: Obj) -> None:
            obj["data"] = data
            obj.pop("binaryData", None)
            obj["metadata"]["annotations"] = annotations

        self.ctx.update(CONFIGMAPS, current, restore)
