"""VerifyStagingHealth (production): every digest must have been healthy in staging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controlplane.errors import NotHealthyInStagingError
from controlplane.models.base import StrictModel
from controlplane.models.images import ImageRef, Images


class StagingHealthInput(StrictModel):
    """Production: the release's images, and optionally the staging release they come from."""

    images: Images
    source_release_id: str | None = None


class StagingHealth(StrictModel):
    healthy: bool
    staging_release_ids: list[str]


def require_healthy_in_staging(images: Iterable[ImageRef], healthy: Mapping[str, set[str]]) -> None:
    """Production deploys only digests that were healthy in staging (``healthy``: service -> digests)."""
    missing = [f"{i.service}@{i.digest}" for i in images if i.digest not in healthy.get(i.service, set())]
    if missing:
        raise NotHealthyInStagingError(f"never healthy in staging: {', '.join(missing)}")
