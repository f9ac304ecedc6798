"""The SyntheticTrialStudio control plane: deploys and runs the platform on Amazon EKS from Step Functions."""
