"""Canary: the private moto seams the harness patches still exist with the shape it relies on."""

from __future__ import annotations

from typing import Any

import pytest

from local.aws import SeamMovedError, check_seams

pytestmark = pytest.mark.integration


def test_every_moto_seam_is_where_the_harness_expects_it() -> None:
    check_seams()


def test_a_moved_seam_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda import models  # noqa: PLC0415 - moto is imported lazily everywhere in the harness

    def invoke(self: Any, payload: Any) -> None: ...

    monkeypatch.setattr(models.LambdaFunction, "invoke", invoke)
    with pytest.raises(SeamMovedError, match=r"LambdaFunction\.invoke"):
        check_seams()


def test_step_functions_lambda_invokes_reach_the_in_process_handler(harness_cloud: Any) -> None:
    before = len(harness_cloud.runtime.invocations)

    result = harness_cloud.run("Pipeline", {"n": 3, "mode": "fail", "items": []})

    assert result.status == "SUCCEEDED"
    called = [i.function_name for i in harness_cloud.runtime.invocations[before:]]
    assert called == ["harness-WorkFunction", "harness-FailFunction"]


def test_a_tls_only_bucket_policy_denies_only_what_its_condition_names() -> None:
    import json  # noqa: PLC0415

    from local.aws import LocalCloud  # noqa: PLC0415

    deny_insecure = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    deny_all = {**deny_insecure, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    with LocalCloud(None) as cloud:
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="tls-only")
        s3.put_bucket_policy(
            Bucket="tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny_insecure]})
        )
        s3.put_object(Bucket="tls-only", Key="k", Body=b"over https")  # the condition does not hold: not denied
        s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny_all]}))
        with pytest.raises(s3.exceptions.ClientError, match=r"403|Forbidden|AccessDenied"):
            s3.put_object(Bucket="tls-only", Key="k", Body=b"denied")


@pytest.mark.parametrize(
    ("key_spec", "algorithm"),
    [("RSA_2048", "RSASSA_PSS_SHA_256"), ("ECC_NIST_P256", "ECDSA_SHA_256")],
)
def test_an_asymmetric_kms_key_signs_with_the_key_pair_made_on_first_use(key_spec: str, algorithm: str) -> None:
    """moto's key pairs are made when first read (the seam in local.aws.seams): signing, verifying and the public key
    still agree, and the public key verifies the signature outside KMS too."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415
    from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: PLC0415

    from local.aws import LocalCloud  # noqa: PLC0415

    with LocalCloud(None) as cloud:
        kms = cloud.client("kms")
        key = kms.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        signature = kms.sign(KeyId=key, Message=b"release", SigningAlgorithm=algorithm)["Signature"]
        verified = kms.verify(KeyId=key, Message=b"release", Signature=signature, SigningAlgorithm=algorithm)
        public_der = kms.get_public_key(KeyId=key)["PublicKey"]
        other = kms.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        other_public = kms.get_public_key(KeyId=other)["PublicKey"]

    assert verified["SignatureValid"] is True
    assert other_public != public_der  # each key its own pair
    public = load_der_public_key(public_der)
    if isinstance(public, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
        public.verify(signature, b"release", pss, hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, b"release", ec.ECDSA(hashes.SHA256()))
