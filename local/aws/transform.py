"""The SAM transform of a template, as CloudFormation runs it, for the IAM roles it generates.

The harness provisions SAM resources itself (``local.aws.provision``), but the permissions a function or state machine
has are those of the role the SAM transform generates for it: the ``Policies`` (inline documents and SAM policy
templates such as ``LambdaInvokePolicy``, expanded), the managed policies SAM adds (``AWSLambdaBasicExecutionRole``,
``AWSXrayWriteOnlyAccess`` with tracing, ...) and the roles of event sources (an EventBridge rule or Scheduler
schedule targeting a state machine gets its own role with ``states:StartExecution``). This module runs the real
``samtranslator`` (the one ``sam build``/``sam deploy`` use, from the SAM CLI's venv ``.venv-sam``: its pydantic pin
conflicts with the layer's) in a subprocess and caches the result per template content.

``LOCALCLOUD_SAM_PYTHON`` overrides the interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from local.aws.template import TemplateError

_REPO = Path(__file__).resolve().parents[2]
_SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
_SCRIPT = r"""
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open(sys.argv[1], encoding="utf-8").read())
sections = [r.get("Properties") or {} for r in (template.get("Resources") or {}).values()]
sections += list((template.get("Globals") or {}).values())
for props in sections:
    for key in ("CodeUri", "DefinitionUri", "ContentUri"):
        if isinstance(props.get(key), str):
            props[key] = "s3://local-cloud-artifacts/" + key  # what `sam package` does with a local path
class NoManagedPolicyLookup:
    def load(self):
        return {}
json.dump(transform(template, {}, NoManagedPolicyLookup()), sys.stdout, default=str)
"""
_memo: dict[str, dict[str, Any]] = {}


def _sam_python() -> Path:
    configured = os.environ.get("LOCALCLOUD_SAM_PYTHON")
    path = Path(configured) if configured else _REPO / ".venv-sam" / "bin" / "python"
    if not path.exists():
        raise TemplateError(
            f"the SAM transform needs the SAM CLI's Python ({path}); create .venv-sam (requirements/sam.txt) or set "
            "LOCALCLOUD_SAM_PYTHON"
        )
    return path


def sam_transformed(path: Path, template: dict[str, Any], region: str) -> dict[str, Any]:
    """The template after the SAM transform (the template itself when it declares no SAM transform)."""
    transforms = template.get("Transform") or []
    if _SAM_TRANSFORM not in (transforms if isinstance(transforms, list) else [transforms]):
        return template
    text = path.read_bytes()
    digest = hashlib.sha256(text + region.encode()).hexdigest()
    if digest in _memo:
        return _memo[digest]
    cache = Path(tempfile.gettempdir()) / "localcloud-sam-transform" / f"{digest}.json"
    if cache.exists():
        result: dict[str, Any] = json.loads(cache.read_text(encoding="utf-8"))
    else:
        completed = subprocess.run(  # noqa: S603 - fixed interpreter and script, the template path as argument
            [str(_sam_python()), "-c", _SCRIPT, str(path)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "AWS_DEFAULT_REGION": region, "AWS_REGION": region},
            timeout=120,
        )
        if completed.returncode != 0:
            raise TemplateError(f"SAM transform of {path} failed: {completed.stderr.strip().splitlines()[-1:]}")
        result = json.loads(completed.stdout)
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(completed.stdout, encoding="utf-8")
        temporary.replace(cache)
    _memo[digest] = result
    return result


__all__ = ["sam_transformed"]
