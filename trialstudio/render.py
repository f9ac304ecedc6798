"""How an execution and the ledger read to a person: the live state-by-state view, the timeline, the release table.

Moved here from the demo (``local/demo.py`` uses it too): the CLI's ``follow``/``deploy``/``rollback`` print the same
lines as ``make demo``. Everything works on plain Step Functions history events (``GetExecutionHistory``) and the
ledger's records; nothing here talks to AWS.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, TextIO

from controlplane.models.release import LastKnownGood, ReleaseRecord

END_EVENTS = ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted")
_CRASH = re.compile(r"/(?P<container>[\w.-]+): (?P<reason>\w+): restarted (?P<times>\d+) times")


class Event(Protocol):
    """One history event: what ``GetExecutionHistory`` returns, with the state name lifted out of its details."""

    @property
    def type(self) -> str: ...
    @property
    def state_name(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class HistoryEvent:
    id: int
    type: str
    state_name: str | None
    timestamp: datetime
    details: Mapping[str, Any]


def history_events(raw: Iterable[Mapping[str, Any]]) -> list[HistoryEvent]:
    """``GetExecutionHistory`` events -> :class:`HistoryEvent` (the ``...EventDetails`` member as ``details``)."""
    events: list[HistoryEvent] = []
    for event in raw:
        details: Mapping[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        events.append(
            HistoryEvent(
                id=int(event["id"]),
                type=str(event["type"]),
                state_name=details.get("name"),
                timestamp=event["timestamp"],
                details=details,
            )
        )
    return events


def digest12(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def short(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder=" ...")


def wrap(text: str, first: str, rest: str) -> str:
    """``text`` wrapped at 110 columns (names with hyphens stay whole)."""
    return textwrap.fill(text, 110, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _workload_names(pending: list[str]) -> str:
    """``Deployment.apps/ns/name: message`` entries -> ``name, name``."""
    return ", ".join(entry.split(":", 1)[0].rsplit("/", 1)[-1] for entry in pending)


def failure(error: str, cause: str) -> str:
    """A failed task in a few words: the crash loop when there is one, else the error and its message, shortened."""
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        message = cause
    crash = _CRASH.search(message)
    if crash:
        return f"{crash['reason']}: {crash['container']} restarted {crash['times']} times"
    return short(f"{error}: {message}", 90)


# -- the live view ---------------------------------------------------------------------------------------------------
class Follower:
    """Prints an execution's states as they are entered, and what each Task did when it exits.

    Feed it the whole history each time (it prints only what is new); ``current`` is the state last entered.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen = 0
        self.started: datetime | None = None
        self.open_line: str | None = None  # the state whose line is written up to its name
        self.current: str | None = None
        self.summary = ""
        self.workloads = 0
        self.rollback_target: str | None = None

    def feed(self, events: Sequence[Event]) -> None:
        for event in events[self.seen :]:
            self._event(event)
        self.seen = len(events)
        self.out.flush()

    def _event(self, event: Event) -> None:
        kind = event.type
        if kind == "ExecutionStarted":
            self.started = event.timestamp
        elif kind.endswith("StateEntered"):
            self._close()
            offset = (event.timestamp - self.started).total_seconds() if self.started else 0.0
            self.out.write(f"   +{offset:>4.0f}s  {event.state_name}")
            self.open_line = self.current = str(event.state_name)
        elif kind in {"LambdaFunctionSucceeded", "TaskSucceeded"}:
            self.summary = self._summary(_json(event.details.get("output")))
        elif kind in {"LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut"}:
            self.summary = failure(str(event.details.get("error", "")), str(event.details.get("cause", "")))
        elif kind.endswith("StateExited") or kind in END_EVENTS:
            self._close()

    def _close(self) -> None:
        if self.open_line is not None:
            padding = " " * max(1, 26 - len(self.open_line))
            self.out.write(f"{padding}{self.summary}\n" if self.summary else "\n")
        self.open_line, self.summary = None, ""

    def _summary(self, output: Any) -> str:
        """What a step's output says, in a few words (the shapes are the steps' output models)."""
        if not isinstance(output, dict):
            return ""
        if isinstance(output.get("Payload"), dict):  # the lambda:invoke integration wraps the handler's result
            output = output["Payload"]
        for keys, summarise in self._SHAPES:
            if all(key in output for key in keys):
                return summarise(self, output)
        return ""

    def _applied(self, output: dict[str, Any]) -> str:
        self.workloads = int((output.get("rollout") or {}).get("workloads") or 0)
        pruned = f", pruned {output['pruned']}" if output.get("pruned") else ""
        return f"applied {output['applied']} objects{pruned} ({output.get('release_id')})"

    def _health(self, output: dict[str, Any]) -> str:
        if output.get("bake_until"):  # a look during the bake period
            if output.get("baked"):
                return "healthy through the bake period"
            left = datetime.fromisoformat(output["bake_until"]) - datetime.fromisoformat(output["checked_at"])
            return f"healthy, {int(left.total_seconds())} s of bake to go"
        pending = output.get("pending") or []
        count = int(output.get("pending_count") or len(pending))
        total = self.workloads or count
        rolled = f"{total - count}/{total} workloads rolled out"
        if output["healthy"]:
            return rolled
        waiting = _workload_names(pending) if count <= 2 else f"{count} workloads"
        return f"{rolled}, waiting for {waiting}"

    def _smoke(self, output: dict[str, Any]) -> str:
        return f"smoke tests passed: {len(output['passed'])} services"

    def _recorded(self, output: dict[str, Any]) -> str:
        release, outcome = output.get("release_id"), output["outcome"]
        wording = {
            "succeeded": f"{release} recorded as last known-good",
            "rolled_back": f"{release} recorded failed; rolled back to {self.rollback_target}",
            "restored": f"rolled back to {release}, now last known-good",
            "restore_unrecorded": f"rolled back to {release} but not recorded: environment marked degraded",
        }
        return wording.get(str(outcome), f"{release} recorded {outcome}")

    def _lock(self, output: dict[str, Any]) -> str:
        return f"lock on {output.get('environment')} {str(output['outcome']).lower()}"

    def _released(self, output: dict[str, Any]) -> str:
        return "lock released" if output["released"] else "lock was not held"

    def _plan(self, output: dict[str, Any]) -> str:
        release = (output.get("release") or {}).get("release_id")
        changed = output.get("changed") or {}
        if output["action"] != "deploy":
            return f"nothing to deploy: {output.get('reason')}"
        if len(changed) > 2:
            return f"{release}: {len(changed)} services changed"
        names = ", ".join(f"{s}@{digest12(d)}" for s, d in sorted(changed.items()))
        return f"{release}: {names}"

    def _freeze(self, output: dict[str, Any]) -> str:
        if output["frozen"]:
            return f"frozen: {output.get('window_reason')}" + (" (forced)" if output.get("forced") else "")
        return "no freeze window"

    def _scans(self, output: dict[str, Any]) -> str:
        return f"{len(output['scans'])} image(s) scanned: {output.get('status')}"

    def _promoted(self, output: dict[str, Any]) -> str:
        tagged = sum(1 for r in output["results"] if r.get("outcome") == "TAGGED")
        return f"{tagged} tags written, {len(output['results']) - tagged} unchanged"

    def _target(self, output: dict[str, Any]) -> str:
        if not output["found"]:
            return f"no rollback target: {output.get('reason')}"
        self.rollback_target = (output.get("release") or {}).get("release_id")
        return f"target {self.rollback_target}"

    # The first shape whose keys are all in a step's output names it (order matters: the record steps carry
    # "outcome" and "message", the lock steps "outcome" and "owner").
    _SHAPES: ClassVar[tuple[tuple[tuple[str, ...], Callable[[Follower, dict[str, Any]], str]], ...]] = (
        (("applied",), _applied),
        (("healthy",), _health),
        (("passed",), _smoke),
        (("message", "outcome"), _recorded),
        (("owner", "outcome"), _lock),
        (("released",), _released),
        (("action",), _plan),  # the plan
        (("frozen",), _freeze),
        (("scans",), _scans),
        (("results",), _promoted),  # promotion tags
        (("found",), _target),  # the rollback target
    )


