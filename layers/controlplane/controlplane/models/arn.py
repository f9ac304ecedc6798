"""ARNs, parsed in one place: ``arn:<partition>:<service>:<region>:<account>:<resource>``.

Step Functions names executions and state machines by ARN; the lock, its follow-up deploys and the off-hours audit
trail move between the two and name an execution by its last segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.errors import ConfigurationError


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, value: str) -> Arn:
        """``ValueError`` naming the value when it is not an ARN."""
        parts = value.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or not parts[2]:
            raise ValueError(f"not an ARN: {value!r}")
        return cls(*parts[1:])

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def last_segment(arn: str) -> str:
    """An execution's (or any ARN's) name: what follows its last colon (the whole value when there is none)."""
    return arn.rpartition(":")[2]


def state_machine_of(execution_arn: str) -> str:
    """``arn:aws:states:r:a:execution:sm:name`` -> ``arn:aws:states:r:a:stateMachine:sm``."""
    try:
        arn = Arn.parse(execution_arn)
    except ValueError:
        raise ValueError(f"not an execution ARN: {execution_arn!r}") from None
    kind, _, rest = arn.resource.partition(":")
    machine = rest.partition(":")[0]
    if kind != "execution" or not machine or ":" not in rest:
        raise ValueError(f"not an execution ARN: {execution_arn!r}")
    return str(Arn(arn.partition, arn.service, arn.region, arn.account, f"stateMachine:{machine}"))


def execution_of(state_machine_arn: str, name: str) -> str:
    """``arn:aws:states:r:a:stateMachine:sm`` + name -> ``arn:aws:states:r:a:execution:sm:name``."""
    try:
        arn = Arn.parse(state_machine_arn)
    except ValueError:
        arn = None
    kind, _, machine = arn.resource.partition(":") if arn else ("", "", "")
    if arn is None or kind != "stateMachine" or not machine:
        raise ConfigurationError(f"not a state machine ARN: {state_machine_arn!r}")
    return str(Arn(arn.partition, arn.service, arn.region, arn.account, f"execution:{machine}:{name}"))
