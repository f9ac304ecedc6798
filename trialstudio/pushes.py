"""``trialstudio pushes list|resend``: the ECR pushes EventBridge could not deliver (PushDeadLetterQueue).

The push rule retries StartExecution for a day (185 times), then sends the event to PushDeadLetterQueue and
PushesUndeliveredAlarm fires. ``resend`` reads each message with the caller's credentials and sends its event to the
operator API (``{"action": "resend", "event": ...}``), which starts the deploy state machine on it exactly as the
rule's target would have (the event unchanged; one execution per event, however often it is sent). A message is
deleted only after the operator API started (or had already started) its deploy; one that was refused or failed stays
in the queue and is reported. ``list`` (and ``resend --dry-run``) only shows them; every message stays.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from trialstudio import render
from trialstudio.control import CliError, ControlPlane
from trialstudio.output import FAILED, OK, Out

RECEIVE_BATCH = 10
VISIBILITY_S = 120
"""How long a message read by this run stays hidden from other readers (it is made visible again if it stays)."""
MAX_MESSAGES = 1000
"""One run handles at most this many messages (the rest wait for the next run)."""


@dataclass
class DeadLetter:
    """One message of PushDeadLetterQueue: the push event and EventBridge's error attributes."""

    message_id: str
    receipt: str
    body: str
    attributes: dict[str, str]

    @property
    def event(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def summary(self) -> dict[str, Any]:
        event = self.event or {}
        found = event.get("detail")
        detail: dict[str, Any] = found if isinstance(found, dict) else {}
        return {
            "message_id": self.message_id,
            "event_id": event.get("id"),
            "time": event.get("time"),
            "repository": detail.get("repository-name"),
            "digest": detail.get("image-digest"),
            "tag": detail.get("image-tag"),
            "error": self.attributes.get("ERROR_CODE"),
            "error_message": self.attributes.get("ERROR_MESSAGE"),
            "rule": self.attributes.get("RULE_ARN"),
        }


def _queue_url(cp: ControlPlane) -> str:
    url = cp.outputs.get("PushDeadLetterQueueUrl")
    if not url:
        raise CliError("stack outputs: missing PushDeadLetterQueueUrl (a control plane older than this CLI?)", 2)
    return url


def receive_all(cp: ControlPlane, url: str) -> list[DeadLetter]:
    """Every message now visible (each hidden for :data:`VISIBILITY_S` while this run handles it)."""
    sqs = cp.client("sqs")
    found: dict[str, DeadLetter] = {}
    while len(found) < MAX_MESSAGES:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            VisibilityTimeout=VISIBILITY_S,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if not messages:
            break
        for m in messages:
            attributes = {k: str(v.get("StringValue", "")) for k, v in (m.get("MessageAttributes") or {}).items()}
            found[m["MessageId"]] = DeadLetter(m["MessageId"], m["ReceiptHandle"], m.get("Body", ""), attributes)
    return list(found.values())


def _release(cp: ControlPlane, url: str, letters: list[DeadLetter]) -> None:
    """Make the messages this run keeps visible again at once (the alarm and the next run see them)."""
    for letter in letters:
        cp.client("sqs").change_message_visibility(QueueUrl=url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)


def _line(summary: dict[str, Any]) -> str:
    repository = str(summary.get("repository") or "?")
    digest = render.digest12(str(summary["digest"])) if summary.get("digest") else "?"
    tag = f" ({summary['tag']})" if summary.get("tag") else ""
    return f"{repository}@{digest}{tag} pushed {summary.get('time') or '?'}: {summary.get('error') or '?'}"


def cmd_pushes(cp: ControlPlane, args: argparse.Namespace, out: Out) -> int:
    url = _queue_url(cp)
    letters = receive_all(cp, url)
    if args.pushes_command == "list" or args.dry_run:
        _release(cp, url, letters)
        out.document({"queue": url, "messages": [letter.summary() for letter in letters]})
        out.lines(
            [f"{len(letters)} dead-lettered push(es) in PushDeadLetterQueue", *(_line(x.summary()) for x in letters)]
        )
        return OK
    resent, kept = resend_all(cp, args.environment, url, letters)
    out.document({"queue": url, "resent": resent, "kept": kept})
    out.lines(
        [
            f"{len(resent)} push(es) sent again, {len(kept)} kept in PushDeadLetterQueue",
            *(f"sent:  {_line(r)} -> {r['status']} {r['execution_arn']}" for r in resent),
            *(f"kept:  {_line(k)}: {k['refusal']}" for k in kept),
        ]
    )
    return OK if not kept else FAILED


def resend_all(
    cp: ControlPlane, environment: str, url: str, letters: list[DeadLetter]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each message's event through the operator API; deleted only once its deploy started."""
    resent: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    stays: list[DeadLetter] = []
    for letter in letters:
        summary = letter.summary()
        event = letter.event
        if event is None:
            kept.append(summary | {"refusal": "the message body is not a JSON event"})
            stays.append(letter)
            continue
        status, answer = cp.operator({"action": "resend", "environment": environment, "event": event})
        if status != 200 or not answer.get("ok"):
            refusal = (
                f"HTTP {status}: {answer.get('error') or answer.get('Message') or ''}: {answer.get('message', '')}"
            )
            kept.append(summary | {"refusal": refusal})
            stays.append(letter)
            continue
        cp.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=letter.receipt)
        resent.append(
            summary
            | {
                "status": answer.get("status"),
                "execution_arn": answer.get("execution_arn"),
                "by": answer.get("principal"),
            }
        )
    _release(cp, url, stays)
    return resent, kept


def add_parsers(sub: Any) -> None:
    pushes = sub.add_parser("pushes", help="ECR pushes EventBridge could not deliver (PushDeadLetterQueue)")
    commands = pushes.add_subparsers(dest="pushes_command", required=True, metavar="list|resend")
    commands.add_parser("list", help="show the dead-lettered pushes (they stay in the queue)")
    resend = commands.add_parser(
        "resend", help="start each dead-lettered push's deploy as the push rule would have; delete it once started"
    )
    resend.add_argument("--dry-run", action="store_true", help="only show what would be sent (nothing changes)")
    pushes.set_defaults(dry_run=False)


COMMANDS = {"pushes": cmd_pushes}
