"""Off-hours configuration: ``OFFHOURS_CONFIG`` as :class:`OffhoursConfig` (``controlplane.settings`` reads it).

Its own module so that the settings, which every handler loads, need none of the snapshot and state machine payloads
of ``controlplane.models.offhours`` (25 models).
"""

from __future__ import annotations

import fnmatch

from pydantic import Field

from controlplane import platform
from controlplane.models.base import StrictModel

# On-demand Linux prices in us-east-1 (USD per hour), the instance types our node groups use. A small table on
# purpose: unknown types count node-hours but no cost (and say so in the log line).
DEFAULT_PRICES: dict[str, float] = {
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "t3a.large": 0.0752,
    "m5.large": 0.096,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "c6i.xlarge": 0.17,
    "r6i.large": 0.126,
}


class NodegroupRule(StrictModel):
    """Node groups whose name matches ``match`` (a glob) sleep at ``desired`` nodes (and ``min_size`` = desired)."""

    match: str = Field(min_length=1)
    desired: int = Field(ge=0)


class OffhoursConfig(StrictModel):
    """``OFFHOURS_CONFIG`` (JSON; ``controlplane.settings`` reads it, with ``OFFHOURS_WAKE_ON_DEPLOY``); every field
    has a safe default."""

    namespaces: tuple[str, ...] = Field(default=(platform.NAMESPACE,), min_length=1)
    sleep_replicas: int = Field(default=0, ge=0, description="Workloads' off-hours size (HPAs are pinned when > 0).")
    nodegroups: tuple[NodegroupRule, ...] = Field(
        default=(NodegroupRule.model_construct(match="*", desired=0),),  # a default: not validated, no validator built
        description="First matching rule wins; a group no rule matches is left as it is.",
    )
    exclude: tuple[str, ...] = Field(
        default=(), description="Globs on '<namespace>' or '<namespace>/<name>': excluded objects are untouched."
    )
    exclude_nodegroups: tuple[str, ...] = ()
    wake_last: tuple[str, ...] = Field(
        default=(platform.EDGE_SERVICE,), description="Workloads restored after every other (others call into them)."
    )
    wake_first: tuple[str, ...] = Field(default=(), description="Restored before the rest (besides StatefulSets).")
    wake_on_deploy: bool = Field(default=False, description="A deploy while asleep wakes the environment.")
    lock_wait_s: int = Field(
        default=1800, ge=0, le=4 * 3600, description="How long a scale-down/up waits for a running deploy's lock."
    )
    nodes_timeout_s: int = Field(default=900, ge=60, le=7200)
    wave_timeout_s: int = Field(default=600, ge=60, le=7200)
    prices: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    spot_price_factor: float = Field(default=0.35, gt=0, le=1, description="Spot price as a fraction of on-demand.")

    def namespace_excluded(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, p) for p in self.exclude if "/" not in p)

    def object_excluded(self, namespace: str, name: str) -> bool:
        return self.namespace_excluded(namespace) or any(
            fnmatch.fnmatchcase(f"{namespace}/{name}", p) for p in self.exclude if "/" in p
        )

    def nodegroup_sleep_size(self, name: str) -> int | None:
        """How many nodes group ``name`` keeps overnight; ``None`` when excluded or no rule matches."""
        if any(fnmatch.fnmatchcase(name, p) for p in self.exclude_nodegroups):
            return None
        for rule in self.nodegroups:
            if fnmatch.fnmatchcase(name, rule.match):
                return rule.desired
        return None

    def hourly_price(self, instance_type: str, capacity_type: str | None) -> float | None:
        price = self.prices.get(instance_type)
        if price is None:
            return None
        return price * self.spot_price_factor if capacity_type == "SPOT" else price
