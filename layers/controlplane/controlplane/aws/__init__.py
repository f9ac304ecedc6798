"""The AWS side: EKS access, ECR, CloudFormation, node groups, notifications (SNS), and the ledger table, spoken to
through one adapter (``aws.table``) by the release ledger and one module per gate (lock, freeze, approval,
provision) and off-hours."""
