"""The native model repository: MLflow model folders plus metadata in SQLAlchemy tables."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, true, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ..config import Settings, safe_uri
from ..errors import Conflict, InvalidInput, NotAnMLflowModel, NotFound, remedy
from ..lifecycle import DEPLOYED_STATUSES
from . import database as db
from .artifacts import ArtifactStore, ensure_same_owner
from .flavors import save_python_model
from .mlflow_uris import mlflow_store
from .names import validate_alias, validate_metrics, validate_model_name, validate_tags
from .records import PYFUNC, ModelDetails, ModelSummary, ModelVersion, Page
from .refs import ModelRef

MAX_PAGE_SIZE = 1000
MLMODEL = "MLmodel"


class ModelRepository:
    """Save, import, find, load and delete model versions.

    Safe to use from several processes at once: version numbers are allocated inside a
    write transaction, and a version becomes visible only once its folder is complete.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.artifacts = ArtifactStore(self.settings.artifact_root)
        self._engine = db.create_repository_engine(self.settings.database_url)
        self.schema_version_found = db.ensure_schema(self._engine)
        self.repository_id = db.repository_id(self._engine)
        self.artifacts.claim(self.repository_id)
        # Saves that died long ago left staging folders; nobody else will remove them.
        self.artifacts.sweep_staging()

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> ModelRepository:
        return cls(Settings.from_env(home=home))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> ModelRepository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- writing

    def save(
        self,
        model: Any,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        input_example: Any = None,
        signature: Any = None,
        flavor: str | None = None,
        pip_requirements: list[str] | None = None,
        extra_pip_requirements: list[str] | None = None,
        flavor_options: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Save a Python model object as the next version of `name`.

        The signature is inferred from `input_example` when not given; `flavor_options` go to
        `mlflow.<flavor>.save_model` unchanged.
        """
        name = validate_model_name(name)
        clean_tags = validate_tags(dict(tags) if tags is not None else None)
        clean_metrics = validate_metrics(dict(metrics) if metrics is not None else None)
        with self.artifacts.staging() as folder:
            model_dir = folder / "model"
            used_flavor = save_python_model(
                model,
                model_dir,
                flavor=flavor,
                input_example=input_example,
                signature=signature,
                pip_requirements=pip_requirements,
                extra_pip_requirements=extra_pip_requirements,
                flavor_options=flavor_options,
            )
            kind = type(model)
            return self._add_version(
                name,
                model_dir,
                description=description,
                tags=clean_tags,
                metrics=clean_metrics,
                source=f"python:{kind.__module__}.{kind.__qualname__} ({used_flavor})",
            )

    def import_model(
        self,
        source: str | os.PathLike[str],
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy an MLflow model (a folder, `runs:/`, `models:/`, any artifact URI, or another
        repository version) in as the next version of `name`."""
        name = validate_model_name(name)
        clean_tags = validate_tags(dict(tags) if tags is not None else None)
        clean_metrics = validate_metrics(dict(metrics) if metrics is not None else None)
        ref = ModelRef.parse(source)
        with self.artifacts.staging() as folder:
            model_dir = folder / "model"
            if ref.in_repository:
                shutil.copytree(self.resolve(ref).path, model_dir)
            else:
                self._fetch(str(ref.uri), model_dir)
            return self._add_version(
                name,
                model_dir,
                description=description,
                tags=clean_tags,
                metrics=clean_metrics,
                source=str(ref),
            )

    def set_alias(self, ref: str | ModelRef, alias: str) -> ModelVersion:
        """Point `alias` at the version `ref` resolves to (moving it if it existed)."""
        alias = validate_alias(alias)
        target = self.resolve(ref)
        with db.write_transaction(self._engine) as conn:
            model_id = self._model_id(conn, target.name)
            version_exists = conn.execute(
                select(db.model_versions.c.id).where(
                    db.model_versions.c.model_id == model_id,
                    db.model_versions.c.version == target.version,
                )
            ).first()
            if version_exists is None:
                raise NotFound(f"Version {target.ref} was deleted meanwhile; nothing changed.")
            conn.execute(
                delete(db.model_aliases).where(
                    db.model_aliases.c.model_id == model_id, db.model_aliases.c.alias == alias
                )
            )
            conn.execute(
                insert(db.model_aliases).values(
                    model_id=model_id, alias=alias, version=target.version
                )
            )
            conn.execute(
                update(db.models).where(db.models.c.id == model_id).values(updated_at=db.utcnow())
            )
        return self.resolve(ModelRef(name=target.name, version=target.version))

    def remove_alias(self, name: str, alias: str) -> None:
        name = validate_model_name(name)
        with db.write_transaction(self._engine) as conn:
            model_id = self._model_id(conn, name)
            removed = conn.execute(
                delete(db.model_aliases).where(
                    db.model_aliases.c.model_id == model_id, db.model_aliases.c.alias == alias
                )
            ).rowcount
            if not removed:
                raise NotFound(
                    f"Model {name!r} has no alias {alias!r}{self._aliases_hint(conn, model_id)}."
                )

    def delete_version(self, ref: str | ModelRef) -> ModelVersion:
        """Delete one version and the aliases on it. The model keeps its numbering: the next
        save after deleting version 3 is version 4, even if 3 was the last one."""
        target = self.resolve(ref)
        relative = target.path.relative_to(self.artifacts.root).as_posix()
        v = db.model_versions
        with db.write_transaction(self._engine) as conn:
            model_id = self._model_id(conn, target.name)
            _refuse_if_deployed(conn, model_id, target.version, target.ref)
            row = conn.execute(
                select(v.c.id).where(
                    v.c.model_id == model_id,
                    v.c.version == target.version,
                    v.c.artifact_dir == relative,
                )
            ).scalar()
            if row is None:
                raise NotFound(f"Version {target.ref} was deleted meanwhile; nothing changed.")
            conn.execute(
                delete(db.model_aliases).where(
                    db.model_aliases.c.model_id == model_id,
                    db.model_aliases.c.version == target.version,
                )
            )
            conn.execute(delete(db.version_tags).where(db.version_tags.c.version_id == row))
            conn.execute(
                delete(db.mlflow_registrations).where(
                    db.mlflow_registrations.c.model_id == model_id,
                    db.mlflow_registrations.c.version == target.version,
                )
            )
            conn.execute(delete(v).where(v.c.id == row))
            conn.execute(
                update(db.models).where(db.models.c.id == model_id).values(updated_at=db.utcnow())
            )
        # The row is gone first: a crash here leaves only an unreferenced folder.
        self.artifacts.remove(relative)
        return target

    def delete_model(self, name: str) -> ModelDetails:
        """Delete a model and every version of it; its name is free again (numbering restarts)."""
        name = validate_model_name(name)
        with db.write_transaction(self._engine) as conn:
            model = conn.execute(select(db.models).where(db.models.c.name == name)).first()
            if model is None:
                raise NotFound(self._unknown_model_message(conn, name))
            _refuse_if_deployed(conn, model.id, None, name)
            versions = self._versions(conn, model, None)
            version_ids = select(db.model_versions.c.id).where(
                db.model_versions.c.model_id == model.id
            )
            conn.execute(
                delete(db.version_tags).where(db.version_tags.c.version_id.in_(version_ids))
            )
            conn.execute(delete(db.model_versions).where(db.model_versions.c.model_id == model.id))
            conn.execute(delete(db.model_aliases).where(db.model_aliases.c.model_id == model.id))
            conn.execute(delete(db.deployments).where(db.deployments.c.model_id == model.id))
            conn.execute(
                delete(db.mlflow_registrations).where(
                    db.mlflow_registrations.c.model_id == model.id
                )
            )
            conn.execute(delete(db.models).where(db.models.c.id == model.id))
        for version in versions:
            self.artifacts.remove(version.path.relative_to(self.artifacts.root).as_posix())
        # Safe against a concurrent save of the same name: promote() makes the folder again.
        with suppress(OSError):
            (self.artifacts.root / model.name).rmdir()
        return self._details(model, versions)

    def collect_garbage(self, *, min_age_seconds: float = 3600) -> list[Path]:
        """Remove artifact folders no version points at (left by processes that died), and
        staging folders untouched for `min_age_seconds`."""
        ensure_same_owner(self.artifacts, self.repository_id)
        versions, staging = self.artifacts.candidates(min_age_seconds)
        # Read the references under the write lock: a save that has renamed its folder into
        # place but not committed yet holds that lock, so its row is visible once we get it.
        with db.write_transaction(self._engine) as conn:
            referenced = (
                set(
                    conn.execute(
                        select(db.model_versions.c.artifact_dir).where(
                            db.model_versions.c.artifact_dir.in_(versions)
                        )
                    ).scalars()
                )
                if versions
                else set()
            )
        removed = self.artifacts.remove_unreferenced(versions, referenced.__contains__)
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)
        return removed + staging

    # ----------------------------------------------------------------------------- reading

    def list_models(
        self,
        *,
        name_contains: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[ModelSummary]:
        """Models sorted by name (case-insensitively). `name_contains` matches
        case-insensitively; `tag` is `KEY` or `KEY=VALUE` and matches a model when any of its
        versions carries it."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}.")
        if offset < 0:
            raise InvalidInput(f"offset must be 0 or more, got {offset}.")
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
        with self._engine.connect() as conn, conn.begin():
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
                )
                .join(latest, latest.c.model_id == m.c.id)
                .join(v, and_(v.c.model_id == m.c.id, v.c.version == latest.c.latest))
                .where(where)
                .order_by(func.lower(m.c.name), m.c.name)
                .limit(limit)
                .offset(offset)
            ).all()
            model_ids = [row.model_id for row in rows]
            aliases = self._aliases_by_model(conn, model_ids)
            tags = self._tags_by_version(conn, [row.version_id for row in rows])
        items = [
            ModelSummary(
                name=row.name,
                latest_version=row.latest,
                version_count=row.count,
                flavor=_primary_flavor(row.flavors),
                description=row.description,
                tags=tags.get(row.version_id, {}),
                aliases=aliases.get(row.model_id, {}),
                created_at=db.as_utc(row.created_at),
                updated_at=db.as_utc(row.updated_at),
            )
            for row in rows
        ]
        return Page(items=items, total=total, offset=offset, limit=limit)

    def get_model(self, name: str) -> ModelDetails:
        name = validate_model_name(name)
        with self._engine.connect() as conn, conn.begin():
            model = conn.execute(select(db.models).where(db.models.c.name == name)).first()
            if model is None:
                raise NotFound(self._unknown_model_message(conn, name))
            versions = self._versions(conn, model, None)
        if not versions:
            raise NotFound(f"Model {name!r} has no versions: they were all deleted.")
        return self._details(model, versions)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The repository version a `NAME`, `NAME:VERSION` or `NAME@ALIAS` reference means."""
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        if not parsed.in_repository:
            raise InvalidInput(
                f"{parsed.uri!r} is not in the repository: import it first.",
                remedy=remedy("import_model", source=str(parsed.uri)),
            )
        name = str(parsed.name)
        with self._engine.connect() as conn, conn.begin():
            model = conn.execute(select(db.models).where(db.models.c.name == name)).first()
            if model is None:
                raise NotFound(self._unknown_model_message(conn, name))
            version = parsed.version
            if version is None and parsed.alias in (None, "latest"):
                version = conn.execute(
                    select(func.max(db.model_versions.c.version)).where(
                        db.model_versions.c.model_id == model.id
                    )
                ).scalar_one()
            if parsed.alias is not None and parsed.alias != "latest":
                version = conn.execute(
                    select(db.model_aliases.c.version).where(
                        db.model_aliases.c.model_id == model.id,
                        db.model_aliases.c.alias == parsed.alias,
                    )
                ).scalar_one_or_none()
                if version is None:
                    raise NotFound(
                        f"Model {name!r} has no alias {parsed.alias!r}"
                        f"{self._aliases_hint(conn, model.id)}."
                    )
            if version is None:
                raise NotFound(f"Model {name!r} has no versions: they were all deleted.")
            found = self._versions(conn, model, version)
            if not found:
                numbers = conn.execute(
                    select(db.model_versions.c.version)
                    .where(db.model_versions.c.model_id == model.id)
                    .order_by(db.model_versions.c.version)
                ).scalars()
                raise NotFound(
                    f"Model {name!r} has no version {version} "
                    f"(versions: {', '.join(str(n) for n in numbers)})."
                )
        return found[0]

    def model_path(self, ref: str | ModelRef) -> Path:
        """A local MLflow model folder for any reference (fetched to a temporary folder when
        it lives outside the repository)."""
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        if parsed.in_repository:
            return self.resolve(parsed).path
        uri = str(parsed.uri)
        if Path(uri).is_absolute() and Path(uri).exists():
            _check_mlflow_model(Path(uri), uri)
            return Path(uri)
        target = Path(tempfile.mkdtemp(prefix="sparkserve-")) / "model"
        self._fetch(uri, target)
        return target

    def fetch_model(self, uri: str, target: Path) -> Path:
        """Copy the MLflow model at `uri` (any MLflow URI or folder) to `target` (new)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        self._fetch(uri, target)
        return target

    def load_pyfunc(self, ref: str | ModelRef) -> Any:
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(self.model_path(ref)))

    def stats(self) -> dict[str, int]:
        with self._engine.connect() as conn, conn.begin():
            return {
                "models": conn.execute(
                    select(func.count(func.distinct(db.model_versions.c.model_id)))
                ).scalar_one(),
                "versions": conn.execute(
                    select(func.count()).select_from(db.model_versions)
                ).scalar_one(),
                "schema_version": db.SCHEMA_VERSION,
            }

    # ----------------------------------------------------------------------------- internals

    def _add_version(
        self,
        name: str,
        model_dir: Path,
        *,
        description: str,
        tags: dict[str, str],
        metrics: dict[str, float],
        source: str,
    ) -> ModelVersion:
        info = _read_mlmodel(model_dir)
        size = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
        now = db.utcnow()
        promoted: str | None = None
        try:
            with db.write_transaction(self._engine) as conn:
                model_id = self._get_or_create_model(conn, name, now)
                conn.execute(
                    update(db.models)
                    .where(db.models.c.id == model_id)
                    .values(last_version=db.models.c.last_version + 1, updated_at=now)
                )
                version = conn.execute(
                    select(db.models.c.last_version).where(db.models.c.id == model_id)
                ).scalar_one()
                relative = self.artifacts.new_location(name, version)
                version_id = conn.execute(
                    insert(db.model_versions).values(
                        model_id=model_id,
                        version=version,
                        description=description or "",
                        flavors=info["flavors"],
                        signature=info["signature"],
                        has_input_example=info["has_input_example"],
                        metrics=metrics,
                        source=source,
                        artifact_dir=relative,
                        size_bytes=size,
                        mlflow_version=info["mlflow_version"],
                        created_at=now,
                    )
                ).inserted_primary_key[0]
                if tags:
                    conn.execute(
                        insert(db.version_tags),
                        [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()],
                    )
                # Last step before the commit: the folder appears whole, then the row.
                self.artifacts.promote(model_dir, relative)
                promoted = relative
        except BaseException:
            # Remove the folder only if its row did not make it: an interrupt (Ctrl-C, a
            # kernel interrupt) can arrive after the COMMIT while the connection closes.
            if promoted is not None and not self._is_referenced(promoted):
                self.artifacts.remove(promoted)
            raise
        return self.resolve(ModelRef(name=name, version=version))

    def _is_referenced(self, relative: str) -> bool:
        try:
            with self._engine.connect() as conn, conn.begin():
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

    def _get_or_create_model(self, conn: Connection, name: str, now: Any) -> int:
        existing = conn.execute(select(db.models.c.id).where(db.models.c.name == name)).scalar()
        if existing is not None:
            return int(existing)
        other_case = conn.execute(
            select(db.models.c.name).where(func.lower(db.models.c.name) == name.lower())
        ).scalar()
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

    def model_id(self, conn: Connection, name: str) -> int:
        """The row id of model `name` (for modules that keep records about its versions)."""
        return self._model_id(conn, name)

    @property
    def engine(self) -> Any:
        return self._engine

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(select(db.models.c.id).where(db.models.c.name == name)).scalar()
        if model_id is None:
            raise NotFound(self._unknown_model_message(conn, name))
        return int(model_id)

    def _versions(
        self, conn: Connection, model: Row[Any], version: int | None
    ) -> list[ModelVersion]:
        v = db.model_versions
        query = select(v).where(v.c.model_id == model.id).order_by(v.c.version.desc())
        if version is not None:
            query = query.where(v.c.version == version)
        rows = conn.execute(query).all()
        if not rows:
            return []
        tags = self._tags_by_version(conn, [row.id for row in rows])
        aliases_by_version: dict[int, list[str]] = {}
        for alias, number in self._aliases_by_model(conn, [model.id]).get(model.id, {}).items():
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
                path=self.artifacts.path(row.artifact_dir),
                size_bytes=row.size_bytes,
                mlflow_version=row.mlflow_version,
                created_at=db.as_utc(row.created_at),
            )
            for row in rows
        ]

    @staticmethod
    def _details(model: Row[Any], versions: list[ModelVersion]) -> ModelDetails:
        return ModelDetails(
            name=model.name,
            aliases={alias: v.version for v in versions for alias in v.aliases},
            versions=tuple(versions),
            created_at=db.as_utc(model.created_at),
            updated_at=db.as_utc(model.updated_at),
        )

    @staticmethod
    def _tags_by_version(conn: Connection, version_ids: list[int]) -> dict[int, dict[str, str]]:
        if not version_ids:
            return {}
        rows = conn.execute(
            select(db.version_tags).where(db.version_tags.c.version_id.in_(version_ids))
        ).all()
        tags: dict[int, dict[str, str]] = {}
        for row in rows:
            tags.setdefault(row.version_id, {})[row.key] = row.value
        return tags

    @staticmethod
    def _aliases_by_model(conn: Connection, model_ids: list[int]) -> dict[int, dict[str, int]]:
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

    def _aliases_hint(self, conn: Connection, model_id: int) -> str:
        aliases = self._aliases_by_model(conn, [model_id]).get(model_id, {})
        if not aliases:
            return " (it has no aliases)"
        listed = ", ".join(f"{alias} -> {version}" for alias, version in aliases.items())
        return f" (aliases: {listed})"

    def _unknown_model_message(self, conn: Connection, name: str) -> str:
        names = conn.execute(select(db.models.c.name)).scalars().all()
        message = f"No model named {name!r} in the repository at {self.settings.home}."
        folded = {n.lower(): n for n in names}
        close = [folded[n] for n in difflib.get_close_matches(name.lower(), list(folded), n=3)]
        if Path(name).is_dir():
            message += f" To use the folder {name!r} in the current directory, write ./{name}."
        elif close:
            message += f" Did you mean {' or '.join(repr(c) for c in close)}?"
        elif not names:
            message += " The repository is empty: save a model first."
        return message

    def _fetch(self, uri: str, target: Path) -> None:
        """Put the MLflow model at `uri` (a local folder or any MLflow artifact URI) at
        `target`."""
        local = Path(uri)
        if local.is_absolute():
            _check_mlflow_model(local, uri)
            shutil.copytree(local, target)
            return
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        download_dir = target.parent / "download"
        tracking_uri = self.settings.mlflow_tracking_uri
        registry_uri = self.settings.mlflow_registry_uri or tracking_uri
        try:
            with mlflow_store(tracking_uri, registry_uri):
                fetched = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=str(download_dir),
                    tracking_uri=tracking_uri,
                    registry_uri=registry_uri,
                )
        except MlflowException as error:
            raise NotFound(
                f"Could not fetch {uri} from MLflow ({safe_uri(tracking_uri)}): {error.message}"
            ) from None
        _check_mlflow_model(Path(fetched), uri)
        os.rename(fetched, target)


def _refuse_if_deployed(conn: Connection, model_id: int, version: int | None, what: str) -> None:
    """Never pull a model out from under a live endpoint."""
    d = db.deployments
    query = select(d.c.id).where(d.c.model_id == model_id, d.c.status.in_(DEPLOYED_STATUSES))
    if version is not None:
        query = query.where(d.c.version == version)
    live = conn.execute(query).scalars().all()
    if live:
        raise Conflict(
            f"{what} is deployed ({', '.join(live)}): undeploy first (a deployment whose "
            "endpoint died is marked failed the next time it is looked at).",
            remedy=remedy("undeploy", deployment=live[0]),
        )


def _check_mlflow_model(path: Path, shown_as: str) -> None:
    if not path.exists():
        raise NotFound(f"No such file or folder: {shown_as}.")
    if not (path / MLMODEL).is_file():
        raise NotAnMLflowModel(
            f"{shown_as} is not an MLflow model folder: it has no {MLMODEL} file. Save it with "
            "mlflow.<flavor>.save_model or log it with mlflow.<flavor>.log_model first."
        )


def _read_mlmodel(model_dir: Path) -> dict[str, Any]:
    from mlflow.models import Model

    mlmodel = Model.load(str(model_dir / MLMODEL))
    signature = None
    if mlmodel.signature is not None:
        signature = {
            key: json.loads(value) if isinstance(value, str) else value
            for key, value in mlmodel.signature.to_dict().items()
        }
    flavors = sorted(mlmodel.flavors, key=lambda flavor: flavor == PYFUNC)
    return {
        "flavors": flavors,
        "signature": signature,
        "has_input_example": mlmodel.saved_input_example_info is not None,
        "mlflow_version": mlmodel.mlflow_version or "",
    }


def _primary_flavor(flavors: list[str]) -> str:
    return next((flavor for flavor in flavors if flavor != PYFUNC), PYFUNC)
