"""Payloads that cross state-machine boundaries, as pydantic v2 models (extra="forbid").

Split by what a reader looks for: ``models.release`` (requests, releases, ledger records), ``models.kube``
(applied objects, rollout and health reports). Import from the submodules.
"""
