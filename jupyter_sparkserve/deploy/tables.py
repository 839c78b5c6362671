"""The deploy subsystem's tables: MLflow registrations and deployments (on the repository's
metadata; `repository.database` creates and migrates them)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String, Table, Text

from ..repository.database import created_by_column, metadata

# Each Register / Re-register of a version: which MLflow model version it became.
mlflow_registrations = Table(
    "mlflow_registrations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("mlflow_name", String(256), nullable=False),
    Column("mlflow_version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The registry it was made in (its URI without credentials): `models:/NAME/N` means a
    # model only there. '' for registrations from before schema 5.
    Column("registry", Text, nullable=False, server_default=""),
)

# A model version served somewhere: a local endpoint process, a container, a cloud endpoint.
deployments = Table(
    "deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("target", String(32), nullable=False),
    # starting -> running -> stopped, or failed at any point
    Column("status", String(16), nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("model_uri", Text, nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    created_by_column(),
)
