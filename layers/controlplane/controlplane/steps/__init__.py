"""Pipeline steps: each module serves one gate or stage (one function per state of a state machine) and combines
the AWS and Kubernetes adapters. Steps never import each other (import-linter ``independence`` contract): what two
of them share lives a layer down (``controlplane.cluster``, the adapters, ``settings``, ``models``)."""
