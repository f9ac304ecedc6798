"""Promote a digest to an environment's tags through the registry API (no pull, no push of layers).

``batch_get_image`` returns the manifest of the digest exactly as stored; ``put_image`` stores it again under the new
tag, which ECR records as one more tag of the same image. Safe to repeat, also on immutable-tag repositories: when
the tag already names this digest, ECR answers ``ImageAlreadyExistsException`` (same manifest, same tag); when an
immutable tag names another digest it answers ``ImageTagAlreadyExistsException`` (moto says
``ImageAlreadyExistsException`` for both). Either way the tag is looked up: the same digest is a no-op, another one
is an :class:`~controlplane.errors.ImageTagConflictError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ImageNotFoundError, ImageTagConflictError
from controlplane.models.images import ImageRef
from controlplane.models.promote import TagOutcome, TagResult

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

TAG_EXISTS_CODES = frozenset({"ImageAlreadyExistsException", "ImageTagAlreadyExistsException"})
ACCEPTED_MEDIA_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]


def tag_digest(image: ImageRef, tag: str, *, region: str | None = None, client: ECRClient | None = None) -> TagResult:
    """Point ``tag`` of the image's repository at its digest (see the module docstring)."""
    ecr: ECRClient = client or boto3.client("ecr", region_name=region)
    with translate_aws_errors("ecr:BatchGetImage"):
        found = ecr.batch_get_image(
            repositoryName=image.repository,
            imageIds=[{"imageDigest": image.digest}],
            acceptedMediaTypes=ACCEPTED_MEDIA_TYPES,
        )
    images = found.get("images") or []
    if not images or "imageManifest" not in images[0]:
        raise ImageNotFoundError(f"{image.repository}@{image.digest} is not in ECR")
    manifest = images[0]["imageManifest"]
    media_type = images[0].get("imageManifestMediaType")
    try:
        with translate_aws_errors("ecr:PutImage"):
            if media_type:
                ecr.put_image(
                    repositoryName=image.repository,
                    imageManifest=manifest,
                    imageManifestMediaType=media_type,
                    imageTag=tag,
                    imageDigest=image.digest,
                )
            else:
                ecr.put_image(
                    repositoryName=image.repository, imageManifest=manifest, imageTag=tag, imageDigest=image.digest
                )
    except ClientError as exc:
        if error_code(exc) not in TAG_EXISTS_CODES:
            raise
        current = tagged_digest(ecr, image.repository, tag)
        if current != image.digest:
            raise ImageTagConflictError(
                f"{image.repository}:{tag} is immutable and already points at {current}, not {image.digest}"
            ) from None
        return TagResult(service=image.service, digest=image.digest, tag=tag, outcome=TagOutcome.UNCHANGED)
    return TagResult(service=image.service, digest=image.digest, tag=tag, outcome=TagOutcome.TAGGED)


def tags_move(repository: str, *, region: str | None = None, client: ECRClient | None = None) -> bool:
    """Whether tags of ``repository`` can be moved to another digest (``imageTagMutability`` MUTABLE).

    An environment's moving tag (``staging``) can only follow releases in a mutable repository; in an IMMUTABLE one
    (our ecr stack's choice) the release's own tag (``staging-<release id>``) is the record.
    """
    ecr: ECRClient = client or boto3.client("ecr", region_name=region)
    with translate_aws_errors("ecr:DescribeRepositories"):
        found = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
    return bool(found) and found[0].get("imageTagMutability", "MUTABLE") == "MUTABLE"


def tagged_digest(ecr: ECRClient, repository: str, tag: str) -> str | None:
    """The digest ``repository:tag`` points at, ``None`` when the tag does not exist."""
    try:
        with translate_aws_errors("ecr:DescribeImages"):
            details = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    except ClientError as exc:
        if error_code(exc) == "ImageNotFoundException":
            return None
        raise
    return str(details[0]["imageDigest"]) if details else None
