"""Payloads that cross state-machine boundaries, as pydantic v2 models (extra="forbid").

Split by what a reader looks for: ``models.release`` (requests, releases, ledger records), ``models.kube``
(applied objects, rollout and health reports), ``models.offhours`` (the off-hours machine), and one module per
deploy gate, named like its state and its ``aws``/``steps`` modules: ``lock``, ``freeze``, ``scan``,
``staging_health``, ``approval``, ``provision``, ``promote``. ``base``, ``images`` and ``arn`` hold what they
share. Import from the submodules.
"""
