"""Pipeline steps: each combines the AWS and Kubernetes adapters into one state of a state machine."""
