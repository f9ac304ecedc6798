"""The AWS side of the local cloud: moto running our real SAM template, ASL and handlers in-process.

See ``local/aws/README.md`` for what is emulated and the template conventions the harness relies on.
"""

from local.aws.cfn import CfnFaults
from local.aws.cloud import (
    DEFAULT_TEMPLATE,
    ClusterLike,
    Delivery,
    ExecutionResult,
    ExecutionTimeoutError,
    HistoryEvent,
    LocalCloud,
    LocalCloudError,
    NodegroupSpec,
    RedriveNotSupportedError,
)
from local.aws.faults import AwsCall, AwsFault, AwsFaults
from local.aws.lambdas import InvocationResult, LambdaContext
from local.aws.provision import SUPPORTED_TYPES, UnsupportedResourceError
from local.aws.seams import SeamMovedError, check_seams
from local.aws.template import TemplateError

__all__ = [
    "DEFAULT_TEMPLATE",
    "SUPPORTED_TYPES",
    "AwsCall",
    "AwsFault",
    "AwsFaults",
    "CfnFaults",
    "ClusterLike",
    "Delivery",
    "ExecutionResult",
    "ExecutionTimeoutError",
    "HistoryEvent",
    "InvocationResult",
    "LambdaContext",
    "LocalCloud",
    "LocalCloudError",
    "NodegroupSpec",
    "RedriveNotSupportedError",
    "SeamMovedError",
    "TemplateError",
    "UnsupportedResourceError",
    "check_seams",
]
