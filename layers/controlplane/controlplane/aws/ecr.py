"""Amazon ECR: resolve an operator's tag to the digest it points at, and confirm a digest exists."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import PlanError


def resolve_image(repository: str, reference: str, *, region: str, registry_id: str | None = None) -> str:
    """The digest of ``repository:reference`` (a tag or a digest); :class:`PlanError` naming what is missing."""
    client = boto3.client("ecr", region_name=region)
    image_id = {"imageDigest": reference} if reference.startswith("sha256:") else {"imageTag": reference}
    kwargs: dict[str, Any] = {"repositoryName": repository, "imageIds": [image_id]}
    if registry_id:
        kwargs["registryId"] = registry_id
    try:
        with translate_aws_errors("ecr:DescribeImages"):
            details = client.describe_images(**kwargs)["imageDetails"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "RepositoryNotFoundException":
            raise PlanError(f"ECR repository {repository!r} does not exist") from None
        if code == "ImageNotFoundException":
            raise PlanError(f"image {repository}:{reference} is not in ECR") from None
        raise
    if not details:
        raise PlanError(f"image {repository}:{reference} is not in ECR")
    return str(details[0]["imageDigest"])
