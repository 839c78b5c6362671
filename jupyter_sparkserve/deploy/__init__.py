"""Deployments: model versions served as endpoints (local processes for now)."""
