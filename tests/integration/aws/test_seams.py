"""Canary: the private moto seams the harness patches still exist with the shape it relies on."""

from __future__ import annotations

from typing import Any

import pytest

from local.aws import SeamMovedError, check_seams

pytestmark = pytest.mark.integration


def test_every_moto_seam_is_where_the_harness_expects_it() -> None:
    check_seams()


def test_a_moved_seam_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda import models  # noqa: PLC0415 - moto is imported lazily everywhere in the harness

    def invoke(self: Any, payload: Any) -> None: ...

    monkeypatch.setattr(models.LambdaFunction, "invoke", invoke)
    with pytest.raises(SeamMovedError, match=r"LambdaFunction\.invoke"):
        check_seams()


def test_step_functions_lambda_invokes_reach_the_in_process_handler(harness_cloud: Any) -> None:
    before = len(harness_cloud.runtime.invocations)

    result = harness_cloud.run("Pipeline", {"n": 3, "mode": "fail", "items": []})

    assert result.status == "SUCCEEDED"
    called = [i.function_name for i in harness_cloud.runtime.invocations[before:]]
    assert called == ["harness-WorkFunction", "harness-FailFunction"]
