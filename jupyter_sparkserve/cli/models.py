"""`sparkserve status`, `demo` and `models ...`: the repository."""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from ..config import safe_uri
from ..errors import InvalidInput
from ..repository import ModelDetails, ModelRef, ModelVersion
from ..repository.names import parse_key_values
from .output import confirm_or_yes, counted, emit, fields, json_command, repository, table
from .root import main


@main.command()
@json_command
def status() -> None:
    """Where the repository is, what it holds, and which deployment targets and batch
    engines work here."""
    from ..deploy.targets import targets_status
    from ..scoring.engines import engines_status

    repo = repository()
    settings = repo.settings
    targets = targets_status()
    engines = engines_status()
    payload = {
        "version": __version__,
        "home": str(settings.home),
        "database_url": safe_uri(settings.database_url),
        "artifact_root": str(settings.artifact_root),
        "mlflow_tracking_uri": safe_uri(settings.mlflow_tracking_uri),
        "repository": repo.stats(),
        "targets": [target.to_dict() for target in targets],
        "engines": [engine.to_dict() for engine in engines],
    }

    def show() -> None:
        for key in ("version", "home", "database_url", "artifact_root", "mlflow_tracking_uri"):
            click.echo(f"{key.replace('_', ' ')}: {payload[key]}")
        stats = payload["repository"]
        click.echo(f"models: {stats['models']} ({counted(stats['versions'], 'version')})")
        click.echo("targets:")
        for target in targets:
            mark = "usable" if target.usable else "not usable"
            click.echo(f"  {target.target} ({mark}): {target.detail}")
        click.echo("batch engines:")
        for engine in engines:
            mark = "usable" if engine.usable else "not usable"
            click.echo(f"  {engine.engine} ({mark}): {engine.detail}")

    emit(payload, show)


@main.command()
@click.option("--keep-running", is_flag=True, help="Leave the demo's endpoint up at the end.")
@json_command
def demo(keep_running: bool) -> None:
    """The tour on this machine: train, save, alias, register, deploy, score, snippets."""
    from ..demo import DEMO_ALIAS, DEMO_MODEL, run_demo
    from .output import as_json

    quiet = as_json()

    def report(message: str) -> None:
        if not quiet:
            click.echo(f"{click.style('✓', fg='green')} {message}")

    def starting(message: str) -> None:
        if not quiet:
            click.secho(f"… {message}", dim=True)

    result = run_demo(repository(), report, keep_running=keep_running, starting=starting)

    def show() -> None:
        click.echo()
        table(
            ["#", "PREDICTED", "ACTUAL"],
            [[i + 1, row["predicted"], row["actual"]] for i, row in enumerate(result.scored)],
        )
        if not keep_running:
            click.echo("\nThe snippets below ran against the demo's endpoint, now stopped; with")
            click.echo("`sparkserve demo --keep-running` you can paste them while it is up.")
        for snippet in result.snippets:
            click.echo()
            click.secho(f"# {snippet['title']}", bold=True)
            click.echo(snippet["code"])
        click.echo()
        steps = result.next
        command = f"{steps.scripts}sparkserve"
        click.echo("Next:")
        click.echo(f"  {command} models list")
        click.echo(f"  {command} models show {DEMO_MODEL}@{DEMO_ALIAS}")
        if keep_running:
            click.echo(f"  {command} undeploy {result.deployment['id']}")
        if steps.lab_installed:
            click.echo(f"  {steps.scripts}jupyter lab {steps.notebook or ''}".rstrip())
        else:
            click.echo('  pip install "jupyter_sparkserve[lab]"   # then: jupyter lab')
        if steps.activate:
            click.echo(f"(or `source {steps.activate}` first, then the short names)")

    emit(result.to_dict(), show)


@main.group()
def models() -> None:
    """Save, import, list, show, alias and delete models."""


@models.command("import")
@click.argument("source")
@click.option("--name", "-n", required=True, help="Model name to import into.")
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=VALUE", help="Metric.")
@json_command
def import_(
    source: str, name: str, description: str, tags: tuple[str, ...], metrics: tuple[str, ...]
) -> None:
    """Import an MLflow model (a folder, runs:/..., models:/...) as a new version of NAME."""
    version = repository().import_model(
        source,
        name,
        description=description,
        tags=parse_key_values(tags, "tag"),
        metrics=parse_key_values(metrics, "metric"),
    )
    emit(version.to_dict(), lambda: click.echo(f"Imported {source} as {version.ref}"))


@models.command("list")
@click.option("--filter", "name_contains", help="Only names containing this text.")
@click.option("--tag", metavar="KEY[=VALUE]", help="Only models with a version tagged so.")
@click.option("--limit", default=50, show_default=True, help="Models per page.")
@click.option("--offset", default=0, show_default=True, help="Models to skip.")
@json_command
def list_(name_contains: str | None, tag: str | None, limit: int, offset: int) -> None:
    """List models with their latest version."""
    page = repository().list_models(
        name_contains=name_contains, tag=tag, limit=limit, offset=offset
    )

    def show() -> None:
        if not page.items:
            click.echo("No models." if page.total == 0 else f"No models past offset {offset}.")
            return
        table(
            ["NAME", "LATEST", "VERSIONS", "FLAVOR", "ALIASES", "UPDATED"],
            [
                [
                    model.name,
                    model.latest_version,
                    model.version_count,
                    model.flavor,
                    ", ".join(f"{a}->{v}" for a, v in model.aliases.items()) or "-",
                    model.updated_at.strftime("%Y-%m-%d %H:%M"),
                ]
                for model in page.items
            ],
        )
        if page.next_offset is not None:
            click.echo(
                f"... {page.total - page.next_offset} more: "
                f"sparkserve models list --offset {page.next_offset}"
            )

    emit(page.to_dict(), show)


