"""A lock holder's lease: what the execution's state carries from AcquireLock to every step that writes."""

from __future__ import annotations

from pydantic import Field

from controlplane.models.base import StrictModel


class Lease(StrictModel):
    """An execution's hold on its environment's lock: the lock item's owner and lease token when it was granted.

    Every write the holder makes is conditional on the lock item still naming both (``controlplane.aws.lock.fence``,
    ``renew``); the token changes whenever ownership does (take-over, hand-off), so a holder whose lock was taken
    writes nothing more."""

    environment: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="The execution ARN holding the lock.")
    token: int = Field(ge=1)
