"""The repository's queries and row helpers: versions with their tags and aliases, a model's
details, pages of models, the hints an unknown name or alias gets, and a model's row."""

from __future__ import annotations

import difflib
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, select, true, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound
from . import database as db
from .artifacts import ArtifactStore
from .mlmodels import primary_flavor
from .records import ModelDetails, ModelSummary, ModelVersion, Page


def versions(
    artifacts: ArtifactStore, conn: Connection, model: Row[Any], version: int | None
) -> list[ModelVersion]:
    """The model's versions (or the one `version`), newest first, with tags and aliases."""
    v = db.model_versions
    query = select(v).where(v.c.model_id == model.id).order_by(v.c.version.desc())
    if version is not None:
        query = query.where(v.c.version == version)
    rows = conn.execute(query).all()
    if not rows:
        return []
    tags = tags_by_version(conn, [row.id for row in rows])
    aliases_by_version: dict[int, list[str]] = {}
    for alias, number in aliases_by_model(conn, [model.id]).get(model.id, {}).items():
        aliases_by_version.setdefault(number, []).append(alias)
    return [
        ModelVersion(
            name=model.name,
            version=row.version,
            description=row.description,
            flavors=tuple(row.flavors),
            tags=tags.get(row.id, {}),
            metrics=dict(row.metrics or {}),
            aliases=tuple(sorted(aliases_by_version.get(row.version, []))),
            signature=row.signature,
            has_input_example=bool(row.has_input_example),
            source=row.source,
            path=artifacts.path(row.artifact_dir),
            fetcher=partial(artifacts.fetch, row.artifact_dir),
            size_bytes=row.size_bytes,
            mlflow_version=row.mlflow_version,
            created_at=db.as_utc(row.created_at),
            created_by=row.created_by,
        )
        for row in rows
    ]


def details(model: Row[Any], versions: list[ModelVersion]) -> ModelDetails:
    return ModelDetails(
        name=model.name,
        aliases={alias: v.version for v in versions for alias in v.aliases},
        versions=tuple(versions),
        created_at=db.as_utc(model.created_at),
        updated_at=db.as_utc(model.updated_at),
    )


def tags_by_version(conn: Connection, version_ids: list[int]) -> dict[int, dict[str, str]]:
    if not version_ids:
        return {}
    rows = conn.execute(
        select(db.version_tags).where(db.version_tags.c.version_id.in_(version_ids))
    ).all()
    tags: dict[int, dict[str, str]] = {}
    for row in rows:
        tags.setdefault(row.version_id, {})[row.key] = row.value
    return tags


def aliases_by_model(conn: Connection, model_ids: list[int]) -> dict[int, dict[str, int]]:
    if not model_ids:
        return {}
    rows = conn.execute(
        select(db.model_aliases)
        .where(db.model_aliases.c.model_id.in_(model_ids))
        .order_by(db.model_aliases.c.alias)
    ).all()
    aliases: dict[int, dict[str, int]] = {}
    for row in rows:
        aliases.setdefault(row.model_id, {})[row.alias] = row.version
    return aliases


def aliases_hint(conn: Connection, model_id: int) -> str:
    aliases = aliases_by_model(conn, [model_id]).get(model_id, {})
    if not aliases:
        return " (it has no aliases)"
    listed = ", ".join(f"{alias} -> {version}" for alias, version in aliases.items())
    return f" (aliases: {listed})"


def unknown_model_message(home: Path, conn: Connection, name: str) -> str:
    names = conn.execute(select(db.models.c.name)).scalars().all()
    message = f"No model named {name!r} in the repository at {home}."
    folded = {n.lower(): n for n in names}
    close = [folded[n] for n in difflib.get_close_matches(name.lower(), list(folded), n=3)]
    if Path(name).is_dir():
        message += f" To use the folder {name!r} in the current directory, write ./{name}."
    elif close:
        message += f" Did you mean {' or '.join(repr(c) for c in close)}?"
    elif not names:
        message += " The repository is empty: save a model first."
    return message


