"""What the CLI prints and returns: tables for people or one JSON document for scripts, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

OK, FAILED, REFUSED = 0, 1, 2
"""Exit codes: 0 ok; 1 failed (or, for ``diff``/``drift``, differences found); 2 refused or usage."""


class Out:
    def __init__(self, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json = json_mode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def progress(self) -> TextIO:
        """Where live progress goes: stdout for people, stderr when stdout carries JSON."""
        return self.stderr if self.json else self.stdout

    def lines(self, lines: Sequence[str]) -> None:
        if not self.json:
            self.stdout.write("\n".join(lines) + "\n")

    def document(self, data: Any) -> None:
        if self.json:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
