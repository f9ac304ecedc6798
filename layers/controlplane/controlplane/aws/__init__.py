"""The AWS side: EKS access, ECR, CloudFormation, the release ledger (DynamoDB), notifications (SNS)."""
