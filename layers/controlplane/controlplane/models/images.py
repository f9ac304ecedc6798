"""Images the gates carry: one service's image pinned by digest, and the list form a release's ``images`` takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator

from controlplane import platform
from controlplane.models.base import StrictModel
from controlplane.models.release import Digest, ServiceName


class ImageRef(StrictModel):
    """One service's image, pinned by digest."""

    service: ServiceName
    digest: Digest

    @property
    def repository(self) -> str:
        return f"{platform.REPOSITORY_PREFIX}{self.service}"


def images_of(images: Mapping[str, str]) -> list[ImageRef]:
    """``service -> digest`` as image references, ordered by service."""
    return [ImageRef(service=s, digest=images[s]) for s in sorted(images)]


def _images_from_mapping(value: Any) -> Any:
    """The state machine passes a release's ``images`` as ``{service: digest}``; the gates take a list."""
    if isinstance(value, Mapping):
        return [{"service": str(s), "digest": value[s]} for s in sorted(value)]
    return value


Images = Annotated[list[ImageRef], BeforeValidator(_images_from_mapping)]
"""A list of image references, also accepted as ``{service: digest}`` (a release's ``images``)."""
