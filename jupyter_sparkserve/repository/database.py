"""The repository's metadata tables, the engine that opens them, and schema migrations.

SQLite (the default) runs in WAL mode so readers never wait for a writer, with a busy timeout
so concurrent writers from other processes queue instead of failing. Write transactions start
with `BEGIN IMMEDIATE`: taking the write lock up front is what makes version allocation atomic
across processes and avoids SQLite's deadlock on lock upgrade.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from ..config import current_user, safe_uri
from ..errors import InvalidInput, RepositoryTooNew

# Bump with every change to the tables below, and add the step that upgrades to it.
#   1: models, versions, tags, aliases (the first release)
#   2: mlflow_registrations, deployments, the case-folded name index
#   3: workflows, jobs
#   4: sparkserve_changes (the change counters, repository/changes.py)
#   5: created_by on model_versions, deployments and jobs (who did it); the MLflow
#      registry each registration was made in (mlflow_registrations.registry)
SCHEMA_VERSION = 5

metadata = MetaData()
CREATED_BY_LENGTH = 255


def created_by_column() -> Column[str]:
    """Who made the row: a Jupyter user's name, or the OS user of the CLI or a notebook; ''
    for rows from before schema 5."""
    return Column("created_by", String(CREATED_BY_LENGTH), nullable=False, server_default="")


def created_by(by: str | None) -> str:
    """What a row records as its maker: the name a face gave, else this process's user."""
    return (current_user() if by is None else by.strip())[:CREATED_BY_LENGTH]


