"""SmokeTest: each service's ``/health`` answers 2xx through the API server's service proxy."""

from __future__ import annotations

from controlplane.aws.ledger import Ledger
from controlplane.cluster import connect
from controlplane.errors import SmokeTestFailedError
from controlplane.kube.smoke import smoke_test
from controlplane.models.release import SmokeInput, SmokeOutput
from controlplane.observability import correlate, logger, tracer
from controlplane.settings import get_settings


@tracer.capture_method
def smoke_test_release(event: SmokeInput) -> SmokeOutput:
    """Call every target once; :class:`SmokeTestFailedError` naming each one that did not answer 2xx."""
    correlate(execution_arn=event.execution_arn, release_id=event.release_id)
    settings = get_settings()
    targets = event.targets or []
    if event.rollout is not None:  # the apply's smoke targets, by reference
        targets = Ledger(settings.ledger_table_name, region=settings.region).rollout(event.rollout).smoke_targets
    api = connect(settings)
    failed: list[str] = []
    passed: list[str] = []
    try:
        for target in targets:
            result = smoke_test(api, namespace=target.namespace, service=target.service, port=target.port)
            where = f"{target.namespace}/{target.service}:{target.port}{result.path}"
            if result.ok:
                passed.append(target.service)
            else:
                failed.append(f"{where} answered {result.status_code}: {result.body_excerpt[:200]}")
    finally:
        api.close()
    if failed:
        raise SmokeTestFailedError("smoke test failed: " + "; ".join(failed))
    logger.info("smoke test passed", extra={"services": passed})
    return SmokeOutput(release_id=event.release_id, passed=passed)