def model_page(
    conn: Connection, name_contains: str | None, tag: str | None, limit: int, offset: int
) -> Page[ModelSummary]:
    """One page of the models sorted by name (case-insensitively), each with its latest
    version; `name_contains` matches case-insensitively, `tag` (`KEY` or `KEY=VALUE`) matches
    a model when any of its versions carries it."""
    m, v, t = db.models, db.model_versions, db.version_tags
    conditions = []
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(m.c.name.ilike(f"%{escaped}%", escape="\\"))
    if tag:
        key, has_value, value = tag.partition("=")
        tag_match = and_(t.c.key == key, t.c.value == value) if has_value else t.c.key == key
        tagged = v.alias("tagged_version")
        conditions.append(
            select(t.c.version_id)
            .join(tagged, tagged.c.id == t.c.version_id)
            .where(tagged.c.model_id == m.c.id, tag_match)
            .exists()
        )
    # A model whose versions were all deleted keeps its row (and numbering) but is not listed.
    any_version = v.alias("any_version")  # not the joined `v` of the page query below
    conditions.append(select(any_version.c.id).where(any_version.c.model_id == m.c.id).exists())
    where = and_(true(), *conditions)
    total = conn.execute(select(func.count()).select_from(m).where(where)).scalar_one()
    latest = (
        select(
            v.c.model_id,
            func.max(v.c.version).label("latest"),
            func.count().label("count"),
        )
        .group_by(v.c.model_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            m.c.id.label("model_id"),
            m.c.name,
            m.c.created_at,
            m.c.updated_at,
            latest.c.latest,
            latest.c.count,
            v.c.id.label("version_id"),
            v.c.flavors,
            v.c.description,
            v.c.created_by,
        )
        .join(latest, latest.c.model_id == m.c.id)
        .join(v, and_(v.c.model_id == m.c.id, v.c.version == latest.c.latest))
        .where(where)
        .order_by(func.lower(m.c.name), m.c.name)
        .limit(limit)
        .offset(offset)
    ).all()
    model_ids = [row.model_id for row in rows]
    aliases = aliases_by_model(conn, model_ids)
    tags = tags_by_version(conn, [row.version_id for row in rows])
    items = [
        ModelSummary(
            name=row.name,
            latest_version=row.latest,
            version_count=row.count,
            flavor=primary_flavor(row.flavors),
            description=row.description,
            tags=tags.get(row.version_id, {}),
            aliases=aliases.get(row.model_id, {}),
            created_at=db.as_utc(row.created_at),
            updated_at=db.as_utc(row.updated_at),
            created_by=row.created_by,
        )
        for row in rows
    ]
    return Page(items=items, total=total, offset=offset, limit=limit)


def model_id(conn: Connection, name: str, home: Path) -> int:
    """The row id of model `name`; NotFound with what the user may have meant."""
    found = conn.execute(select(db.models.c.id).where(db.models.c.name == name)).scalar()
    if found is None:
        raise NotFound(unknown_model_message(home, conn, name))
    return int(found)


def stats(conn: Connection) -> dict[str, int]:
    v = db.model_versions
    return {
        "models": conn.execute(select(func.count(func.distinct(v.c.model_id)))).scalar_one(),
        "versions": conn.execute(select(func.count()).select_from(v)).scalar_one(),
        "schema_version": db.SCHEMA_VERSION,
    }


def is_referenced(engine: Any, relative: str) -> bool:
    """Whether a version row points at the artifact folder `relative`."""
    try:
        with engine.connect() as conn, conn.begin():
            return (
                conn.execute(
                    select(db.model_versions.c.id).where(
                        db.model_versions.c.artifact_dir == relative
                    )
                ).first()
                is not None
            )
    except Exception:
        return True  # cannot tell: leave the folder to collect_garbage


def model_row(conn: Connection, name: str, now: Any) -> int:
    """The row id of model `name`, made now if there is none. A row of another letter case
    with no version left is taken over (its numbering goes on); one with versions refuses
    the name: on macOS and Windows the two would share a folder."""
    existing = conn.execute(select(db.models.c.id).where(db.models.c.name == name)).scalar()
    if existing is not None:
        return int(existing)
    other = conn.execute(
        select(db.models.c.id, db.models.c.name).where(func.lower(db.models.c.name) == name.lower())
    ).first()
    if (
        other is not None
        and not conn.execute(
            select(db.model_versions.c.id).where(db.model_versions.c.model_id == other.id)
        ).first()
    ):
        # Only its numbering is left of it: the name takes the new case, numbers go on.
        conn.execute(update(db.models).where(db.models.c.id == other.id).values(name=name))
        return int(other.id)
    other_case = None if other is None else other.name
    if other_case is not None:
        raise Conflict(
            f"A model named {other_case!r} exists; names differ by more than letter case "
            f"(on macOS and Windows {other_case!r} and {name!r} would share a folder). "
            f"Save as {other_case!r} or choose another name."
        )
    try:
        with conn.begin_nested():
            return int(
                conn.execute(
                    insert(db.models).values(
                        name=name, last_version=0, created_at=now, updated_at=now
                    )
                ).inserted_primary_key[0]
            )
    except IntegrityError:  # created by another writer between our select and insert
        return int(
            conn.execute(select(db.models.c.id).where(db.models.c.name == name)).scalar_one()
        )