# -- after the fact --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateTime:
    state: str
    entered_s: float
    took_s: float
    visits: int


def state_times(events: Sequence[Event]) -> list[StateTime]:
    """Per state (first entered order; Choice states take no time and are left out): entered at, time spent, visits."""
    if not events:
        return []
    start, end = events[0].timestamp, events[-1].timestamp
    entered = [e for e in events if e.type.endswith("StateEntered")]
    rows: dict[str, list[float]] = {}  # state -> [first entered, total seconds, visits]
    for index, event in enumerate(entered):
        if event.type == "ChoiceStateEntered":
            continue
        left = entered[index + 1].timestamp if index + 1 < len(entered) else end
        row = rows.setdefault(str(event.state_name), [(event.timestamp - start).total_seconds(), 0.0, 0])
        row[1] += (left - event.timestamp).total_seconds()
        row[2] += 1
    return [StateTime(state, at, took, int(visits)) for state, (at, took, visits) in rows.items()]


def timeline(events: Sequence[Event]) -> list[str]:
    """:func:`state_times` as a table."""
    rows = state_times(events)
    if not rows:
        return []
    lines = [f"   {'state':<26}{'entered':>9}{'took':>7}  visits"]
    for row in rows:
        visits = row.visits if row.visits > 1 else ""
        lines.append(f"   {row.state:<26}{f'+{row.entered_s:.0f}s':>9}{f'{row.took_s:.0f}s':>7}  {visits}".rstrip())
    return lines


