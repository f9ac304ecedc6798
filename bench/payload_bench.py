"""Payloads that grow with the platform, for 7, 100 and 1,000 services (``python -m bench payload``).

A synthetic platform (``bench.kube_bench.platform_objects``: copies of edc-service's objects) is rendered, not
applied. Measured against the limits the local cloud enforces as AWS does:

* the deploy state machine's payload after ApplyRelease (plan, apply output) against Step Functions' 256 KiB;
* the ledger items ApplyRelease writes (the applied-state batches, the objects' digest item) against DynamoDB's
  400 KB item limit;
* the time to digest every object (what deciding "unchanged" costs per deploy).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from datetime import UTC, datetime

from controlplane.aws.ledger import STATE_CHUNK
from controlplane.models.kube import AppliedObject, ObjectRef, canonical_sha256
from controlplane.models.release import ApplyOutput, ReleaseRef
from controlplane.steps.apply import smoke_targets_of, workloads_of

from bench.kube_bench import platform_objects

STATE_PAYLOAD_LIMIT = 256 * 1024
ITEM_LIMIT = 400 * 1000


def _measure(services: int) -> None:
    objects = platform_objects(services)
    names = sorted({str(o["metadata"]["name"]) for o in objects if o["kind"] == "Deployment"})
    images = {n: f"sha256:{hashlib.sha256(n.encode()).hexdigest()}" for n in names}
    release = ReleaseRef.build("staging", images, "sha256:" + "b" * 64)
    started = time.perf_counter()
    digests = [canonical_sha256(o) for o in objects]
    digest_ms = (time.perf_counter() - started) * 1000
    output = ApplyOutput(
        release_id=release.release_id,
        applied=len(objects),
        pruned=0,
        workloads=workloads_of(objects),
        smoke_targets=smoke_targets_of(objects, names),
        applied_at=datetime.now(UTC),
        source="render",
    )
    payload = len(json.dumps({"plan": {"release": release.model_dump(mode="json"), "changed": images}}))
    payload += len(output.model_dump_json())
    state = [
        AppliedObject(ref=ObjectRef.of(o), action="created", resource_version="12345", uid="0" * 36, sha256=d)
        for o, d in zip(objects, digests, strict=True)
    ]
    entries = [s.model_dump(mode="json", exclude={"action"}) for s in state]
    batches = [entries[i : i + STATE_CHUNK] for i in range(0, len(entries), STATE_CHUNK)]
    largest_batch = max(len(zlib.compress(json.dumps(b).encode())) for b in batches)
    digest_item = len(
        json.dumps(
            {
                f"OBJECT#{i:05d}#{o['kind']}#x#{o['metadata']['name']}": d
                for i, (o, d) in enumerate(zip(objects, digests, strict=True))
            }
        )
    )
    print(
        f"{services:>5} services, {len(objects):>5} objects: payload after ApplyRelease {payload / 1024:6.1f} KiB "
        f"({'OK' if payload <= STATE_PAYLOAD_LIMIT else 'OVER'} 256 KiB); applied-state batches {len(batches)}, "
        f"largest {largest_batch / 1000:.0f} KB; digest item {digest_item / 1000:.0f} KB "
        f"({'OK' if digest_item <= ITEM_LIMIT else 'OVER'} 400 KB); digests {digest_ms:.0f} ms"
    )


def main() -> None:
    for services in (7, 100, 1000):
        _measure(services)


if __name__ == "__main__":
    main()
