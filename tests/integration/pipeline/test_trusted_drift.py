"""A deploy trusts the ledger's record of the last apply only as far as a recent, complete drift check vouches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from controlplane.aws.drift import DriftReports
from controlplane.models.drift import DriftFinding, DriftKind, DriftMode, DriftReport
from controlplane.models.kube import ObjectRef
from controlplane.settings import Settings, get_settings, reset_settings
from controlplane.steps.apply import trusted_addon_drift, trusted_drift
from moto import mock_aws

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CM = ObjectRef(api_version="v1", kind="ConfigMap", namespace="clinical-trials", name="edc-config")


@pytest.fixture
def settings(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for key, value in {
        "ENVIRONMENT": "staging",
        "AWS_REGION": "us-east-1",
        "ACCOUNT_ID": "123456789012",
        "CLUSTER_NAME": "sts-staging",
        "LEDGER_TABLE_NAME": "ledger",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DRIFT_TRUST_SECONDS", raising=False)
    reset_settings()
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        yield get_settings()
    reset_settings()


def _check(age_s: int, findings: list[DriftFinding] | None = None, **fields: object) -> None:
    found = findings or []
    report = DriftReport(
        environment="staging",
        checked_at=NOW - timedelta(seconds=age_s),
        execution_arn="arn:drift",
        mode=DriftMode.REPORT,
        release_id="rel-1",
        findings=found,
        findings_total=len(found),
    ).model_copy(update=fields)
    DriftReports("ledger", region="us-east-1").record(report)


def test_a_recent_clean_drift_check_lets_the_deploy_trust_the_record(settings: Settings) -> None:
    _check(600)
    assert trusted_drift("staging", NOW, settings) == frozenset()


def test_what_the_recent_check_found_is_sent_again(settings: Settings) -> None:
    _check(600, [DriftFinding(ref=CM, kind=DriftKind.CHANGED, path="data.VALUE", live="x", desired="1")])
    assert trusted_drift("staging", NOW, settings) == {CM.key}


@pytest.mark.parametrize(
    ("age_s", "fields", "why"),
    [
        (4_000, {}, "older than DRIFT_TRUST_SECONDS (3,900 s by default)"),
        (-60, {}, "from the future"),
        (600, {"skipped": "the lock is held"}, "a skipped check compared nothing"),
        (600, {"findings_total": 500}, "the ledger holds only some of its findings"),
    ],
)
def test_without_a_recent_complete_check_the_deploy_checks_the_live_objects(
    settings: Settings, age_s: int, fields: dict[str, object], why: str
) -> None:
    _check(age_s, **fields)
    assert trusted_drift("staging", NOW, settings) is None, why


def test_no_check_at_all_or_trust_turned_off_checks_the_live_objects(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert trusted_drift("staging", NOW, settings) is None
    _check(60)
    monkeypatch.setenv("DRIFT_TRUST_SECONDS", "0")
    reset_settings()
    assert trusted_drift("staging", NOW, get_settings()) is None


AUTOSCALER = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="kube-system", name="cluster-autoscaler")
WEBHOOK = ObjectRef(api_version="v1", kind="Service", namespace="kube-system", name="aws-load-balancer-webhook-service")
NEW_ADDON = ObjectRef(api_version="v1", kind="ServiceAccount", namespace="kube-system", name="new-addon")


def _addon(ref: ObjectRef) -> dict[str, object]:
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": {"name": ref.name, "namespace": ref.namespace}}


def test_the_addons_trust_a_check_only_for_what_it_compared_and_resend_what_it_found(settings: Settings) -> None:
    addons = [_addon(AUTOSCALER), _addon(WEBHOOK), _addon(NEW_ADDON)]
    found = [DriftFinding(ref=AUTOSCALER, kind=DriftKind.CHANGED, path="spec.template.spec.containers[name=x].image")]
    _check(600, found, addons_checked=sorted([AUTOSCALER.key, WEBHOOK.key]))
    # the finding is sent again; the add-on object the check never saw (new in this release) too; the rest trusted
    assert trusted_addon_drift(addons, "staging", NOW, settings) == {AUTOSCALER.key, NEW_ADDON.key}


def test_a_check_that_compared_no_addons_leaves_them_to_their_live_objects(settings: Settings) -> None:
    _check(600)  # a check made before drift checks covered the add-ons (addons_checked empty)
    assert trusted_addon_drift([_addon(WEBHOOK)], "staging", NOW, settings) is None
    assert trusted_drift("staging", NOW, settings) == frozenset()  # the release's own objects still trust it
    _check(300, addons_checked=[WEBHOOK.key])  # the next check compared it and found it in sync
    assert trusted_addon_drift([_addon(WEBHOOK)], "staging", NOW, settings) == frozenset()
    assert trusted_addon_drift([_addon(WEBHOOK)], "staging", NOW + timedelta(seconds=3_700), settings) is None
