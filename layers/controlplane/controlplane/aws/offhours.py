"""Off-hours state in the ledger table (same table as releases and the lock; natural keys, conditional writes).

Items (``pk`` / ``sk``):

* ``ENV#<environment>`` / ``OFFHOURS`` — whether the environment sleeps (``AWAKE`` / ``ASLEEP`` / ``WAKING``), the
  snapshot taken before it went to sleep (JSON), when it slept and woke, a ``version`` bumped on every write.
  A new snapshot is written only while the environment is ``AWAKE`` (or has no item): a second scale-down never
  overwrites the snapshot with the sleeping values. Only a finished scale-up makes it ``AWAKE`` again.
* ``ENV#<environment>`` / ``STAY_AWAKE`` — a person's "stay awake until <time>" override.
* ``ENV#<environment>`` / ``OFFHOURS#<time>#<execution name>`` — one per request (console or schedule), its outcome,
  and for a scale-up the night's savings: the audit trail a person reads.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controlplane.aws.table import Condition, ConditionFailedError, Items, Key, Put, Update, environment_key
from controlplane.errors import PermanentError
from controlplane.models.arn import last_segment
from controlplane.models.offhours import SleepRecord, SleepStatus, Snapshot, StayAwake

if TYPE_CHECKING:
    pass

STATE = "OFFHOURS"
STAY_AWAKE = "STAY_AWAKE"
EVENT_PREFIX = "OFFHOURS#"


class OffhoursStateConflictError(PermanentError):
    """The off-hours item changed under us (another execution wrote it); the step is re-read, not overwritten."""


def _unchanged(version: int) -> Condition:
    return Condition("#version = :version", {"#version": "version"}, {":version": version})


class OffhoursLedger(Items):
    """The off-hours items of the ledger table ``table_name``."""

    @staticmethod
    def _key(environment: str, sk: str = STATE) -> Key:
        return environment_key(environment, sk)

    # ------------------------------------------------------------------------------------------------------- state
    def read(self, environment: str) -> SleepRecord | None:
        data = self.table.get(self._key(environment))
        if data is None:
            return None
        snapshot = data.get("snapshot")
        return SleepRecord(
            environment=data["environment"],
            status=SleepStatus(data["status"]),
            snapshot=Snapshot.model_validate_json(snapshot) if snapshot else None,
            slept_at=data.get("slept_at"),
            woke_at=data.get("woke_at"),
            execution_arn=data.get("execution_arn"),
            version=int(data.get("version", 0)),
        )

    def begin_sleep(self, snapshot: Snapshot, *, now: datetime) -> tuple[SleepRecord, bool]:
        """Store ``snapshot`` and mark the environment ``ASLEEP``, unless it already sleeps.

        Returns the record that rules and whether it is the one just written (``False``: an earlier scale-down's
        snapshot is kept and reused).
        """
        environment = snapshot.environment
        item: dict[str, Any] = {
            "kind": "offhours",
            "environment": environment,
            "status": SleepStatus.ASLEEP.value,
            "snapshot": snapshot.model_dump_json(),
            "slept_at": now.isoformat(),
            "execution_arn": snapshot.execution_arn,
            "version": 1,
        }
        existing = self.read(environment)
        condition = Condition("attribute_not_exists(pk)")
        if existing is not None:
            if existing.asleep:
                return existing, False
            item["version"] = existing.version + 1
            condition = Condition(
                "#version = :version AND #status = :awake",
                {"#version": "version", "#status": "status"},
                {":version": existing.version, ":awake": SleepStatus.AWAKE.value},
            )
        try:
            self.write(Put(self._key(environment), item, condition))
        except ConditionFailedError:
            again = self.read(environment)
            if again is not None and again.asleep:
                return again, False
            raise OffhoursStateConflictError(f"off-hours state of {environment} changed while snapshotting") from None
        record = self.read(environment)
        assert record is not None  # just written; read back consistently
        return record, True

    def set_status(
        self, environment: str, status: SleepStatus, *, expected: tuple[SleepStatus, ...], now: datetime
    ) -> SleepRecord | None:
        """Move the state to ``status`` if it is one of ``expected``; ``None`` when there is no snapshot to act on."""
        record = self.read(environment)
        if record is None or record.status not in (*expected, status):
            return None
        if record.status is status:
            return record
        woke = status is SleepStatus.AWAKE
        update = Condition(
            f"SET #status = :status{', #woke = :now' if woke else ''} ADD #version :one",
            {"#status": "status"} | ({"#woke": "woke_at"} if woke else {}),
            {":status": status.value, ":one": 1} | ({":now": now.isoformat()} if woke else {}),
        )
        try:
            self.write(Update(self._key(environment), update, _unchanged(record.version)))
        except ConditionFailedError:
            raise OffhoursStateConflictError(f"off-hours state of {environment} changed concurrently") from None
        return self.read(environment)

    def replace_snapshot(self, record: SleepRecord, snapshot: Snapshot) -> None:
        """A deploy while asleep: the snapshot now refers to the new release (condition: version unchanged)."""
        update = Condition(
            "SET #snapshot = :snapshot ADD #version :one",
            {"#snapshot": "snapshot"},
            {":snapshot": snapshot.model_dump_json(), ":one": 1},
        )
        try:
            self.write(Update(self._key(record.environment), update, _unchanged(record.version)))
        except ConditionFailedError:
            raise OffhoursStateConflictError(f"off-hours state of {record.environment} changed concurrently") from None

    # ------------------------------------------------------------------------------------------------- stay awake
    def put_stay_awake(self, override: StayAwake) -> None:
        data = {k: v for k, v in override.model_dump(mode="json").items() if v not in (None, "")}
        self.write(Put(self._key(override.environment, STAY_AWAKE), data | {"kind": "stay_awake"}))

    def stay_awake(self, environment: str) -> StayAwake | None:
        data = self.table.get(self._key(environment, STAY_AWAKE))
        if data is None:
            return None
        data.pop("kind", None)
        return StayAwake.model_validate(data)

    # ------------------------------------------------------------------------------------------------------ audit
    def record_event(
        self, environment: str, *, at: datetime, execution_arn: str, action: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        """One audit item per request and outcome (same keys on a retry: overwritten, not duplicated)."""
        name = last_segment(execution_arn)
        self.write(
            Put(
                self._key(environment, f"{EVENT_PREFIX}{at.isoformat()}#{name}#{action}"),
                {
                    "kind": "offhours_event",
                    "action": action,
                    "outcome": outcome,
                    "execution_arn": execution_arn,
                    "detail": json.dumps(detail, sort_keys=True, default=str),
                },
            )
        )

    def events(self, environment: str) -> list[dict[str, Any]]:
        """The audit items of ``environment``, oldest first (details decoded)."""
        key = self._key(environment, EVENT_PREFIX)
        found = []
        for _, data in self.table.query(key.pk, sk_prefix=EVENT_PREFIX):
            data["detail"] = json.loads(str(data.get("detail") or "{}"))
            found.append(data)
        return found