def elapsed(events: Sequence[Event]) -> float:
    return (events[-1].timestamp - events[0].timestamp).total_seconds() if events else 0.0


# -- the ledger's view -----------------------------------------------------------------------------------------------
def execution_label(arn: str) -> str:
    """``arn:aws:states:...:execution:<stack>-deploy:<uuid>`` -> ``deploy:<uuid prefix>`` (``deploy:op-<hex>``)."""
    parts = arn.split(":")
    if len(parts) < 2:
        return arn
    machine, name = parts[-2].rsplit("-", 1)[-1], parts[-1]
    if name.startswith("op-"):  # the operator API names its executions op-<action>-<hex>
        return f"{machine}:op-{name.split('-', 2)[-1][:8]}"
    return f"{machine}:{name[:8]}"


def after(start: datetime, at: datetime | None) -> str:
    return f"+{(at - start).total_seconds():.0f}s" if at else "-"


def changed_text(record: ReleaseRecord) -> str:
    if len(record.changed) > 1:
        return f"{len(record.changed)} services"
    return ", ".join(f"{s}@{digest12(d)}" for s, d in record.changed.items()) or "-"


def trigger_text(record: ReleaseRecord) -> str:
    return record.trigger.kind.value + (f" {record.trigger.tag}" if record.trigger.tag else "")


def release_table(records: Sequence[ReleaseRecord]) -> list[str]:
    """One line per release (in the order given), then the notes (rolled back to, cause) of those that have one."""
    header = f"{'release':<26}{'status':<13}{'trigger':<18}{'changed':<32}{'started':<10}{'healthy':>8}{'ended':>7}"
    lines = [f"   {header}  execution"]
    for r in records:
        healthy, ended = after(r.started_at, r.healthy_at), after(r.started_at, r.finished_at)
        lines.append(
            f"   {r.release_id:<26}{r.status.value:<13}{trigger_text(r):<18}{changed_text(r):<32}"
            f"{r.started_at:%H:%M:%S}  {healthy:>8}{ended:>7}  {execution_label(r.execution_arn)}"
        )
    for r in records:
        if r.rolled_back_to or r.cause:
            note = f"{r.release_id}: " + (f"rolled back to {r.rolled_back_to}; " if r.rolled_back_to else "")
            lines.append(wrap(short(note + (r.cause or ""), 210), "   ", "      "))
    return lines


def lkg_line(lkg: LastKnownGood | None) -> str:
    if lkg is None:
        return "   last known-good: none"
    return (
        f"   last known-good: {lkg.release_id} (previously {lkg.previous_release_id}; "
        f"set {lkg.updated_at:%H:%M:%S} by {execution_label(lkg.execution_arn)})"
    )


def quarantine_lines(quarantined: Mapping[str, str], services: Mapping[str, str]) -> list[str]:
    """``quarantined`` digest -> why; ``services`` digest -> service name."""
    lines = [f"   quarantined digests: {len(quarantined) or 'none'}"]
    for digest, why in sorted(quarantined.items()):
        service = services.get(digest, "?")
        lines.append(f"     {short(f'{service}@{digest12(digest)}: {why}', 105)}")
    return lines


def ledger_view(
    records: Sequence[ReleaseRecord], lkg: LastKnownGood | None, quarantined: Mapping[str, str]
) -> list[str]:
    """The releases (oldest first), the last known-good pointer and the quarantined digests: the demo's closing view."""
    services = {d: s for r in records for s, d in r.images.items()}
    return [*release_table(records), lkg_line(lkg), *quarantine_lines(quarantined, services)]
