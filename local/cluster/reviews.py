"""Self reviews: ``SelfSubjectAccessReview`` and ``SelfSubjectRulesReview`` (authorization.k8s.io/v1) and
``SelfSubjectReview`` (authentication.k8s.io/v1), what ``kubectl auth can-i`` and ``kubectl auth whoami`` create.

They are never stored: the answer is computed from the requesting user and the authorizer and returned with 201.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.cluster import status
from local.cluster.access import User
from local.cluster.rbac import Attributes, Authorizer

Obj = dict[str, Any]

REVIEW_RESOURCES = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)
_WEBHOOK_INCOMPLETE = "webhook authorizer does not support user rule resolution"


def _user_info(user: User) -> Obj:
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


def _spec(body: Mapping[str, Any], kind: str) -> Obj:
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise status.invalid(kind, "authorization.k8s.io", "", [("spec", "FieldValueRequired", "Required value")])
    return spec


def access_review(body: Mapping[str, Any], user: User, authorizer: Authorizer) -> Obj:
    """``SelfSubjectAccessReview``: exactly one of ``resourceAttributes`` / ``nonResourceAttributes``."""
    kind = "SelfSubjectAccessReview"
    spec = _spec(body, kind)
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (non is None):
        raise status.invalid(
            kind,
            "authorization.k8s.io",
            "",
            [
                (
                    "spec.resourceAttributes",
                    "FieldValueInvalid",
                    "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    if isinstance(res, Mapping):
        attrs = Attributes(
            verb=str(res.get("verb") or ""),
            resource_request=True,
            group=str(res.get("group") or ""),
            resource=str(res.get("resource") or ""),
            subresource=str(res.get("subresource") or ""),
            namespace=str(res.get("namespace") or ""),
            name=str(res.get("name") or ""),
        )
    else:
        assert isinstance(non, Mapping)
        attrs = Attributes(verb=str(non.get("verb") or ""), resource_request=False, path=str(non.get("path") or ""))
    allowed = authorizer.allowed(user, attrs)
    verdict: Obj = {"allowed": allowed}
    return {
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": verdict,
    }


def rules_review(body: Mapping[str, Any], user: User, authorizer: Authorizer) -> Obj:
    """``SelfSubjectRulesReview`` for ``spec.namespace``: RBAC's rules; EKS access policies (a webhook) cannot list
    theirs, so the answer is then ``incomplete`` as on EKS."""
    kind = "SelfSubjectRulesReview"
    spec = _spec(body, kind)
    namespace = str(spec.get("namespace") or "")
    resource_rules: list[Obj] = []
    non_resource_rules: list[Obj] = []
    for rule in authorizer.rbac_rules(user, namespace):
        if rule.non_resource_urls:
            non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
        else:
            obj = rule.to_obj()
            resource_rules.append(obj)
    verdict: Obj = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
    if any(p.applies(namespace) for p in user.policies):
        verdict["incomplete"] = True
        verdict["evaluationError"] = _WEBHOOK_INCOMPLETE
    return {
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": verdict,
    }


def self_review(user: User) -> Obj:
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": _user_info(user)},
    }


def review(resource: str, body: Mapping[str, Any], user: User, authorizer: Authorizer) -> Obj:
    if resource == "selfsubjectaccessreviews":
        return access_review(body, user, authorizer)
    if resource == "selfsubjectrulesreviews":
        return rules_review(body, user, authorizer)
    return self_review(user)
