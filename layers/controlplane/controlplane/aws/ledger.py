"""The release ledger: releases, applied objects, last known-good, quarantine (items of :mod:`controlplane.aws.table`).

Natural keys and conditional writes: every write is safe to repeat.

Items (``pk`` / ``sk``):

* ``RELEASE#<release id>`` / ``META`` — the release: environment, digests, bundle hash, trigger, status, timings,
  the executions that worked on it (a string set: a rerun adds nothing new).
* ``RELEASE#<release id>`` / ``OBJECT#<order>#<kind>#<namespace>#<name>`` — one per applied object, the manifest as
  applied (zlib-compressed JSON): what the cluster was given, object by object, and what a rollback replays.
* ``RELEASE#<release id>`` / ``OBJECTS_DIGEST#<n>`` — the sha256 of each applied object's canonical JSON by sort
  key, at most :data:`DIGEST_SHARD_BYTES` of entries per shard (one item for a 1,000-service release would be
  ~960 KB, over DynamoDB's 400 KB), written after the objects.
* ``RELEASE#<release id>`` / ``OBJECTS_DIGEST`` — the head, written last: how many objects and the sha256 of each
  shard. A replay verifies the shards against it and every object against its shard (and that none is missing or
  added) and refuses the release on any mismatch (``LedgerIntegrityError``) before anything reaches the cluster.
* ``RELEASE#<release id>`` / ``STATE#<n>`` — what the cluster answered when the release was last applied, object by
  object (the digest of the body sent, resourceVersion, generation, uid; zlib-compressed JSON, at most
  :data:`STATE_CHUNK` objects per item so a 1,000-service release stays far under DynamoDB's 400 KB item limit).
* ``RELEASE#<release id>`` / ``ROLLOUT#<purpose>#<n>`` — the workloads and smoke targets an apply (deploy, rollback,
  add-ons) hands to the health and smoke steps (zlib-compressed JSON, :data:`ROLLOUT_CHUNK` of each per item, all
  items in one transaction): the state carries a :class:`RolloutRef`, never the lists.
* ``ENV#<environment>`` / ``APPLIED`` — which release's state describes the cluster now (written after its
  ``STATE#`` items): the next apply sends only what differs from it or drifted, and prunes from it.
* ``ENV#<environment>`` / ``LAST_KNOWN_GOOD`` — the environment's pointer (updated with a condition on its old value).
* ``DIGEST#<digest>`` / ``QUARANTINE`` — a digest an earlier release failed with.
* ``DIGEST#<digest>`` / ``UNQUARANTINED#<time>`` — an operator released the digest from quarantine: who (the signed
  principal of the operator API), why, and the quarantine item as it was.
* ``ENV#<environment>`` / ``DEGRADED`` — present after a failed rollback, until an operator's rollback succeeds or
  an operator acknowledges (automatic deploys are queued meanwhile: :mod:`controlplane.aws.lock`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.aws.table import (
    EXISTS,
    NOT_EXISTS,
    Condition,
    ConditionFailedError,
    Delete,
    Items,
    Key,
    Put,
    TransactItem,
    Update,
    applied_object_key,
    applied_state_key,
    environment_key,
    objects_digest_key,
    objects_digest_shard_key,
    quarantine_key,
    release_key,
    rollout_key,
    unquarantined_key,
)
from controlplane.errors import PermanentError
from controlplane.models.kube import AppliedObject, canonical_sha256
from controlplane.models.release import (
    ApplyPurpose,
    Degraded,
    LastKnownGood,
    ReleaseRecord,
    ReleaseStatus,
    Rollout,
    RolloutRef,
)

LAST_KNOWN_GOOD = "LAST_KNOWN_GOOD"
APPLIED = "APPLIED"
STATE_CHUNK = 1000
ROLLOUT_CHUNK = 1000
# Bytes of digest entries (sort key + digest) per shard: well under DynamoDB's 400 KB item limit whatever the names.
DIGEST_SHARD_BYTES = 300_000
DEGRADED = "DEGRADED"
MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's TransactWriteItems limit (items per transaction, the fence's check included)."""


