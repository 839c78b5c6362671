"""The native model repository: MLflow model folders plus metadata in SQLAlchemy tables."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ..config import Settings
from ..deploy import tables as deploy_tables
from ..errors import Conflict, InvalidInput, NotFound, remedy
from ..lifecycle import DEPLOYED_STATUSES
from ..quiet import in_notebook
from . import database as db
from . import mlmodels, queries
from .artifacts import ensure_same_owner, open_store
from .flavors import save_python_model
from .names import validate_alias, validate_metrics, validate_model_name, validate_tags
from .records import ModelDetails, ModelSummary, ModelVersion, Page
from .refs import ModelRef

MAX_PAGE_SIZE = 1000


class ModelRepository:
    """Save, import, find, load and delete model versions.

    Safe to use from several processes at once: version numbers are allocated inside a
    write transaction, and a version becomes visible only once its folder is complete.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.artifacts = open_store(self.settings.artifact_root, self.settings.home)
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
        by: str | None = None,
    ) -> ModelVersion:
        """Save a Python model object as the next version of `name`.

        The signature is inferred from `input_example` when not given; `flavor_options` go to
        `mlflow.<flavor>.save_model` unchanged. `by`: who saves it (a Jupyter user's name),
        else this process's user (`config.current_user`).
        """
        name = validate_model_name(name)
        clean_tags = validate_tags(dict(tags) if tags is not None else None)
        clean_metrics = validate_metrics(dict(metrics) if metrics is not None else None)
        # Called from a notebook cell: MLflow's logs and warnings kept off its stderr.
        with in_notebook(), self.artifacts.staging() as folder:
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
                by=by,
            )

    def import_model(
        self,
        source: str | os.PathLike[str],
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        allowed_source: Callable[[str], str] | None = None,
        by: str | None = None,
    ) -> ModelVersion:
        """Copy an MLflow model (a folder, `runs:/`, `models:/`, any artifact URI, or another
        repository version) in as the next version of `name`. `allowed_source`: checks the
        source (and says what it means) for a server importing on someone's behalf; `by`: who
        imports it, as in `save`."""
        name = validate_model_name(name)
        clean_tags = validate_tags(dict(tags) if tags is not None else None)
        clean_metrics = validate_metrics(dict(metrics) if metrics is not None else None)
        if allowed_source is not None:
            source = allowed_source(os.fspath(source))
        ref = ModelRef.parse(source)
        with self.artifacts.staging() as folder:
            model_dir = folder / "model"
            if ref.in_repository:
                shutil.copytree(self.resolve(ref).local_path(), model_dir)
            else:
                mlmodels.fetch(self.settings, str(ref.uri), model_dir)
            return self._add_version(
                name,
                model_dir,
                description=description,
                tags=clean_tags,
                metrics=clean_metrics,
                source=str(ref),
                by=by,
            )

    def set_alias(self, ref: str | ModelRef, alias: str) -> ModelVersion:
        """Point `alias` at the version `ref` resolves to (moving it if it existed)."""
        alias = validate_alias(alias)
        target = self.resolve(ref)
        with db.write_transaction(self._engine) as conn:
            model_id = self.model_id(conn, target.name)
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
            model_id = self.model_id(conn, name)
            removed = conn.execute(
                delete(db.model_aliases).where(
                    db.model_aliases.c.model_id == model_id, db.model_aliases.c.alias == alias
                )
            ).rowcount
            if not removed:
                raise NotFound(
                    f"Model {name!r} has no alias {alias!r}{queries.aliases_hint(conn, model_id)}."
                )

    def delete_version(self, ref: str | ModelRef) -> ModelVersion:
        """Delete one version and the aliases on it. The model keeps its numbering: the next
        save after deleting version 3 is version 4, even if 3 was the last one."""
        target = self.resolve(ref)
        relative = self.artifacts.relative_of(target.path)
        v = db.model_versions
        with db.write_transaction(self._engine) as conn:
            model_id = self.model_id(conn, target.name)
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
                delete(deploy_tables.mlflow_registrations).where(
                    deploy_tables.mlflow_registrations.c.model_id == model_id,
                    deploy_tables.mlflow_registrations.c.version == target.version,
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
        """Delete a model and every version of it. Its row stays, with the highest version
        number it ever had: a new version under the name gets the next number, never one a
        notebook may still have pinned."""
        name = validate_model_name(name)
        now = db.utcnow()
        with db.write_transaction(self._engine) as conn:
            model = conn.execute(select(db.models).where(db.models.c.name == name)).first()
            if model is None:
                raise NotFound(queries.unknown_model_message(self.settings.home, conn, name))
            _refuse_if_deployed(conn, model.id, None, name)
            versions = queries.versions(self.artifacts, conn, model, None)
            if not versions:
                raise NotFound(f"Model {name!r} has no versions: they were all deleted.")
            version_ids = select(db.model_versions.c.id).where(
                db.model_versions.c.model_id == model.id
            )
            conn.execute(
                delete(db.version_tags).where(db.version_tags.c.version_id.in_(version_ids))
            )
            conn.execute(delete(db.model_versions).where(db.model_versions.c.model_id == model.id))
            conn.execute(delete(db.model_aliases).where(db.model_aliases.c.model_id == model.id))
            conn.execute(
                delete(deploy_tables.deployments).where(
                    deploy_tables.deployments.c.model_id == model.id
                )
            )
            conn.execute(
                delete(deploy_tables.mlflow_registrations).where(
                    deploy_tables.mlflow_registrations.c.model_id == model.id
                )
            )
            conn.execute(update(db.models).where(db.models.c.id == model.id).values(updated_at=now))
        for version in versions:
            self.artifacts.remove(self.artifacts.relative_of(version.path))
        self.artifacts.remove_model(model.name)
        return queries.details(model, versions)

    def collect_garbage(self, *, min_age_seconds: float = 3600) -> list[Path | str]:
        """Remove artifact folders (a bucket's objects) no version points at, left by
        processes that died, and staging folders untouched for `min_age_seconds`."""
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
        with self._engine.connect() as conn, conn.begin():
            return queries.model_page(conn, name_contains, tag, limit, offset)

    def get_model(self, name: str) -> ModelDetails:
        name = validate_model_name(name)
        with self._engine.connect() as conn, conn.begin():
            model = conn.execute(select(db.models).where(db.models.c.name == name)).first()
            if model is None:
                raise NotFound(queries.unknown_model_message(self.settings.home, conn, name))
            versions = queries.versions(self.artifacts, conn, model, None)
        if not versions:
            raise NotFound(f"Model {name!r} has no versions: they were all deleted.")
        return queries.details(model, versions)

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
                raise NotFound(queries.unknown_model_message(self.settings.home, conn, name))
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
                        f"{queries.aliases_hint(conn, model.id)}."
                    )
            if version is None:
                raise NotFound(f"Model {name!r} has no versions: they were all deleted.")
            found = queries.versions(self.artifacts, conn, model, version)
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
            return self.resolve(parsed).local_path()
        uri = str(parsed.uri)
        if Path(uri).is_absolute() and Path(uri).exists():
            mlmodels.check_mlflow_model(Path(uri), uri)
            return Path(uri)
        target = Path(tempfile.mkdtemp(prefix="sparkserve-")) / "model"
        mlmodels.fetch(self.settings, uri, target)
        return target

    def fetch_model(self, uri: str, target: Path) -> Path:
        """Copy the MLflow model at `uri` (any MLflow URI or folder) to `target` (new)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        mlmodels.fetch(self.settings, uri, target)
        return target

    def load_pyfunc(self, ref: str | ModelRef) -> Any:
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(self.model_path(ref)))

    def stats(self) -> dict[str, int]:
        with self._engine.connect() as conn, conn.begin():
            return queries.stats(conn)

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
        by: str | None,
    ) -> ModelVersion:
        info = mlmodels.read_mlmodel(model_dir)
        size = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
        now = db.utcnow()
        promoted: str | None = None
        try:
            with db.write_transaction(self._engine) as conn:
                model_id = queries.model_row(conn, name, now)
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
                        created_by=db.created_by(by),
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
            if promoted is not None and not queries.is_referenced(self._engine, promoted):
                self.artifacts.remove(promoted)
            raise
        return self.resolve(ModelRef(name=name, version=version))

    def model_id(self, conn: Connection, name: str) -> int:
        """The row id of model `name` (for modules that keep records about its versions)."""
        return queries.model_id(conn, name, self.settings.home)

    @property
    def engine(self) -> Any:
        return self._engine


def _refuse_if_deployed(conn: Connection, model_id: int, version: int | None, what: str) -> None:
    """Never pull a model out from under a live endpoint."""
    d = deploy_tables.deployments
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
