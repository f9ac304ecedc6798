"""The vendored add-ons' catalog (``manifests/addons/addons.yaml``): what each add-on may install and run.

Rendering (``controlplane.render``) reads it to render an environment's add-ons; validation (``controlplane.validate``)
checks every add-on object against its entry. The objects of an add-on carry :data:`ADDON_LABEL` = its name.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import Field, model_validator

from controlplane.models.base import StrictModel

ADDON_LABEL: Final = "synthetictrialstudio.io/addon"
# The catalog entry an add-on object was rendered from (its JSON), stamped on the object: a release replayed from
# the ledger (verified by digest) is checked against the entry of its own time, not today's catalog.
ADDON_SPEC_ANNOTATION: Final = "synthetictrialstudio.io/addon-spec"
PLACEHOLDERS: Final = frozenset({"ACCOUNT_ID", "REGION", "ENVIRONMENT", "CLUSTER_NAME"})
_NAME: Final = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_FILE: Final = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml$")


class AddonSpec(StrictModel):
    """One vendored add-on (see the catalog's header for the fields)."""

    version: str = Field(min_length=1)
    namespace: str = Field(pattern=_NAME)
    files: list[str] = Field(min_length=1)
    substitute: list[str] = Field(default_factory=list)
    images: list[str] = Field(min_length=1)
    provides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _files_known(self) -> AddonSpec:
        bad = [f for f in self.files if not _FILE.match(f)]
        if bad:
            raise ValueError(f"files: not a YAML file name beside the catalog entry: {bad}")
        unknown = [f for f in self.substitute if f not in self.files]
        if unknown:
            raise ValueError(f"substitute: not in files: {unknown}")
        return self


class AddonCatalog(StrictModel):
    version: Literal[1]
    addons: dict[str, AddonSpec]

    @model_validator(mode="after")
    def _names(self) -> AddonCatalog:
        bad = [name for name in self.addons if not re.match(_NAME, name)]
        if bad:
            raise ValueError(f"addons: names must be DNS labels: {bad}")
        return self
