"""Shared fixtures. Each section belongs to one part of the suite; keep fixtures small and explicit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "tests" / "events"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, so nothing can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto's fake credential
        "AWS_SECURITY_TOKEN": "testing",  # noqa: S105
        "AWS_SESSION_TOKEN": "testing",  # noqa: S105
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    yield


def load_event(name: str) -> dict[str, Any]:
    """A real-shaped event from tests/events (as AWS documents them)."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data
