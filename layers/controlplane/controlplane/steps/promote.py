"""PromoteImages: tag the release's digests for the environment; the rollout deadline counts from here."""

from __future__ import annotations

from datetime import timedelta

from controlplane.aws import lock, promote
from controlplane.models.base import at
from controlplane.models.promote import PromotionReport, PromotionRequest
from controlplane.settings import get_settings


def promote_images(event: PromotionRequest) -> PromotionReport:
    """PromoteImages: tag each digest ``<environment>-<release id>`` and, where tags may move, ``<environment>``.

    Idempotent. In an IMMUTABLE repository the moving ``<environment>`` tag cannot follow a second release, so only
    the release's own tag is written there (the ledger says which release an environment runs).

    The last gate before the first cluster write: the release's rollout deadline (DEPLOY_DEADLINE_SECONDS) counts
    from here, not from the execution's start (an approval may have taken hours).
    """
    settings = get_settings()
    now = at(event.now)
    # A holder that lost its lease (the lock taken over or handed on) retags nothing: LockLostError first.
    locks = lock.LockTable(settings.ledger_table_name, region=settings.region)
    lock.renew(locks, event.lease, now=now, ttl_s=settings.gates.lock_ttl_s)
    results = [
        promote.tag_digest(image, tag, region=settings.region)
        for image in event.images
        for tag in event.tags(moving=promote.tags_move(image.repository, region=settings.region))
    ]
    return PromotionReport(
        environment=event.environment,
        release_id=event.release_id,
        results=results,
        rollout_started_at=now,
        rollout_deadline_at=now + timedelta(seconds=settings.deploy.deadline_seconds),
    )
