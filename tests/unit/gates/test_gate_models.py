"""Pure gate logic: coalescing, freeze calendars, scan policy, stack catalog wiring, settings parsing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from controlplane.aws.provision import declared_parameters, load_catalog
from controlplane.aws.scan import blocking_summary, evaluate
from controlplane.errors import ConfigurationError, NotHealthyInStagingError
from controlplane.models.arn import execution_of, state_machine_of
from controlplane.models.freeze import FreezeCalendar, FreezeCheckRequest
from controlplane.models.images import ImageRef
from controlplane.models.lock import FollowUp, Push, coalesce, follow_up_name
from controlplane.models.provision import StackCatalog, stack_policy, template_hash
from controlplane.models.release import ConsoleRequest
from controlplane.models.scan import Finding, ScanPolicy, Severity
from controlplane.models.staging_health import require_healthy_in_staging
from controlplane.settings import _VARIABLES, Settings, get_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")


BASE_ENV = {
    "ENVIRONMENT": "staging",
    "AWS_REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "CLUSTER_NAME": "sts-staging",
    "LEDGER_TABLE_NAME": "ledger",
}


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Settings]:
    """The settings a function with exactly these variables (and the required ones) reads."""

    def load(environ: dict[str, str]) -> Settings:
        for name in _VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**BASE_ENV, **environ}.items():
            monkeypatch.setenv(name, value)
        return get_settings()

    return load


def push(service: str, digest: str, seq: int) -> Push:
    return Push(service=service, reference=digest, sequence=seq)


# ---- coalescing -----------------------------------------------------------------------------------------------
def test_coalesce_keeps_the_newest_push_of_each_service_whatever_the_arrival_order() -> None:
    pushes = [
        push("edc-service", D2, 20),
        push("edc-service", D3, 30),
        push("edc-service", D1, 10),
        push("api-gateway", D1, 5),
    ]

    newest = coalesce(pushes)

    assert {s: p.reference for s, p in newest.items()} == {"api-gateway": D1, "edc-service": D3}


def test_follow_up_input_is_a_console_request_the_planner_accepts_and_its_name_is_deterministic() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:deploy:first"
    pushes = [push("edc-service", D3, 30), push("api-gateway", D1, 5)]
    name = follow_up_name("staging", arn, pushes)
    follow = FollowUp(
        execution_name=name,
        execution_arn=execution_of("arn:aws:states:us-east-1:123456789012:stateMachine:deploy", name),
        environment="staging",
        pushes=pushes,
        after=arn,
    )

    request = ConsoleRequest.model_validate(follow.execution_input())

    assert request.services == {"api-gateway": D1, "edc-service": D3}
    assert name == follow_up_name("staging", arn, pushes)
    assert name != follow_up_name("staging", arn + "x", pushes)
    assert len(name) <= 80
    assert follow.execution_arn.endswith(f":execution:deploy:{name}")


# ---- freeze windows --------------------------------------------------------------------------------------------
CALENDAR = FreezeCalendar.model_validate(
    {
        "windows": [
            {"start": "2025-12-24T00:00:00Z", "end": "2025-12-27T00:00:00Z", "reason": "holidays"},
            {"from": "FRI 18:00", "to": "MON 06:00", "reason": "weekend", "environments": ["production"]},
            {"from": "WED 10:00", "to": "WED 11:00", "reason": "staging demo", "environments": ["staging"]},
        ]
    }
)


@pytest.mark.parametrize(
    ("when", "environment", "reason"),
    [
        (datetime(2025, 12, 25, 12, 0, tzinfo=UTC), "production", "holidays"),
        (datetime(2025, 12, 25, 12, 0, tzinfo=UTC), "staging", None),  # one-off windows default to production
        (datetime(2025, 11, 28, 18, 0, tzinfo=UTC), "production", "weekend"),  # Friday 18:00 starts it
        (datetime(2025, 11, 30, 23, 59, tzinfo=UTC), "production", "weekend"),  # Sunday night, wraps the week
        (datetime(2025, 12, 1, 6, 0, tzinfo=UTC), "production", None),  # Monday 06:00 ends it
        (datetime(2025, 11, 28, 17, 59, tzinfo=UTC), "production", None),
        (datetime(2025, 11, 26, 10, 30, tzinfo=UTC), "staging", "staging demo"),
        (datetime(2025, 11, 26, 10, 30, tzinfo=UTC), "production", None),
    ],
)
def test_freeze_calendar_finds_the_window_covering_an_instant(
    when: datetime, environment: str, reason: str | None
) -> None:
    window = CALENDAR.active(environment, when)
    assert (window.reason if window else None) == reason


def test_freeze_windows_need_a_timezone_and_an_order_and_force_needs_a_name() -> None:
    # force alone also overrides quarantine: only forcing through an active window needs a name (check_freeze)
    with pytest.raises(ValueError, match="timezone"):
        FreezeCalendar.model_validate(
            {"windows": [{"start": "2025-12-24T00:00:00", "end": "2025-12-25T00:00:00", "reason": "x"}]}
        )
    with pytest.raises(ValueError, match="after start"):
        FreezeCalendar.model_validate(
            {"windows": [{"start": "2025-12-25T00:00:00Z", "end": "2025-12-24T00:00:00Z", "reason": "x"}]}
        )
    assert not FreezeCheckRequest(environment="production", release_id="rel-1", force=True).forced_by_someone
    assert FreezeCheckRequest(
        environment="production", release_id="rel-1", force=True, forced_by="alice"
    ).forced_by_someone


BERLIN_WEEKEND = FreezeCalendar.model_validate(
    {"windows": [{"from": "FRI 18:00", "to": "MON 06:00", "reason": "weekend", "timezone": "Europe/Berlin"}]}
)


@pytest.mark.parametrize(
    ("when", "frozen"),
    [
        (datetime(2025, 11, 28, 16, 59, tzinfo=UTC), False),  # winter: Berlin is UTC+1, 17:59 local
        (datetime(2025, 11, 28, 17, 0, tzinfo=UTC), True),  # 18:00 in Berlin
        (datetime(2025, 12, 1, 4, 59, tzinfo=UTC), True),  # Monday 05:59 in Berlin
        (datetime(2025, 12, 1, 5, 0, tzinfo=UTC), False),  # Monday 06:00 in Berlin ends it
        (datetime(2025, 6, 27, 16, 0, tzinfo=UTC), True),  # summer: UTC+2, Friday 18:00 local
        (datetime(2025, 6, 27, 15, 59, tzinfo=UTC), False),
    ],
)
def test_a_weekly_freeze_follows_its_time_zone_and_daylight_saving(when: datetime, frozen: bool) -> None:
    assert (BERLIN_WEEKEND.active("production", when) is not None) is frozen


def test_a_weekly_freeze_refuses_an_unknown_time_zone_and_defaults_to_utc() -> None:
    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Olympus'"):
        FreezeCalendar.model_validate(
            {"windows": [{"from": "FRI 18:00", "to": "MON 06:00", "reason": "x", "timezone": "Mars/Olympus"}]}
        )
    (window,) = CALENDAR.model_copy().windows[1:2]
    assert getattr(window, "timezone", None) == "UTC"


# ---- scan policy -----------------------------------------------------------------------------------------------
IMAGE = ImageRef(service="edc-service", digest=D1)


def test_scan_blocks_at_or_above_the_threshold_and_names_the_findings_worst_first() -> None:
    findings = [
        Finding(id="CVE-2024-0001", severity="HIGH", package="zlib"),
        Finding(id="CVE-2024-0002", severity="CRITICAL", package="openssl"),
        Finding(id="CVE-2024-0003", severity="UNDEFINED"),
    ]

    default = evaluate(IMAGE, findings, ScanPolicy())
    strict = evaluate(IMAGE, findings, ScanPolicy(block_at=Severity.HIGH))

    assert [f.id for f in default.blocking] == ["CVE-2024-0002"]
    assert [f.id for f in strict.blocking] == ["CVE-2024-0002", "CVE-2024-0001"]
    assert default.counts == {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1}
    summary = blocking_summary([strict])
    assert summary.startswith("edc-service@sha256:aaaaaaaaaaaa: CVE-2024-0002 (CRITICAL, openssl)")
    assert "CVE-2024-0001 (HIGH, zlib)" in summary


def test_an_allowlisted_cve_does_not_block_and_is_reported_as_excused() -> None:
    findings = [Finding(id="CVE-2024-0002", severity="CRITICAL")]

    result = evaluate(IMAGE, findings, ScanPolicy(allowlist=frozenset({"CVE-2024-0002"})))

    assert result.blocking == []
    assert result.allowlisted == ["CVE-2024-0002"]


def test_blocking_summary_is_bounded() -> None:
    many = evaluate(IMAGE, [Finding(id=f"CVE-2024-{i:04d}", severity="CRITICAL") for i in range(25)], ScanPolicy())
    assert blocking_summary([many], limit=3).endswith("and 22 more")


# ---- stacks ----------------------------------------------------------------------------------------------------
def test_the_repository_stack_catalog_loads_and_every_template_declares_its_wired_parameters() -> None:
    catalog = load_catalog(REPO / "manifests" / "stacks.yaml")
    templates = REPO / "manifests" / catalog.template_dir

    assert [s.suffix for s in catalog.stacks][:1] == ["network"]
    for spec in catalog.stacks:
        declared = set(declared_parameters((templates / spec.template).read_text()))
        assert set(spec.wiring) <= declared, spec.suffix
        assert set(spec.inputs) <= declared, spec.suffix
    eks = next(s for s in catalog.stacks if s.suffix == "eks")
    assert catalog.stack_name(eks, project="sts", environment="staging") == "sts-staging-eks"


def test_wiring_resolves_outputs_of_earlier_stacks_and_names_a_missing_one() -> None:
    catalog = StackCatalog.model_validate(
        {
            "stacks": [
                {"suffix": "net", "template": "n.yaml"},
                {"suffix": "app", "template": "a.yaml", "inputs": ["Size"], "wiring": {"VpcId": "net.VpcId"}},
            ]
        }
    )
    app = catalog.stacks[1]

    params = app.resolve_parameters(
        common={"Environment": "staging", "ProjectName": "p"},
        inputs={"Size": "3", "Other": "x"},
        outputs={"net": {"VpcId": "vpc-1"}},
        declared=["Environment", "Size", "VpcId"],
    )

    assert params == {"Environment": "staging", "Size": "3", "VpcId": "vpc-1"}
    with pytest.raises(ConfigurationError, match="output 'VpcId' of stack 'net'"):
        app.resolve_parameters(common={}, inputs={}, outputs={})
    with pytest.raises(ValueError, match="not listed before"):
        StackCatalog.model_validate(
            {
                "stacks": [
                    {"suffix": "app", "template": "a", "wiring": {"X": "net.Y"}},
                    {"suffix": "net", "template": "n"},
                ]
            }
        )


def test_template_hash_changes_with_the_template_or_any_parameter() -> None:
    base = template_hash("body", {"A": "1"})
    assert base == template_hash("body", {"A": "1"})
    assert base != template_hash("body2", {"A": "1"})
    assert base != template_hash("body", {"A": "2"})


def test_stack_policy_denies_replacing_or_deleting_data_resources_only() -> None:
    deny = next(s for s in stack_policy()["Statement"] if s["Effect"] == "Deny")
    assert set(deny["Action"]) == {"Update:Replace", "Update:Delete"}
    assert {"AWS::RDS::*", "AWS::ElastiCache::*", "AWS::S3::Bucket"} == set(
        deny["Condition"]["StringLike"]["ResourceType"]
    )


# ---- production ------------------------------------------------------------------------------------------------
def test_production_refuses_a_digest_never_healthy_in_staging() -> None:
    images = [ImageRef(service="edc-service", digest=D1), ImageRef(service="api-gateway", digest=D2)]
    require_healthy_in_staging(images, {"edc-service": {D1}, "api-gateway": {D2, D3}})
    with pytest.raises(NotHealthyInStagingError, match=f"api-gateway@{D2}"):
        require_healthy_in_staging(images, {"edc-service": {D1}, "api-gateway": {D3}})


# ---- settings --------------------------------------------------------------------------------------------------
def test_gate_settings_parse_from_environment_variables(settings_of: Callable[[dict[str, str]], Settings]) -> None:
    settings = settings_of(
        {
            "SCAN_BLOCK_SEVERITY": "high",
            "SCAN_CVE_ALLOWLIST": "CVE-1, CVE-2,",
            "FREEZE_CALENDAR": '[{"from": "FRI 18:00", "to": "MON 06:00", "reason": "weekend"}]',
            "STACK_INPUTS": '{"AlertEmail": "ops@example.com", "MonthlyBudgetUsd": 150}',
            "LOCK_TTL_SECONDS": "600",
            "ARTIFACTS_BUCKET": "",
        }
    ).gates
    assert settings.scan_policy.block_at is Severity.HIGH
    assert settings.scan_policy.allowlist == frozenset({"CVE-1", "CVE-2"})
    assert settings.freeze_calendar.windows[0].reason == "weekend"
    assert settings.stack_inputs == {"AlertEmail": "ops@example.com", "MonthlyBudgetUsd": "150"}
    assert settings.lock_ttl_s == 600
    assert settings.artifacts_bucket is None  # an empty variable is an unset one
    with pytest.raises(ConfigurationError, match=r"FREEZE_CALENDAR.*not valid JSON"):
        settings_of({"FREEZE_CALENDAR": "[not json"})
    with pytest.raises(ConfigurationError, match="invalid configuration: SCAN_BLOCK_SEVERITY"):
        settings_of({"SCAN_BLOCK_SEVERITY": "SEVERE"})


# ---- ARNs ------------------------------------------------------------------------------------------------------
def test_execution_and_state_machine_arns_convert_both_ways_and_refuse_other_arns() -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:sts-deploy"
    execution = execution_of(machine, "staging-queued-1")
    assert execution == "arn:aws:states:us-east-1:123456789012:execution:sts-deploy:staging-queued-1"
    assert state_machine_of(execution) == machine
    assert execution_of("arn:aws-cn:states:cn-north-1:123456789012:stateMachine:m", "n").startswith("arn:aws-cn:")
    with pytest.raises(ConfigurationError, match="not a state machine ARN"):
        execution_of("arn:aws:lambda:us-east-1:123456789012:function:f", "n")
    with pytest.raises(ValueError, match="not an execution ARN"):
        state_machine_of(machine)
    with pytest.raises(ValueError, match="not an execution ARN"):
        state_machine_of("owner-without-arn")
