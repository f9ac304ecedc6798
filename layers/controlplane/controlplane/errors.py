"""Errors are types. The state machines' Retry/Catch match these class names (Lambda reports ``errorType``).

- ``RetryableError`` and its subclasses: transient; ASL retries them with back-off and jitter.
- ``PermanentError`` and its subclasses: retrying cannot help; ASL routes them to rollback or failure.

Kubernetes ``ApiException`` statuses map through :func:`controlplane.kube.errors.from_api_exception`
(modelled on kopf's ``errors.py``): 404 NotFound, 409 Conflict, 422 Invalid are permanent; 429 and 5xx retryable.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of every error the control plane raises on purpose."""


class PermanentError(ControlPlaneError):
    """Retrying the same step with the same input cannot succeed."""


class RetryableError(ControlPlaneError):
    """A transient failure: throttling, 5xx, timeouts. Safe to retry the same step."""


class InputValidationError(PermanentError):
    """The input of an execution or a step is malformed; the message names the field."""


class ConfigurationError(PermanentError):
    """The function's configuration (environment variables) is missing or invalid."""


class ManifestValidationError(PermanentError):
    """A rendered Kubernetes object fails schema or policy validation; nothing was written."""


class PlanError(PermanentError):
    """The requested release cannot be planned (unknown repository, missing digest, quarantined digest, ...)."""


class KubernetesNotFoundError(PermanentError):
    """404 from the Kubernetes API."""


class KubernetesConflictError(PermanentError):
    """409 from the Kubernetes API (stale resourceVersion, server-side apply conflict, already exists)."""


class KubernetesInvalidError(PermanentError):
    """422 from the Kubernetes API: the server rejected an object."""


class KubernetesForbiddenError(PermanentError):
    """401/403 from the Kubernetes API: the deploy role lacks a permission."""


class PreflightForbiddenError(KubernetesForbiddenError):
    """Before the first write: the API server says (SelfSubjectAccessReview) the deploy role lacks permissions the
    release needs; the message names each one. Nothing was written."""


class KubernetesTransientError(RetryableError):
    """429, 5xx, timeouts or connection resets from the Kubernetes API."""


class AwsThrottledError(RetryableError):
    """An AWS API throttled or failed transiently."""


class RolloutFailedError(PermanentError):
    """A workload of the release will not become healthy (fail-fast pod state or progress deadline)."""


class PlatformNotReadyError(PermanentError):
    """The release will not become healthy for reasons of the platform, not of its images: a Secret/ConfigMap it
    refers to is missing, no node can run its pods, the registry fails, a workload object is missing. Rolled back
    like any failure, never quarantined."""


class AddonNotReadyError(PlatformNotReadyError):
    """An add-on the release needs (manifests/addons) did not become ready: the release's own objects were not
    applied, and nothing is quarantined (the images were never run)."""


class DeadlineExceededError(PermanentError):
    """The release did not become healthy within its overall deadline."""


class SmokeTestFailedError(PermanentError):
    """A service's /health did not answer 200 through the API server's service proxy."""


class RollbackFailedError(PermanentError):
    """Rolling back to the last known-good release failed: operators must act."""


# ---- Deploy gates (lock, scan, provision, promote, approval, freeze) ----


class LockHeldError(RetryableError):
    """The environment's deploy lock is held by another running execution (rollback/scaling wait and retry)."""


class LockLostError(PermanentError):
    """This execution no longer owns the environment's lock (it expired and was taken over)."""


class ScanBlockedError(PermanentError):
    """An image has vulnerability findings at or above the blocking severity; the message names them."""


class ScanFailedError(PermanentError):
    """ECR could not scan an image (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE) or the scan missed its deadline."""


class StackFailedError(PermanentError):
    """A platform CloudFormation stack failed to create or update; the message carries the failing resources."""


class ImageTagConflictError(PermanentError):
    """An immutable tag already points at a different digest than the one being promoted."""


class ImageNotFoundError(PermanentError):
    """A digest to promote is not in its repository."""


class NotHealthyInStagingError(PermanentError):
    """A production release names a digest that was never healthy in staging."""


class ApprovalRejectedError(PermanentError):
    """An approver rejected the production release."""


class ApprovalStateError(PermanentError):
    """An approval decision arrived for a release that is not awaiting one (already decided, expired, unknown)."""


class ApprovalNotVerifiedError(PermanentError):
    """After the approval callback: no signed APPROVED decision for this release, execution and plan (a forged or
    foreign callback, a rejection, a decision for other digests). The execution ends refused."""


class OperatorNotAuthorizedError(PermanentError):
    """The caller may not do this: not an approver, approving his own release, or a force/production override
    without the operator API's signed identity."""


class QuarantineStateError(PermanentError):
    """An operator released a digest from quarantine that is not quarantined (for that service)."""


class FreezeWindowError(PermanentError):
    """The environment is inside a freeze window and the deploy was not forced."""


# ---- Off-hours scaling ----


class NodegroupBusyError(RetryableError):
    """An EKS node group is being updated (ResourceInUseException); the resize is retried."""


class WorkloadsNotRestoredError(PermanentError):
    """A scale-up ended with workloads that did not come back healthy; the summary names them and why."""