schema_info = Table(
    "sparkserve_schema",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    # Highest version number ever handed out: numbers are never reused after a delete.
    Column("last_version", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# Names are unique whatever their case: on macOS and Windows `Iris/` and `iris/` are one folder.
names_folded = Index("uq_models_name_folded", func.lower(models.c.name), unique=True)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("flavors", JSON, nullable=False),
    Column("signature", JSON, nullable=True),
    Column("has_input_example", Boolean, nullable=False, default=False),
    Column("metrics", JSON, nullable=False),
    Column("source", Text, nullable=False),
    # Relative to the artifact root, so a repository can be moved or shared.
    Column("artifact_dir", String(512), nullable=False),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("mlflow_version", String(64), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    created_by_column(),
    UniqueConstraint("model_id", "version", name="uq_model_version"),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

Migration = Callable[[Connection], None]


def _create_tables(*tables: Table) -> Migration:
    # checkfirst: a database written between two releases may hold some of them already.
    def step(connection: Connection) -> None:
        metadata.create_all(connection, tables=list(tables), checkfirst=True)

    return step


# Each subsystem keeps its tables beside it, on this module's `metadata`; they are imported
# before the schema is created or upgraded, so that `metadata` knows every table.
TABLE_MODULES = (
    "jupyter_sparkserve.deploy.tables",
    "jupyter_sparkserve.workflows.tables",
    "jupyter_sparkserve.repository.changes",
)


def _tables(*names: str) -> list[Table]:
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return [metadata.tables[name] for name in names]


# MIGRATIONS[n] upgrades a database at schema n-1 to schema n. A fresh database is created
# from `metadata` directly and stamped with SCHEMA_VERSION.
def _schema_2(connection: Connection) -> None:
    _create_tables(*_tables("mlflow_registrations", "deployments"))(connection)
    # The first release enforced case-insensitive names in code only.
    names_folded.create(connection, checkfirst=True)


def _schema_3(connection: Connection) -> None:
    _create_tables(*_tables("workflows", "jobs"))(connection)


def _schema_4(connection: Connection) -> None:
    _create_tables(*_tables("sparkserve_changes"))(connection)  # seeds its rows on create


def _schema_5(connection: Connection) -> None:
    added = [(name, "created_by") for name in ("model_versions", "deployments", "jobs")]
    for name, column in [*added, ("mlflow_registrations", "registry")]:
        table = _tables(name)[0]
        present = {found["name"] for found in inspect(connection).get_columns(table.name)}
        if column not in present:  # a database written between two releases has it
            kind = table.c[column].type.compile(dialect=connection.dialect)
            connection.execute(
                text(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind} NOT NULL DEFAULT ''")
            )


MIGRATIONS: dict[int, Migration] = {2: _schema_2, 3: _schema_3, 4: _schema_4, 5: _schema_5}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def create_repository_engine(url: str) -> Engine:
    advice = (
        "use an SQLAlchemy URL such as sqlite:////path/to/repository.db or "
        "postgresql+psycopg://user@host/db"
    )
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return _watched(create_engine(url, pool_pre_ping=True))
    except ArgumentError:
        raise InvalidInput(f"Invalid database URL: {advice}.") from None
    except ImportError as error:
        raise InvalidInput(
            f"No driver for the database URL {safe_uri(url)} ({error}): install it, for "
            "PostgreSQL with pip install 'jupyter_sparkserve[postgres]'."
        ) from None

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    except (ArgumentError, TypeError) as error:
        raise InvalidInput(f"Invalid database URL ({error}): {advice}.") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred only).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return _watched(engine)


def _watched(engine: Engine) -> Engine:
    # Every write bumps its topic's change counter (imported here: changes imports this).
    importlib.import_module("jupyter_sparkserve.repository.changes").watch(engine)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement to its commit."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            if engine.dialect.name == "postgresql":
                # Serialises writers across processes like SQLite's write lock does.
                connection.execute(text("SELECT pg_advisory_xact_lock(7305421)"))
            yield connection


def read_schema_version(connection: Connection) -> int | None:
    if not inspect(connection).has_table(schema_info.name):
        return None
    value = connection.execute(
        select(schema_info.c.value).where(schema_info.c.key == "schema_version")
    ).scalar_one_or_none()
    return None if value is None else int(value)


def ensure_schema(
    engine: Engine,
    *,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
) -> int:
    """Create or upgrade the tables; refuse a database from a newer release.

    Returns the schema version the database had before (0 for a new one).
    """
    try:
        with engine.connect() as connection, connection.begin():
            current = read_schema_version(connection)
    except OperationalError as error:
        raise InvalidInput(
            f"Cannot open the repository database {safe_uri(str(engine.url))}: "
            f"{str(error.orig).strip()}"
        ) from None
    if current == target:
        return current

    with write_transaction(engine) as connection:
        current = read_schema_version(connection)  # another process may have done it meanwhile
        if current is None:
            if inspect(connection).has_table(models.name):
                raise RepositoryTooNew(
                    "The repository database has model tables but no schema version: it was not "
                    "written by jupyter_sparkserve, or its schema table was removed. Point "
                    "SPARKSERVE_DATABASE_URL at another database."
                )
            _tables()  # every subsystem's tables known to `metadata`
            metadata.create_all(connection)
            _stamp(connection, target, insert=True)
            return 0
        if current > target:
            raise RepositoryTooNew(
                f"This repository was written by a newer jupyter_sparkserve (schema version "
                f"{current}; this release reads up to {target}). Upgrade jupyter_sparkserve "
                f"(pip install -U jupyter_sparkserve) to open it; nothing was changed."
            )
        for step in range(current + 1, target + 1):
            migrations[step](connection)
        _stamp(connection, target, insert=False)
        return current


def repository_id(engine: Engine) -> str:
    """A random id made with the database: tells which repository an artifact folder is for.
    A database from before ids existed gets one now."""
    query = select(schema_info.c.value).where(schema_info.c.key == "repository_id")
    with engine.connect() as connection, connection.begin():
        found = connection.execute(query).scalar_one_or_none()
    if found is not None:
        return str(found)
    with write_transaction(engine) as connection:
        found = connection.execute(query).scalar_one_or_none()
        if found is None:
            found = uuid.uuid4().hex
            connection.execute(schema_info.insert().values(key="repository_id", value=found))
        return str(found)


def _stamp(connection: Connection, version: int, *, insert: bool) -> None:
    if insert:
        connection.execute(schema_info.insert().values(key="schema_version", value=str(version)))
    else:
        connection.execute(
            schema_info.update()
            .where(schema_info.c.key == "schema_version")
            .values(value=str(version))
        )
