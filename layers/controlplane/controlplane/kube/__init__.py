"""The Kubernetes side: client built from the EKS API, server-side apply, health checks, rollback, scaling."""
