"""Settings: read on first use, validated, and every error names the environment variable."""

from __future__ import annotations

import pytest
from controlplane.errors import ConfigurationError
from controlplane.settings import get_settings, reset_settings

pytestmark = pytest.mark.unit

BASE = {
    "ENVIRONMENT": "staging",
    "AWS_REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "CLUSTER_NAME": "sts-staging",
    "LEDGER_TABLE_NAME": "ledger",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    for key in ("TAG_RULES", "DEPLOY_DEADLINE_SECONDS", "MANIFESTS_DIR", "NOTIFICATION_TOPIC_ARN", "BAKE_SECONDS"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_defaults_apply_when_optional_variables_are_absent(env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert settings.environment == "staging"
    assert settings.deploy.deadline_seconds == 900
    assert str(settings.deploy.manifests_dir) == "/opt/kubernetes"
    assert settings.deploy.environment_for_tag("anything") == "staging"
    assert settings.gates.scan_policy.block_at.value == "CRITICAL"
    assert settings.offhours.rules.sleep_replicas == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENVIRONMENT", "qa"),
        ("ACCOUNT_ID", "12345"),
        ("DEPLOY_DEADLINE_SECONDS", "soon"),
        ("TAG_RULES", "not json"),
        ("TAG_RULES", '[{"tag": "v*", "environment": "moon"}]'),
        ("TAG_RULES", "[]"),
        ("BAKE_SECONDS", "-1"),
        ("BAKE_SECONDS", "a while"),
    ],
)
def test_invalid_variable_is_named(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        get_settings()


@pytest.mark.parametrize(
    ("value", "staging", "production"), [(None, 120, 600), ("", 120, 600), ("0", 0, 0), ("45", 45, 45)]
)
def test_the_bake_period_is_the_environments_default_unless_set(
    env: pytest.MonkeyPatch, value: str | None, staging: int, production: int
) -> None:
    if value is not None:
        env.setenv("BAKE_SECONDS", value)
    deploy = get_settings().deploy
    assert (deploy.bake_for("staging"), deploy.bake_for("production")) == (staging, production)


def test_missing_variable_is_named(env: pytest.MonkeyPatch) -> None:
    env.delenv("CLUSTER_NAME")
    with pytest.raises(ConfigurationError, match="CLUSTER_NAME"):
        get_settings()


def test_missing_topic_is_named_when_needed(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="NOTIFICATION_TOPIC_ARN"):
        get_settings().require_topic()


def test_tag_rules_first_match_wins(env: pytest.MonkeyPatch) -> None:
    env.setenv(
        "TAG_RULES",
        '[{"tag": "v[0-9]*", "environment": "production"}, {"tag": "main-*", "environment": "staging"}]',
    )
    settings = get_settings()
    assert settings.deploy.environment_for_tag("v1.2.3") == "production"
    assert settings.deploy.environment_for_tag("main-abc") == "staging"
    assert settings.deploy.environment_for_tag("feature-x") is None


def test_settings_follow_the_environment_of_each_call(env: pytest.MonkeyPatch) -> None:
    assert get_settings().cluster_name == "sts-staging"
    env.setenv("CLUSTER_NAME", "other")
    assert get_settings().cluster_name == "other"


def test_settings_are_read_once_per_environment_until_reset(env: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first  # a warm Lambda does not read its variables again
    reset_settings()
    assert get_settings() is not first
    assert get_settings() == first