def _degraded(data: Mapping[str, Any]) -> Degraded:
    return Degraded.model_validate({k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class Repointed:
    """The last-known-good pointer moved back from ``replaced`` (a failed redeploy of it) to ``pointer``."""

    pointer: LastKnownGood
    replaced: str
    put: Put


class LedgerConflictError(PermanentError):
    """The environment's last-known-good pointer moved under us (a concurrent release recorded first)."""


class ReleaseNotFoundError(PermanentError):
    """The ledger has no release with that id."""


class LedgerIntegrityError(PermanentError):
    """A release's recorded objects do not match the digests recorded with them: refused, never replayed."""


def _verify_applied(release_id: str, found: Mapping[str, Any], recorded: Mapping[str, str] | None) -> None:
    """Every recorded object is there, unchanged, and nothing else is."""
    if recorded is None:
        raise LedgerIntegrityError(
            f"release {release_id}: the ledger holds {len(found)} applied object(s) but no digests for them; "
            "refusing to replay unverified objects"
        )
    problems = [f"{sk}: recorded but missing" for sk in sorted(set(recorded) - set(found))]
    problems += [f"{sk}: not recorded with the release" for sk in sorted(set(found) - set(recorded))]
    problems += [
        f"{sk}: sha256 mismatch (recorded {recorded[sk]}, stored object is {canonical_sha256(obj)})"
        for sk, obj in found.items()
        if sk in recorded and canonical_sha256(obj) != recorded[sk]
    ]
    if problems:
        raise LedgerIntegrityError(
            f"release {release_id}: the ledger's applied objects fail their integrity check; refusing to replay "
            "them:\n  " + "\n  ".join(problems)
        )


def _shards(digests: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """``(sort key, digest)`` pairs in items of at most :data:`DIGEST_SHARD_BYTES` of keys and digests."""
    shards: list[dict[str, str]] = []
    size = DIGEST_SHARD_BYTES
    for sk, digest in digests:
        entry = len(sk.encode()) + len(digest.encode())
        if size + entry > DIGEST_SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][sk] = digest
        size += entry
    return shards


def _recorded_digests(
    release_id: str, head: Mapping[str, Any] | None, shards: Mapping[str, Mapping[str, str]]
) -> dict[str, str] | None:
    """The digests the head item vouches for (``None`` without a head): each of its shards present and unchanged.
    A head of the single-item layout (``digests`` inline, before sharding) is read as it is."""
    if head is None:
        return None
    if "digests" in head:
        return {str(sk): str(digest) for sk, digest in head["digests"].items()}
    wanted = {objects_digest_shard_key(release_id, n).sk: str(sha) for n, sha in enumerate(head["shards"])}
    problems = [f"{sk}: digest shard not recorded with the release" for sk in sorted(set(shards) - set(wanted))]
    recorded: dict[str, str] = {}
    for sk, sha in wanted.items():
        shard = shards.get(sk)
        if shard is None:
            problems.append(f"{sk}: digest shard recorded but missing")
        elif canonical_sha256(shard) != sha:
            problems.append(f"{sk}: digest shard changed (recorded {sha}, stored {canonical_sha256(shard)})")
        else:
            recorded.update(shard)
    if problems:
        raise LedgerIntegrityError(
            f"release {release_id}: the ledger's object digests fail their integrity check; refusing to replay "
            "them:\n  " + "\n  ".join(problems)
        )
    return recorded


class Ledger(Items):
    """The release items of the ledger table ``table_name``; ``client`` is injectable, else one per instance."""

    # ---------------------------------------------------------------------------------------------------- releases
    def get_release(self, release_id: str) -> ReleaseRecord | None:
        data = self.table.get(release_key(release_id))
        if data is None:
            return None
        for key in ("executions", "kind"):
            data.pop(key, None)
        return ReleaseRecord.model_validate(data)

    def require_release(self, release_id: str) -> ReleaseRecord:
        record = self.get_release(release_id)
        if record is None:
            raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger")
        return record

    def put_planned(self, record: ReleaseRecord) -> None:
        """Create the release item, or on a rerun add this execution to it; never duplicates, never demotes."""
        data = record.model_dump(mode="json", exclude={"status", "execution_arn"}, exclude_none=True)
        sets = [f"#{k} = if_not_exists(#{k}, :{k})" for k in data]
        sets += ["#status = if_not_exists(#status, :status)", "#execution_arn = :execution_arn", "#kind = :kind"]
        names = {f"#{k}": k for k in data}
        names |= {"#status": "status", "#execution_arn": "execution_arn", "#kind": "kind", "#executions": "executions"}
        values = {f":{k}": v for k, v in data.items()}
        values |= {
            ":status": ReleaseStatus.PLANNED.value,
            ":execution_arn": record.execution_arn,
            ":kind": "release",
            ":executions": {record.execution_arn},
        }
        update = Condition("SET " + ", ".join(sets) + " ADD #executions :executions", names, values)
        self.write(Update(release_key(record.release_id), update))

    def update_release(self, release_id: str, **fields: Any) -> None:
        """Set fields of an existing release (conditional on it existing)."""
        update = _release_update(release_id, fields)
        if update is None:
            return
        try:
            self.write(update)
        except ConditionFailedError:
            raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger") from None

    # ----------------------------------------------------------------------------------------------- applied objects
    def record_applied(self, release_id: str, objects: Sequence[Mapping[str, Any]]) -> int:
        """Store each applied object under the release, then the digest of each (same keys on a rerun: overwritten,
        not duplicated). Until the digest head item is written, the objects cannot be replayed.

        The digests are sharded (:data:`DIGEST_SHARD_BYTES` per item: a 1,000-service release's ~8,000 digests
        would make one item of ~960 KB, over DynamoDB's 400 KB); the head item, written last, names the shards and
        the sha256 of each, so a replay trusts a shard only as the head recorded it."""
        keys = [applied_object_key(release_id, order, obj) for order, obj in enumerate(objects)]
        # Fenced: every batch is a transaction behind the lease (a holder that lost it writes no further batch).
        written = self.put_all(
            [
                (key, {"kind": "applied_object", "manifest": zlib.compress(json.dumps(obj, sort_keys=True).encode())})
                for key, obj in zip(keys, objects, strict=True)
            ]
        )
        digests = sorted((key.sk, canonical_sha256(obj)) for key, obj in zip(keys, objects, strict=True))
        shards = _shards(digests)
        self.put_all(
            [
                (objects_digest_shard_key(release_id, n), {"kind": "applied_objects_digest_shard", "digests": shard})
                for n, shard in enumerate(shards)
            ]
        )
        # Strictly after the objects and shards, fenced (a holder that lost its lease leaves the objects
        # unreplayable): the head item makes them count.
        head = {
            "kind": "applied_objects_digest",
            "objects": len(digests),
            "shards": [canonical_sha256(shard) for shard in shards],
        }
        self.write(Put(objects_digest_key(release_id), head))
        return written

    def applied_objects(self, release_id: str) -> list[dict[str, Any]]:
        """The objects applied for ``release_id``, in apply order, each verified against the digest recorded with
        it; ``LedgerIntegrityError`` naming the release and the object when one was changed, added or removed (or
        the digests are missing), ``[]`` when nothing was recorded."""
        found: dict[str, dict[str, Any]] = {}
        head: dict[str, Any] | None = None
        shards: dict[str, dict[str, str]] = {}
        digest_key = objects_digest_key(release_id)
        # One query: "OBJECT" prefixes the objects (OBJECT#...), the digest head (OBJECTS_DIGEST) and its shards.
        for key, item in self.table.query(digest_key.pk, sk_prefix="OBJECT"):
            if key == digest_key:
                head = item
            elif key.sk.startswith(digest_key.sk + "#"):
                shards[key.sk] = {str(sk): str(digest) for sk, digest in item["digests"].items()}
            elif key.sk.startswith("OBJECT#"):
                found[key.sk] = json.loads(zlib.decompress(item["manifest"]))
        if not found and head is None:
            return []
        _verify_applied(release_id, found, _recorded_digests(release_id, head, shards))
        return list(found.values())

    def record_applied_state(self, environment: str, release_id: str, objects: Sequence[AppliedObject]) -> None:
        """What the apply of ``release_id`` reported, then the environment's pointer to it (a rerun overwrites)."""
        entries = [o.model_dump(mode="json", exclude={"action"}) for o in objects]
        chunks = [entries[i : i + STATE_CHUNK] for i in range(0, len(entries), STATE_CHUNK)] or [[]]
        self.put_all(
            [
                (
                    applied_state_key(release_id, n),
                    {"kind": "applied_state", "entries": zlib.compress(json.dumps(chunk).encode())},
                )
                for n, chunk in enumerate(chunks)
            ]
        )
        pointer = {"kind": "applied_state_pointer", "release_id": release_id, "chunks": len(chunks)}
        self.write(Put(environment_key(environment, APPLIED), pointer | {"objects": len(objects)}))

    def applied_state(self, environment: str) -> dict[str, AppliedObject] | None:
        """By ``ObjectRef.key``: what the last apply to ``environment`` reported; ``None`` when none was recorded."""
        pointer = self.table.get(environment_key(environment, APPLIED))
        if pointer is None:
            return None
        wanted = {applied_state_key(str(pointer["release_id"]), n) for n in range(int(pointer["chunks"]))}
        found: dict[Key, list[dict[str, Any]]] = {}
        for key, item in self.table.query(f"RELEASE#{pointer['release_id']}", sk_prefix="STATE#"):
            if key in wanted:
                found[key] = json.loads(zlib.decompress(item["entries"]))
        if set(found) != wanted:  # a chunk is missing: the state cannot be trusted, so nothing is skipped
            return None
        objects = [
            AppliedObject.model_validate(e | {"action": "unchanged"})
            for k in sorted(found, key=lambda k: k.sk)
            for e in found[k]
        ]
        return {o.ref.key: o for o in objects}

    # ------------------------------------------------------------------------------------------------------ rollout
    def record_rollout(self, release_id: str, purpose: ApplyPurpose, rollout: Rollout) -> RolloutRef:
        """Store what the next states need of this apply (one transaction: fenced like every write); a rerun
        overwrites. Returns the reference the state carries."""
        workloads = [w.model_dump(mode="json") for w in rollout.workloads]
        targets = [t.model_dump(mode="json") for t in rollout.smoke_targets]
        chunks = max(1, -(-max(len(workloads), len(targets)) // ROLLOUT_CHUNK))
        self.write(
            *(
                Put(
                    rollout_key(release_id, purpose.value, n),
                    {
                        "kind": "rollout",
                        "rollout": zlib.compress(
                            json.dumps(
                                {
                                    "workloads": workloads[n * ROLLOUT_CHUNK : (n + 1) * ROLLOUT_CHUNK],
                                    "smoke_targets": targets[n * ROLLOUT_CHUNK : (n + 1) * ROLLOUT_CHUNK],
                                }
                            ).encode()
                        ),
                    },
                )
                for n in range(chunks)
            )
        )
        return RolloutRef(
            release_id=release_id,
            purpose=purpose,
            chunks=chunks,
            workloads=len(workloads),
            smoke_targets=len(targets),
        )

    def rollout(self, ref: RolloutRef) -> Rollout:
        """What ``ref`` points at; :class:`LedgerIntegrityError` when its items are not all there as recorded."""
        prefix = rollout_key(ref.release_id, ref.purpose.value, 0).sk.rpartition("#")[0] + "#"
        found = {
            key.sk: json.loads(zlib.decompress(item["rollout"]))
            for key, item in self.table.query(f"RELEASE#{ref.release_id}", sk_prefix=prefix)
        }
        parts = [found.get(rollout_key(ref.release_id, ref.purpose.value, n).sk) for n in range(ref.chunks)]
        rollout = Rollout(
            workloads=[w for part in parts for w in (part or {}).get("workloads", [])],
            smoke_targets=[t for part in parts for t in (part or {}).get("smoke_targets", [])],
        )
        if None in parts or (len(rollout.workloads), len(rollout.smoke_targets)) != (ref.workloads, ref.smoke_targets):
            raise LedgerIntegrityError(
                f"release {ref.release_id}: the ledger's {ref.purpose.value} rollout items do not match the state's "
                f"reference ({ref.chunks} item(s), {ref.workloads} workload(s), {ref.smoke_targets} smoke target(s); "
                f"found {len(found)} item(s), {len(rollout.workloads)}, {len(rollout.smoke_targets)})"
            )
        return rollout

    # ------------------------------------------------------------------------------------------ last known good
    def last_known_good(self, environment: str) -> LastKnownGood | None:
        data = self.table.get(environment_key(environment, LAST_KNOWN_GOOD))
        return LastKnownGood.model_validate(data) if data is not None else None

    def promote(
        self,
        environment: str,
        release_id: str,
        *,
        expected_previous: str | None,
        execution_arn: str,
        now: datetime,
        release_fields: dict[str, Any] | None = None,
        also: Sequence[TransactItem] = (),
    ) -> LastKnownGood:
        """Make ``release_id`` the last known-good release, if the pointer still is ``expected_previous``;
        ``release_fields`` are set on the release and ``also`` written in the same transaction (its status, the
        pointer and the rest move together or not at all).

        Idempotent: when the pointer already names ``release_id`` only the release's fields and ``also`` are
        written.
        """
        release_update = _release_update(release_id, release_fields or {})
        also = [*([release_update] if release_update is not None else []), *also]
        current = self.last_known_good(environment)
        if current is not None and current.release_id == release_id:
            if also:
                self.write(*also)
            return current
        pointer = LastKnownGood(
            environment=environment,  # type: ignore[arg-type]
            release_id=release_id,
            previous_release_id=current.release_id if current else None,
            updated_at=now,
            execution_arn=execution_arn,
        )
        condition = NOT_EXISTS
        if expected_previous is not None:
            condition = Condition("release_id = :expected", values={":expected": expected_previous})
        try:
            self.write(
                Put(environment_key(environment, LAST_KNOWN_GOOD), pointer.model_dump(mode="json"), condition), *also
            )
        except ConditionFailedError as exc:
            if exc.reasons[1:2] == ("ConditionalCheckFailed",):
                raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger") from None
            again = self.last_known_good(environment)
            if again is not None and again.release_id == release_id:
                if also:
                    self.write(*also)
                return again
            raise LedgerConflictError(
                f"last known-good release of {environment} is {again.release_id if again else None!r}, "
                f"expected {expected_previous!r}: another release was recorded concurrently"
            ) from None
        return pointer

    def record_failure(
        self,
        environment: str,
        release_id: str,
        *,
        release_fields: Mapping[str, Any],
        quarantine: Mapping[str, str],
        cause: str,
        rolled_back_to: str | None,
        degraded: Degraded | None,
        execution_arn: str,
        now: datetime,
    ) -> Repointed | None:
        """Record a failed release as ONE transaction (behind the fence when fenced): its ``release_fields`` (status,
        cause, ...), the quarantine of each ``service -> digest`` (the first failure that quarantined a digest is
        kept), the last-known-good pointer moved back to ``rolled_back_to`` when it still names the failed release
        (a redeploy of the last known-good itself failed: the pointer must name what the cluster runs), and the
        ``degraded`` mark (an earlier mark is kept). All of it or none: a failed write leaves the ledger as it was
        and a retry writes it all. Returns the pointer move, if any.

        More than :data:`MAX_TRANSACTION_ITEMS` items (a release changing ~100 services at once): the quarantines
        beyond the transaction go first, each batch its own fenced transaction (idempotent; a retry redoes them)."""
        update = _release_update(release_id, release_fields)
        if update is None:
            raise ValueError("record_failure: release_fields must set the release's status")
        by_digest: dict[str, str] = {}
        for service, digest in sorted(quarantine.items()):
            by_digest.setdefault(digest, service)  # one item per digest (a transaction names each item once)
        quarantines = [
            _quarantine_item(digest, service=service, release_id=release_id, cause=cause, now=now)
            for digest, service in by_digest.items()
        ]
        marks = [_degraded_item(degraded)] if degraded is not None else []
        for _ in range(2):
            move = self._repoint_move(
                environment, failed=release_id, target=rolled_back_to, execution_arn=execution_arn, now=now
            )
            items: list[TransactItem] = [update, *([move.put] if move else []), *marks]
            room = MAX_TRANSACTION_ITEMS - len(items) - (1 if self.fence is not None else 0)
            early, last = quarantines[: max(0, len(quarantines) - room)], quarantines[max(0, len(quarantines) - room) :]
            for start in range(0, len(early), room):
                self.write(*early[start : start + room])
            try:
                self.write(*items, *last)
            except ConditionFailedError as exc:
                if exc.reasons[:1] == ("ConditionalCheckFailed",):
                    raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger") from None
                continue  # the pointer moved between our read and the write: read it again
            return move
        raise LedgerConflictError(
            f"last known-good release of {environment} kept moving while release {release_id}'s failure was recorded"
        )

    def _repoint_move(
        self, environment: str, *, failed: str, target: str | None, execution_arn: str, now: datetime
    ) -> Repointed | None:
        """The pointer's move back to ``target`` (with ``target``'s own predecessor) when it names ``failed``;
        conditional on it still naming ``failed``. ``None`` when there is nothing to move."""
        if target is None:
            return None
        current = self.last_known_good(environment)
        if current is None or current.release_id != failed:
            return None
        restored = self.require_release(target)
        pointer = LastKnownGood(
            environment=environment,  # type: ignore[arg-type]
            release_id=target,
            previous_release_id=restored.previous_release_id,
            updated_at=now,
            execution_arn=execution_arn,
        )
        put = Put(
            environment_key(environment, LAST_KNOWN_GOOD),
            pointer.model_dump(mode="json"),
            Condition("release_id = :expected", values={":expected": failed}),
        )
        return Repointed(pointer=pointer, replaced=failed, put=put)

    # ----------------------------------------------------------------------------------------------------- degraded
    def degraded(self, environment: str) -> Degraded | None:
        data = self.table.get(environment_key(environment, DEGRADED))
        return _degraded(data) if data is not None else None

    def mark_degraded(self, mark: Degraded) -> None:
        """Mark the environment degraded; a mark already there (an earlier failure) is kept, with its ``since``."""
        self.write(_degraded_item(mark))

    def clear_degraded(self, environment: str) -> Degraded | None:
        """Remove the mark; returns what it said (``None`` if there was none)."""
        old = self.degraded(environment)
        if old is None:
            return None
        self.write(degraded_cleared(environment))
        return old

    # --------------------------------------------------------------------------------------------------- quarantine
    def quarantined(self, digests: Iterable[str]) -> dict[str, str]:
        """Which of ``digests`` are quarantined, with the release and cause that put them there."""
        items = self.table.get_many(quarantine_key(d) for d in sorted(set(digests)))
        return {str(d["digest"]): f"release {d['release_id']} failed: {d.get('cause', '')}" for d in items}

    def quarantine(self, digests: Mapping[str, str], *, release_id: str, cause: str, now: datetime) -> None:
        """Quarantine each ``service -> digest``; the first failure that quarantined a digest is kept."""
        for service, digest in sorted(digests.items()):
            self.write(_quarantine_item(digest, service=service, release_id=release_id, cause=cause, now=now))

    def unquarantine(
        self, digest: str, *, service: str, principal: str, reason: str, now: datetime
    ) -> dict[str, Any] | None:
        """Release ``service``'s ``digest`` from quarantine and record who did it and why, in one transaction.

        ``None`` (nothing written) when the digest is not quarantined for ``service``; the record written otherwise.
        """
        key = quarantine_key(digest)
        old = self.table.get(key)
        if old is None or old.get("service") != service:
            return None
        record = {
            "kind": "unquarantine",
            "digest": digest,
            "service": service,
            "principal": principal,
            "reason": reason,
            "unquarantined_at": now.isoformat(),
            "quarantine": {k: v for k, v in old.items() if k != "kind"},
        }
        try:
            self.table.transact(
                [
                    Delete(key, condition=Condition("#s = :service", {"#s": "service"}, {":service": service})),
                    Put(unquarantined_key(digest, now.isoformat()), record, condition=NOT_EXISTS),
                ]
            )
        except ConditionFailedError:
            return None  # released by someone else meanwhile
        return record


def _first_write(key: Key, data: Mapping[str, Any]) -> Update:
    """Create the item with ``data``; an item already there keeps every attribute it has (``if_not_exists``), so the
    first write stays and the update never fails (it can ride in a transaction with others)."""
    plain = {k: v for k, v in data.items() if v is not None}
    update = Condition(
        "SET " + ", ".join(f"#{k} = if_not_exists(#{k}, :{k})" for k in plain),
        {f"#{k}": k for k in plain},
        {f":{k}": v for k, v in plain.items()},
    )
    return Update(key, update)


def _quarantine_item(digest: str, *, service: str, release_id: str, cause: str, now: datetime) -> Update:
    return _first_write(
        quarantine_key(digest),
        {
            "kind": "quarantine",
            "digest": digest,
            "service": service,
            "release_id": release_id,
            "cause": cause[:1000],
            "quarantined_at": now.isoformat(),
        },
    )


def degraded_cleared(environment: str) -> Delete:
    """The removal of ``environment``'s degraded mark (a write to put in a transaction; nothing if absent)."""
    return Delete(environment_key(environment, DEGRADED))


def _degraded_item(mark: Degraded) -> Update:
    return _first_write(
        environment_key(mark.environment, DEGRADED), {"kind": "degraded", **mark.model_dump(mode="json")}
    )


def _release_update(release_id: str, fields: Mapping[str, Any]) -> Update | None:
    """The update setting ``fields`` of an existing release (``None`` values left out); ``None`` if nothing is set."""
    data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items() if v is not None}
    data = {k: v.value if isinstance(v, ReleaseStatus) else v for k, v in data.items()}
    if not data:
        return None
    update = Condition(
        "SET " + ", ".join(f"#{k} = :{k}" for k in data),
        {f"#{k}": k for k in data},
        {f":{k}": v for k, v in data.items()},
    )
    return Update(release_key(release_id), update, EXISTS)
