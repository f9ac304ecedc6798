"""checkov on everything we ship: the CloudFormation templates (template.yaml and manifests/cloudformation/*.yaml)
and the Kubernetes objects rendered for staging and production. Every failed check must be listed, with its reason,
in the README's "Security" section; a listed finding that no longer occurs must be removed from it.

checkov lives in its own venv (``.venv-checkov``, requirements/checkov.txt: it pins an older boto3 than moto needs),
beside the project's ``.venv``; it runs offline (``--skip-download``) in one invocation (~25 s).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import platform
from controlplane.render import load_bundle, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CFN_FILES = [REPO / "template.yaml", *sorted((REPO / "manifests" / "cloudformation").glob("*.yaml"))]
ACCOUNT, REGION = "123456789012", "us-east-1"
_ROW = re.compile(
    r"^\|\s*`(?P<check>CKV2?_[A-Z0-9_]+)`\s*\|\s*`(?P<file>[^`]+)`\s*\|\s*`(?P<resource>[^`]+)`\s*\|(?P<why>.*)\|\s*$"
)


@dataclass(frozen=True)
class Accepted:
    """One README row: a check that may fail on the resources matching ``resource`` in ``file``, and why."""

    check: str
    file: str
    resource: str
    why: str

    def matches(self, finding: Finding) -> bool:
        return (
            self.check == finding.check
            and fnmatch.fnmatchcase(finding.file, self.file)
            and fnmatch.fnmatchcase(finding.resource, self.resource)
        )


@dataclass(frozen=True)
class Finding:
    check: str
    file: str
    resource: str
    name: str


def accepted_findings(readme: str) -> list[Accepted]:
    """The table rows of the README's ``## Security`` section (``| `CKV_..` | `file` | `resource glob` | why |``);
    ``ValueError`` naming the line when a row has no reason."""
    section = readme.split("\n## Security\n", 1)[1].split("\n## ", 1)[0] if "\n## Security\n" in readme else ""
    rows = []
    for line in section.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        if not match["why"].strip():
            raise ValueError(f"README Security: {line.strip()!r} gives no reason")
        rows.append(Accepted(match["check"], match["file"], match["resource"], match["why"].strip()))
    return rows


def failed_findings(report: Any) -> list[Finding]:
    """Every failed check of a checkov JSON report (one framework's object, or a list of them)."""
    reports = report if isinstance(report, list) else [report]
    return [
        Finding(f["check_id"], Path(f["file_path"]).name, f["resource"], f["check_name"])
        for r in reports
        for f in r["results"]["failed_checks"]
    ]


def gate(findings: list[Finding], accepted: list[Accepted]) -> list[str]:
    """What fails the gate: findings no row accepts, and rows that accept nothing (stale)."""
    problems = [
        f"{f.check} {f.file} {f.resource}: {f.name} (fix it, or list it with a reason in README.md ## Security)"
        for f in findings
        if not any(a.matches(f) for a in accepted)
    ]
    problems += [
        f"README.md ## Security lists {a.check} `{a.file}` `{a.resource}` but checkov no longer reports it: remove it"
        for a in accepted
        if not any(a.matches(f) for f in findings)
    ]
    return problems


# --- the gate's own rules --------------------------------------------------------------------------------------------


def _finding(check: str = "CKV_AWS_18", file: str = "template.yaml", resource: str = "AWS::S3::Bucket.X") -> Finding:
    return Finding(check, file, resource, "a check")


def test_an_unlisted_failure_fails_the_gate_naming_check_file_and_resource() -> None:
    accepted = [Accepted("CKV_AWS_18", "template.yaml", "AWS::S3::Bucket.AccessLogsBucket", "logs of logs")]
    problems = gate([_finding(resource="AWS::S3::Bucket.ArtifactsBucket")], accepted)
    assert problems[0].startswith("CKV_AWS_18 template.yaml AWS::S3::Bucket.ArtifactsBucket: ")
    assert "no longer reports it" in problems[1]


def test_a_listed_failure_passes_and_globs_match_resources_only_in_the_named_file() -> None:
    accepted = [Accepted("CKV_AWS_116", "template.yaml", "AWS::Serverless::Function.*", "synchronous invocations")]
    assert gate([_finding("CKV_AWS_116", resource="AWS::Serverless::Function.PlanFunction")], accepted) == []
    assert gate([_finding("CKV_AWS_116", "storage.yaml", "AWS::Serverless::Function.Plan")], accepted)


def test_readme_rows_are_parsed_and_a_row_without_a_reason_is_refused() -> None:
    readme = "# x\n## Security\n| Check | File | Resources | Why |\n|---|---|---|---|\n"
    row = "| `CKV_K8S_35` | `*.yaml` | `Deployment.*` | the services read their URLs from env |"
    assert accepted_findings(readme + row + "\n## Next\n| `CKV_X_1` | `a` | `b` | c |\n") == [
        Accepted("CKV_K8S_35", "*.yaml", "Deployment.*", "the services read their URLs from env")
    ]
    with pytest.raises(ValueError, match="gives no reason"):
        accepted_findings(readme + "| `CKV_K8S_35` | `*.yaml` | `Deployment.*` |  |\n")


# --- checkov on the real files ---------------------------------------------------------------------------------------


def _checkov() -> Path:
    """``CHECKOV`` if set, else ``.venv-checkov`` beside the project's ``.venv`` (a worktree's ``.venv`` may be a
    link to the main checkout's: the sibling of its target)."""
    if os.environ.get("CHECKOV"):
        return Path(os.environ["CHECKOV"])
    for venv in (REPO / ".venv-checkov", Path(sys.prefix).resolve().parent / ".venv-checkov"):
        if (venv / "bin" / "checkov").exists():
            return venv / "bin" / "checkov"
    pytest.fail("checkov is not installed: `make setup` creates .venv-checkov from requirements/checkov.txt")


def _render_manifests(directory: Path) -> list[Path]:
    digests = {name: f"sha256:{hashlib.sha256(name.encode()).hexdigest()}" for name in platform.SERVICE_NAMES}
    paths = []
    for environment in platform.ENVIRONMENTS:
        objects = render(
            load_bundle(REPO / "manifests" / "kubernetes"), environment, digests, account_id=ACCOUNT, region=REGION
        )
        path = directory / f"rendered-{environment}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        paths.append(path)
    return paths


def test_checkov_reports_nothing_the_readme_does_not_accept(tmp_path: Path) -> None:
    rendered = _render_manifests(tmp_path)
    files = [arg for path in (*CFN_FILES, *rendered) for arg in ("-f", str(path))]
    command = [str(_checkov()), "--framework", "cloudformation", "kubernetes", *files]
    command += ["--skip-download", "--compact", "--output", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}  # never the platform
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path, env=env)
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]

    # It really looked at everything: both frameworks, every file, no parsing errors.
    by_type = {r["check_type"]: r for r in reports}
    assert set(by_type) == {"cloudformation", "kubernetes"}, sorted(by_type)
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports), [r["summary"] for r in reports]
    seen = {
        Path(c["file_path"]).name
        for r in reports
        for kind in ("passed_checks", "failed_checks")
        for c in r["results"][kind]
    }
    assert seen >= {p.name for p in (*CFN_FILES, *rendered)}, sorted(seen)

    problems = gate(failed_findings(report), accepted_findings(README.read_text()))
    assert not problems, "\n".join(problems)
