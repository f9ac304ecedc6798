"""Planning without AWS: parsing the trigger, tag rules, desired images and what changed."""

from __future__ import annotations

from typing import Any

import pytest
from controlplane import platform
from controlplane.errors import InputValidationError, PlanError
from controlplane.models.release import ConsoleRequest, EcrPushEvent, parse_request
from controlplane.settings import DeploySettings, Settings
from controlplane.steps.plan import changed_images, desired_images, requested_images

from tests.conftest import load_event

pytestmark = pytest.mark.unit


def settings(**overrides: Any) -> Settings:
    values = {
        "ENVIRONMENT": "staging",
        "AWS_REGION": "us-east-1",
        "ACCOUNT_ID": "123456789012",
        "CLUSTER_NAME": "c",
        "LEDGER_TABLE_NAME": "t",
        "TAG_RULES": '[{"tag": "main-*", "environment": "staging"}, {"tag": "v*", "environment": "production"}]',
        **overrides,
    }
    return Settings.model_validate({**values, "deploy": DeploySettings.model_validate(values)})


def test_an_ecr_event_and_a_console_request_are_told_apart() -> None:
    assert isinstance(parse_request(load_event("ecr_push")), EcrPushEvent)
    assert isinstance(parse_request(load_event("console_deploy")), ConsoleRequest)


def test_malformed_input_fails_naming_the_field_before_anything_else() -> None:
    with pytest.raises(InputValidationError, match=r"detail\.image-digest"):
        parse_request(load_event("ecr_push_malformed"))
    with pytest.raises(InputValidationError, match="services"):
        parse_request({"environment": "staging", "reason": "x"})


def test_push_tag_picks_the_environment_by_the_first_matching_rule() -> None:
    event = parse_request(load_event("ecr_push"))
    assert settings().target_environment(event) == "staging"
    raw = load_event("ecr_push")
    raw["detail"]["image-tag"] = "v2.0.0"
    assert settings().target_environment(parse_request(raw)) == "production"


def test_a_tag_outside_the_rules_is_a_plan_error_naming_tag_and_rules() -> None:
    raw = load_event("ecr_push")
    raw["detail"]["image-tag"] = "feature-x"
    with pytest.raises(PlanError, match=r"'feature-x'.*TAG_RULES"):
        settings().target_environment(parse_request(raw))


def test_an_event_from_another_account_is_refused() -> None:
    raw = load_event("ecr_push")
    raw["account"] = "999999999999"
    with pytest.raises(PlanError, match="999999999999"):
        settings().target_environment(parse_request(raw))


def test_repository_maps_to_its_service_and_unknown_repositories_are_refused() -> None:
    event = parse_request(load_event("ecr_push"))
    assert requested_images(event, settings()) == {"edc-service": load_event("ecr_push")["detail"]["image-digest"]}
    raw = load_event("ecr_push")
    raw["detail"]["repository-name"] = "clinical-trials/unknown-service"
    with pytest.raises(PlanError, match=r"unknown repository.*unknown-service"):
        requested_images(parse_request(raw), settings())


def test_desired_images_replace_only_the_pushed_service() -> None:
    base = {name: f"sha256:{i:064x}" for i, name in enumerate(platform.SERVICE_NAMES)}
    new = {"edc-service": "sha256:" + "f" * 64}
    images = desired_images(base, new, environment="staging")
    assert images["edc-service"] == new["edc-service"]
    assert changed_images(base, images) == new
    assert list(images) == sorted(images)


def test_first_release_says_which_digests_are_missing() -> None:
    with pytest.raises(PlanError, match=r"first release.*missing: api-gateway") as caught:
        desired_images({}, {"edc-service": "sha256:" + "f" * 64}, environment="staging")
    assert "edc-service" not in str(caught.value).split("missing:")[1].split("(")[0]
