"""A change counter per topic, bumped in the transaction of every write.

Every face (the sidebar, a notebook, the CLI, a job's process) writes the same database, so a
reader learns whether anything changed by comparing these counters with the ones it read last:
one small query instead of re-reading models, deployments and jobs. The bump is made by an
engine event on each INSERT, UPDATE or DELETE of a watched table, on the connection and in the
transaction of that write, so it commits or rolls back with it, in SQLite and PostgreSQL alike;
no writer has to remember it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, String, Table, event, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import UpdateBase

from . import database as db

# Which topic a write to each table changes. Registrations belong to `models`: they change a
# version's badge and actions; a deployment's do too, but its own topic tells both apart.
TOPICS: dict[str, str] = {
    "models": "models",
    "model_versions": "models",
    "version_tags": "models",
    "model_aliases": "models",
    "mlflow_registrations": "models",
    "deployments": "deployments",
    "workflows": "workflows",
    "jobs": "jobs",
}
TOPIC_NAMES: tuple[str, ...] = tuple(dict.fromkeys(TOPICS.values()))

changes = Table(
    "sparkserve_changes",
    db.metadata,
    Column("topic", String(32), primary_key=True),
    Column("counter", BigInteger, nullable=False, default=0),
)


@event.listens_for(changes, "after_create")
def _seed(_table: Table, connection: Connection, **_kw: Any) -> None:
    # One row per topic from the start: a bump is then a single UPDATE, never a racy upsert.
    connection.execute(changes.insert(), [{"topic": name, "counter": 0} for name in TOPIC_NAMES])


def watch(engine: Engine) -> None:
    """Bump the counter of every write's topic on `engine`, in the write's transaction."""

    @event.listens_for(engine, "after_execute")
    def _bump(
        connection: Connection,
        statement: Any,
        _multiparams: Any,
        _params: Any,
        _options: Any,
        _result: Any,
    ) -> None:
        if not isinstance(statement, UpdateBase) or getattr(_result, "rowcount", 1) == 0:
            return  # a read, or a write that matched no row
        table = getattr(statement, "table", None)
        topic = TOPICS.get(getattr(table, "name", ""))
        if topic is not None:
            connection.execute(
                update(changes)
                .where(changes.c.topic == topic)
                .values(counter=changes.c.counter + 1)
            )


def read(engine: Engine) -> dict[str, int]:
    """Each topic's counter: equal to the last read means nothing of it changed since."""
    with engine.connect() as connection, connection.begin():
        rows = connection.execute(select(changes.c.topic, changes.c.counter)).all()
    found = {row.topic: int(row.counter) for row in rows}
    return {name: found.get(name, 0) for name in TOPIC_NAMES}
