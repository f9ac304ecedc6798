"""The local cloud: a Kubernetes API emulator (``local.cluster``) and the in-process AWS harness (``local.aws``)."""