@models.command()
@click.argument("ref")
@json_command
def show(ref: str) -> None:
    """Show a model (NAME) or one version (NAME:VERSION, NAME@ALIAS)."""
    parsed = ModelRef.parse(ref)
    repo = repository()
    if parsed.in_repository and parsed.version is None and parsed.alias is None:
        details = repo.get_model(str(parsed.name))
        emit(details.to_dict(), lambda: _show_model(details))
        return
    version = repo.resolve(parsed)
    emit(version.to_dict(), lambda: _show_version(version))


@models.command()
@click.argument("ref")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_command
def delete(ref: str, yes: bool) -> None:
    """Delete one version (NAME:VERSION, NAME@ALIAS) or a whole model (NAME)."""
    parsed = ModelRef.parse(ref)
    repo = repository()
    whole_model = parsed.in_repository and parsed.version is None and parsed.alias is None
    if whole_model:
        details = repo.get_model(str(parsed.name))
        what = f"model {details.name} and its {counted(len(details.versions), 'version')}"
    else:
        # Delete the version the user confirmed, even if an alias moves meanwhile.
        resolved = repo.resolve(parsed)
        parsed = ModelRef(name=resolved.name, version=resolved.version)
        what = f"version {resolved.ref}"
    confirm_or_yes(yes, what, f"Delete {what}?")
    if whole_model:
        deleted = repo.delete_model(str(parsed.name))
        payload: dict[str, Any] = {
            "deleted": deleted.name,
            "versions": [v.version for v in deleted.versions],
        }
    else:
        removed = repo.delete_version(parsed)
        payload = {"deleted": removed.ref, "versions": [removed.version]}
    emit(payload, lambda: click.echo(f"Deleted {what}."))


@models.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from model REF instead.")
@json_command
def alias(ref: str, alias: str, remove: bool) -> None:
    """Point ALIAS at the version REF names (REF@ALIAS then resolves to it)."""
    repo = repository()
    if remove:
        parsed = ModelRef.parse(ref)
        if not parsed.in_repository:
            raise InvalidInput("--remove takes a model NAME.")
        repo.remove_alias(str(parsed.name), alias)
        payload: dict[str, Any] = {"name": parsed.name, "alias": alias, "removed": True}
        message = f"Removed alias {parsed.name}@{alias}."
    else:
        version = repo.set_alias(ref, alias)
        payload = {"name": version.name, "alias": alias, "version": version.version}
        message = f"{version.name}@{alias} -> version {version.version}"
    emit(payload, lambda: click.echo(message))


@models.command()
@click.option(
    "--min-age",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=60),
    help="Only remove leftovers untouched for this many seconds (60 at least: a younger "
    "folder may be a save in progress).",
)
@json_command
def gc(min_age: float) -> None:
    """Remove artifact folders left behind by processes that died while saving."""
    removed = repository().collect_garbage(min_age_seconds=min_age)

    def show() -> None:
        click.echo(f"Removed {counted(len(removed), 'leftover folder')}.")
        for path in removed:
            click.echo(f"  {path}")

    emit({"removed": [str(path) for path in removed]}, show)


def _show_version(version: ModelVersion) -> None:
    rows = [
        ("flavor", ", ".join(version.flavors)),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("description", version.description or "-"),
        ("created", version.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("created by", version.created_by or "-"),
        ("source", version.source),
        ("path", str(version.path)),
        ("size", counted(version.size_bytes, "byte")),
        ("tags", ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
        ("metrics", ", ".join(f"{k}={v:g}" for k, v in version.metrics.items()) or "-"),
        ("input example", "yes" if version.has_input_example else "no"),
    ]
    inputs = (version.signature or {}).get("inputs") or []
    described = [
        f"{column.get('name', '?')}: {column.get('type', '?')}"
        if isinstance(column, dict)
        else str(column)
        for column in inputs
    ]
    rows.append(("signature", "; ".join(described) or "-"))
    fields(version.ref, rows)


def _show_model(details: ModelDetails) -> None:
    click.secho(details.name, bold=True)
    aliases = ", ".join(f"{a} -> {v}" for a, v in details.aliases.items()) or "-"
    click.echo(f"  aliases  {aliases}")
    table(
        ["VERSION", "FLAVOR", "CREATED", "BY", "ALIASES", "DESCRIPTION"],
        [
            [
                v.version,
                v.flavor,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                v.created_by or "-",
                ", ".join(v.aliases) or "-",
                v.description[:60],
            ]
            for v in details.versions
        ],
    )
