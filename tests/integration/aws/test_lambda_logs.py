"""What a handler prints goes to its log stream (as CloudWatch Logs would hold it), not to the harness's stdout."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_handler_output_lands_in_the_functions_log_stream_not_on_stdout(
    harness_cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result = harness_cloud.invoke("WorkFunction", {"n": 21})

    assert result.json()["doubled"] == 42
    lines = [line for line in harness_cloud.runtime.logs if line.request_id == result.json()["request_id"]]
    assert [line.message for line in lines] == ["doubling 21"]
    assert lines[0].function_name == result.json()["function_name"]
    assert "doubling" not in capsys.readouterr().out


def test_a_failing_handler_echoes_its_log_lines_to_stderr(
    harness_cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    harness_cloud.invoke("WorkFunction", {"n": "not a number"})

    captured = capsys.readouterr()
    assert "doubling not a number" in captured.err
    assert "doubling" not in captured.out
