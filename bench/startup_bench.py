"""Handler cold import time against ``import boto3``, each the median of several fresh processes.

``python -m bench startup``. A Lambda cold start imports the handler module before the first event: for each
``functions/<name>/app.py`` a fresh interpreter (the layer on ``sys.path`` as in Lambda, Powertools tracing enabled
as in ``template.yaml``) times ``import app``; the same run times ``import boto3`` the same way, and the ratio of the
medians is held against the goal (every handler <= 2.5x). Runs are interleaved so load on the machine hits both;
each run reports the import's CPU time (see ``_PROBE``).

On a shared machine CPU time swings with the load (other processes evict the caches an import fills);
``BENCH_STARTUP=instructions`` counts instructions instead (valgrind's callgrind, one process each: the same count
on a busy machine as on an idle one, ~40 s of CPU per import), net of an empty interpreter's start, and
``BENCH_STARTUP_HANDLERS=plan,apply`` limits either mode to those handlers.

The controlplane package is imported as the layer ships it (``layers/controlplane/Makefile``): a copy compiled to
unchecked-hash bytecode, as the installed packages (compiled by pip) and the runtime's boto3 are; the handler's own
``app.py`` is compiled on import, as Lambda does with a function's code.
"""

from __future__ import annotations

import compileall
import os
import py_compile
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
LAYER = ROOT / "layers" / "controlplane"
RUNS = 5
GOAL = 2.5
# CPU time of the import (process_time): a cold start's imports are CPU-bound, and CPU time is what stays comparable
# on a shared machine, where wall time also counts the time other processes held the CPU.
_PROBE = "import time, importlib; t = time.process_time(); importlib.import_module({!r}); print(time.process_time()-t)"


def _compiled_layer(into: Path) -> Path:
    """A copy of the layer's package compiled as its Makefile compiles it (unchecked-hash bytecode)."""
    shutil.copytree(LAYER / "controlplane", into / "controlplane", ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(
        into, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, workers=0
    ):
        raise SystemExit(f"bench startup: the layer's package in {into} did not compile")
    return into


def _env(cwd: Path, layer: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")}
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(layer)])
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # app.py compiled on every import, as in Lambda; nothing written here
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"  # as template.yaml's Globals set it
    return env


def _time_import(module: str, cwd: Path, layer: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module)],
        cwd=cwd,
        env=_env(cwd, layer),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _instructions(code: str, cwd: Path, layer: Path) -> int:
    """Instructions a fresh interpreter runs for ``python -c code`` (start-up included), counted by callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench startup: BENCH_STARTUP=instructions needs valgrind")
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code],
        cwd=cwd,
        env=_env(cwd, layer),
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"bench startup: no instruction count from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def _count_instructions(handlers: list[Path], layer: Path) -> None:
    start = _instructions("pass", ROOT, layer)
    base = _instructions("import boto3", ROOT, layer) - start
    print(f"import boto3: {base / 1e6:.0f} M instructions (callgrind, net of an empty interpreter's start)")
    counts = {h.name: _instructions("import app", h, layer) - start for h in handlers}
    worst = 0.0
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        ratio = count / base
        worst = max(worst, ratio)
        print(f"  {name:<20} {count / 1e6:6.0f} M  {ratio:4.2f}x  {'OK' if ratio <= GOAL else 'OVER GOAL'}")
    print(f"slowest handler: {worst:.2f}x import boto3 (goal <= {GOAL}x): {'OK' if worst <= GOAL else 'OVER GOAL'}")


def main() -> None:
    handlers = sorted(p.parent for p in FUNCTIONS.glob("*/app.py"))
    only = {n for n in os.environ.get("BENCH_STARTUP_HANDLERS", "").split(",") if n}
    if only - {h.name for h in handlers}:
        raise SystemExit(f"BENCH_STARTUP_HANDLERS: no handler {', '.join(sorted(only - {h.name for h in handlers}))}")
    handlers = [h for h in handlers if not only or h.name in only]
    if os.environ.get("BENCH_STARTUP") == "instructions":
        with tempfile.TemporaryDirectory(prefix="bench-layer-") as tmp:
            _count_instructions(handlers, _compiled_layer(Path(tmp)))
        return
    boto3: list[float] = []
    times: dict[str, list[float]] = {h.name: [] for h in handlers}
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as tmp:
        layer = _compiled_layer(Path(tmp))
        for _ in range(RUNS):
            boto3.append(_time_import("boto3", ROOT, layer))
            for h in handlers:
                times[h.name].append(_time_import("app", h, layer))
    base = statistics.median(boto3)
    print(f"import boto3: median {base * 1000:.0f} ms CPU over {RUNS} fresh processes")
    worst = 0.0
    for name, samples in sorted(times.items(), key=lambda kv: -statistics.median(kv[1])):
        ratio = statistics.median(samples) / base
        worst = max(worst, ratio)
        verdict = "OK" if ratio <= GOAL else "OVER GOAL"
        print(f"  {name:<20} {statistics.median(samples) * 1000:6.0f} ms  {ratio:4.2f}x  {verdict}")
    print(f"slowest handler: {worst:.2f}x import boto3 (goal <= {GOAL}x): {'OK' if worst <= GOAL else 'OVER GOAL'}")


if __name__ == "__main__":
    main()
