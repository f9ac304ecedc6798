"""KMS for the operator path: HMAC signatures over operator material, and the approval task token kept encrypted.

* ``DECISION_KEY_ID`` (an ``HMAC_256`` key): only the operator API's role may ``kms:GenerateMac``; the steps that check
  a signature may ``kms:VerifyMac``. Whoever can write the ledger or start an execution still cannot sign.
* ``APPROVAL_TOKEN_KEY_ID`` (a symmetric key): RequestApproval ``kms:Encrypt``s the task token with the release and
  execution as encryption context; only the operator API's role may ``kms:Decrypt``. The ledger holds ciphertext only,
  so a reader of the ledger holds no token (the execution history still shows it: that is why VerifyApproval exists).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError
from pydantic import ValidationError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import OperatorNotAuthorizedError
from controlplane.models.drift import DriftMode
from controlplane.models.operator import UNSIGNED_ROLLBACK, OperatorAction, OperatorSignature, canonical
from controlplane.models.release import OperatorRollbackRequest, validation_message

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

    from controlplane.settings import Settings

MAC_ALGORITHM: Final = "HMAC_SHA_256"


def _kms(region: str | None, client: KMSClient | None) -> KMSClient:
    return client or boto3.client("kms", region_name=region)


def sign(
    key_id: str, material: Mapping[str, Any], *, region: str | None = None, client: KMSClient | None = None
) -> str:
    """Base64 HMAC of :func:`canonical` ``material`` by the KMS key ``key_id``."""
    with translate_aws_errors("kms:GenerateMac"):
        response = _kms(region, client).generate_mac(
            KeyId=key_id, MacAlgorithm=MAC_ALGORITHM, Message=canonical(material)
        )
    return base64.b64encode(response["Mac"]).decode()


def verify(
    key_id: str, material: Mapping[str, Any], mac: str, *, region: str | None = None, client: KMSClient | None = None
) -> bool:
    """Whether ``mac`` is the key's HMAC of ``material`` (a malformed or foreign MAC is simply not valid)."""
    try:
        raw = base64.b64decode(mac, validate=True)
    except ValueError:
        return False
    try:
        with translate_aws_errors("kms:VerifyMac"):
            response = _kms(region, client).verify_mac(
                KeyId=key_id, MacAlgorithm=MAC_ALGORITHM, Message=canonical(material), Mac=raw
            )
    except ClientError as exc:
        if error_code(exc) in {"KMSInvalidMacException", "ValidationException"}:
            return False
        raise
    return bool(response.get("MacValid"))


def encrypt_token(
    key_id: str, token: str, context: Mapping[str, str], *, region: str | None = None, client: KMSClient | None = None
) -> str:
    """The task token encrypted under ``context`` (base64 ciphertext; the token itself is never returned or logged)."""
    with translate_aws_errors("kms:Encrypt"):
        response = _kms(region, client).encrypt(KeyId=key_id, Plaintext=token.encode(), EncryptionContext=dict(context))
    return base64.b64encode(response["CiphertextBlob"]).decode()


def decrypt_token(
    ciphertext: str, context: Mapping[str, str], *, region: str | None = None, client: KMSClient | None = None
) -> str:
    """The task token back (the same encryption context, or KMS refuses: a ciphertext cannot change release)."""
    with translate_aws_errors("kms:Decrypt"):
        response = _kms(region, client).decrypt(
            CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=dict(context)
        )
    return bytes(response["Plaintext"]).decode()


def operator_of(
    raw: Mapping[str, Any], *, execution_arn: str, key_id: str | None, region: str | None = None
) -> OperatorSignature | None:
    """The operator API's verified signature in an execution's input ``raw``, or ``None`` when it has none.

    A signature that does not verify (another execution's, an edited request, made up) is refused, never ignored.
    """
    if "operator" not in raw:
        return None
    try:
        signature = OperatorSignature.model_validate(raw["operator"])
    except ValidationError as exc:
        raise OperatorNotAuthorizedError(f"operator: {validation_message(exc)}") from None
    if not key_id:
        raise OperatorNotAuthorizedError("operator: DECISION_KEY_ID is not set, so no signature can be verified")
    name = execution_arn.rpartition(":")[2]
    if not verify(key_id, signature.material(execution_name=name, request=raw), signature.mac, region=region):
        raise OperatorNotAuthorizedError(
            "operator: the signature does not match this execution and request (only the operator API signs)"
        )
    return signature


def requester_of(
    raw: Mapping[str, Any], *, force: bool, execution_arn: str, key_id: str | None, region: str | None = None
) -> str | None:
    """The authenticated principal who asked for this deploy (``None``: nobody signed); ``force`` needs one."""
    signature = operator_of(raw, execution_arn=execution_arn, key_id=key_id, region=region)
    if signature is None:
        if force:
            raise OperatorNotAuthorizedError(
                "force: forcing through a freeze window or a quarantine needs an authenticated operator; deploy "
                'through the operator API ({"action": "deploy", ..., "force": true}), not by starting the state '
                "machine directly"
            )
        return None
    if signature.action is not OperatorAction.DEPLOY:
        raise OperatorNotAuthorizedError(f"operator: signed for {signature.action.value}, not for deploy")
    return signature.principal


def signed_by(
    raw: Mapping[str, Any],
    action: OperatorAction,
    *,
    execution_arn: str,
    key_id: str | None,
    how: str,
    region: str | None = None,
) -> str:
    """The authenticated principal who asked for ``action`` (always a person's action: an operator rollback or
    acknowledgement); :class:`OperatorNotAuthorizedError` naming ``how`` to do it when nobody signed."""
    signature = operator_of(raw, execution_arn=execution_arn, key_id=key_id, region=region)
    if signature is None:
        raise OperatorNotAuthorizedError(f"operator: {how}")
    if signature.action is not action:
        raise OperatorNotAuthorizedError(f"operator: signed for {signature.action.value}, not for {action.value}")
    return signature.principal


def rollback_requester(request: OperatorRollbackRequest, *, execution_arn: str, settings: Settings) -> str | None:
    """Who asked for a rollback: the signed operator's principal, or ``None`` for the drift state machine's heal.

    A person's rollback or acknowledgement needs the operator API's signature in every environment. The drift heal
    (``trigger: drift``) cannot sign (only the operator API's role may), so it is honoured unsigned only where this
    environment heals drift (``DRIFT_MODE=heal``, never production) and, in ResolveRollbackTarget, only to re-apply
    the last known-good release: the most a forged heal can do is what the heal itself would do. AcquireLock and
    ResolveRollbackTarget both ask, so an unsigned rollback never holds the lock.
    """
    raw = request.model_dump(mode="json", exclude_unset=True)
    environment, drift_mode = settings.environment, settings.drift_mode
    if request.trigger == "drift" and "operator" not in raw:
        if drift_mode is not DriftMode.HEAL or environment == "production":
            raise OperatorNotAuthorizedError(
                f"trigger: {environment} does not heal drift (DriftMode {drift_mode.value}), so an unsigned 'drift' "
                "rollback did not come from the drift state machine; "
                + UNSIGNED_ROLLBACK.format(environment=environment)
            )
        if request.acknowledge:
            raise OperatorNotAuthorizedError(
                "acknowledge: a drift heal re-applies the last known-good, it acknowledges nothing"
            )
        return None
    return signed_by(
        raw,
        OperatorAction.ROLLBACK,
        execution_arn=execution_arn,
        key_id=settings.decision_key_id,
        region=settings.region,
        how=UNSIGNED_ROLLBACK.format(environment=environment),
    )
