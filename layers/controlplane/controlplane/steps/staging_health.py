"""VerifyStagingHealth (production): every digest must have been healthy in staging (its ledger says so)."""

from __future__ import annotations

from controlplane.aws.ledger import Ledger
from controlplane.errors import ConfigurationError
from controlplane.models.release import ReleaseStatus
from controlplane.models.staging_health import StagingHealth, StagingHealthInput, require_healthy_in_staging
from controlplane.settings import get_settings


def verify_staging_health(event: StagingHealthInput) -> StagingHealth:
    """VerifyStagingHealth (production): every digest must have been healthy in staging (its ledger says so)."""
    settings = get_settings()
    gates = settings.gates
    table = gates.staging_ledger_table_name
    if not table:
        raise ConfigurationError(
            "STAGING_LEDGER_TABLE_NAME is not set: production reads staging's health from the staging control "
            "plane's ledger (<ProjectName>-staging-ledger, set by template.yaml)"
        )
    ledger = Ledger(table, region=settings.region)
    ids: list[str] = []
    if event.source_release_id:
        ids.append(event.source_release_id)
    lkg = ledger.last_known_good("staging")
    if lkg is not None and lkg.release_id not in ids:
        ids.append(lkg.release_id)
    healthy: dict[str, set[str]] = {}
    for release_id in ids:
        record = ledger.get_release(release_id)
        if record is None or record.status is not ReleaseStatus.SUCCEEDED or record.healthy_at is None:
            continue
        for service, digest in record.images.items():
            healthy.setdefault(service, set()).add(digest)
    require_healthy_in_staging(event.images, healthy)
    return StagingHealth(healthy=True, staging_release_ids=ids)
