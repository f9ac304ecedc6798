"""Label and field selector grammar (k8s.io/apimachinery/pkg/labels and fields)."""

from __future__ import annotations

import pytest

from local.cluster.selectors import (
    SelectorError,
    fields_match,
    label_selector_to_string,
    matches,
    parse_field_selector,
    parse_label_selector,
)

pytestmark = pytest.mark.unit

LABELS = {"app": "web", "tier": "frontend", "version": "3", "example.com/team": "a"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=api", True),
        ("missing!=x", True),
        ("app in (web, api)", True),
        ("app in (api)", False),
        ("app notin (api,db)", True),
        ("missing notin (a)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("version>2", True),
        ("version<3", False),
        ("example.com/team=a", True),
        ("app=", False),
        ("missing=", False),
    ],
)
def test_label_selector_operators(selector: str, expected: bool) -> None:
    assert matches(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("bad", ["app in web", "app in ()", "=web", "app=web,", "app in (a b)", "bad key!=x", "a=b c"])
def test_malformed_label_selectors_are_rejected(bad: str) -> None:
    with pytest.raises(SelectorError, match=r"unable to parse requirement|invalid"):
        parse_label_selector(bad)


def test_structured_selector_renders_like_labels_selector_string() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector_to_string(selector) == "app=web,!legacy,tier in (edge,frontend)"
    assert label_selector_to_string(None) == ""


def test_field_selectors_match_dotted_paths() -> None:
    pod = {"metadata": {"name": "p1", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("metadata.name=p1"), pod)
    assert fields_match(parse_field_selector("metadata.name==p1,metadata.namespace=ns"), pod)
    assert not fields_match(parse_field_selector("metadata.name!=p1"), pod)
    assert fields_match(parse_field_selector("status.phase=Running,spec.nodeName!=n2"), pod)


def test_unsupported_field_labels_are_rejected() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.foo"):
        parse_field_selector("spec.foo=bar", frozenset({"metadata.name"}))


def test_an_events_source_field_selects_its_source_component() -> None:
    """core/v1 Events: ``fieldSelector=source=cluster-autoscaler`` matches ``source.component`` (the API server's
    field label for Events), as ``kubectl get events --field-selector source=...`` relies on."""
    event = {"kind": "Event", "reason": "TriggeredScaleUp", "source": {"component": "cluster-autoscaler"}}
    assert fields_match(parse_field_selector("source=cluster-autoscaler,reason=TriggeredScaleUp"), event)
    assert not fields_match(parse_field_selector("source=default-scheduler"), event)
