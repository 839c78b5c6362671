"""`sparkserve`: the command-line face. It parses, calls the core, and prints.

Every command takes `--json` for scripts: the result (or `{"error", "message"}` on failure)
is printed as one JSON document on standard output.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import Settings, safe_uri
from .errors import InvalidInput, SparkserveError
from .repository import ModelDetails, ModelRef, ModelRepository, ModelVersion
from .repository.names import parse_key_values
from .warm.protocol import DEFAULT_IDLE_SECONDS

F = TypeVar("F", bound=Callable[..., Any])


class CliState:
    """Opens the repository the first time a command needs it."""

    def __init__(self, home: str | None) -> None:
        self.home = home
        self._repository: ModelRepository | None = None

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            self._repository = ModelRepository(Settings.from_env(home=self.home))
        return self._repository


def json_command(function: F) -> F:
    """Add `--json` and turn SparkserveError into a clean message (or JSON error) and exit 1."""

    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @click.pass_context
    @functools.wraps(function)
    def wrapper(ctx: click.Context, *args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx.meta["as_json"] = as_json
        try:
            return ctx.invoke(function, *args, **kwargs)
        except SparkserveError as error:
            _fail(as_json, error.code, error.message)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:  # a failure we did not foresee: still no traceback
            _fail(as_json, "INTERNAL_ERROR", f"{type(error).__name__}: {error}")

    return wrapper  # type: ignore[return-value]


def _fail(as_json: bool, code: str, message: str) -> None:
    if as_json:
        click.echo(_dumps({"error": code, "message": message}))
    else:
        click.secho(f"Error: {message}", fg="red", err=True)
    click.get_current_context().exit(1)


def _dumps(payload: Any) -> str:
    return json.dumps(payload, indent=2, default=str)


def _as_json() -> bool:
    return bool(click.get_current_context().meta.get("as_json"))


def _state() -> CliState:
    return click.get_current_context().find_object(CliState)  # type: ignore[return-value]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(header) for header in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(click.style(line.rstrip(), bold=True) if index == 0 else line.rstrip())


def _show_version(version: ModelVersion) -> None:
    click.secho(f"{version.ref}", bold=True)
    fields = [
        ("flavor", ", ".join(version.flavors)),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("description", version.description or "-"),
        ("created", version.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("source", version.source),
        ("path", str(version.path)),
        ("size", f"{version.size_bytes:,} bytes"),
        ("tags", ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
        ("metrics", ", ".join(f"{k}={v:g}" for k, v in version.metrics.items()) or "-"),
        ("input example", "yes" if version.has_input_example else "no"),
    ]
    if version.signature:
        inputs = version.signature.get("inputs") or []
        described = [
            f"{column.get('name', '?')}: {column.get('type', '?')}"
            if isinstance(column, dict)
            else str(column)
            for column in inputs
        ]
        fields.append(("signature", "; ".join(described) or "-"))
    else:
        fields.append(("signature", "-"))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"  {label.ljust(width)}  {value}")


def _show_model(details: ModelDetails) -> None:
    click.secho(details.name, bold=True)
    aliases = ", ".join(f"{a} -> {v}" for a, v in details.aliases.items()) or "-"
    click.echo(f"  aliases  {aliases}")
    _table(
        ["VERSION", "FLAVOR", "CREATED", "ALIASES", "DESCRIPTION"],
        [
            [
                v.version,
                v.flavor,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                ", ".join(v.aliases) or "-",
                v.description[:60],
            ]
            for v in details.versions
        ],
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sparkserve")
@click.option(
    "--home",
    envvar="SPARKSERVE_HOME",
    type=click.Path(file_okay=False),
    help="Repository folder (default: $SPARKSERVE_HOME or ~/.sparkserve).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Model serving for Jupyter: a model repository you score and deploy from."""
    # MLflow's schema hints and store set-up notes are for notebook authors, noise here.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    ctx.obj = CliState(home)


@main.command()
@json_command
def status() -> None:
    """Where the repository is and what it holds."""
    repository = _state().repository
    settings = repository.settings
    payload = {
        "version": __version__,
        "home": str(settings.home),
        "database_url": safe_uri(settings.database_url),
        "artifact_root": str(settings.artifact_root),
        "mlflow_tracking_uri": safe_uri(settings.mlflow_tracking_uri),
        "repository": repository.stats(),
    }
    if _as_json():
        click.echo(_dumps(payload))
        return
    for key in ("version", "home", "database_url", "artifact_root", "mlflow_tracking_uri"):
        click.echo(f"{key.replace('_', ' ')}: {payload[key]}")
    stats = payload["repository"]
    click.echo(f"models: {stats['models']} ({stats['versions']} versions)")


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
    version = _state().repository.import_model(
        source,
        name,
        description=description,
        tags=parse_key_values(tags, "tag"),
        metrics=parse_key_values(metrics, "metric"),
    )
    if _as_json():
        click.echo(_dumps(version.to_dict()))
    else:
        click.echo(f"Imported {source} as {version.ref}")


@models.command("list")
@click.option("--filter", "name_contains", help="Only names containing this text.")
@click.option("--tag", metavar="KEY[=VALUE]", help="Only models with a version tagged so.")
@click.option("--limit", default=50, show_default=True, help="Models per page.")
@click.option("--offset", default=0, show_default=True, help="Models to skip.")
@json_command
def list_(name_contains: str | None, tag: str | None, limit: int, offset: int) -> None:
    """List models with their latest version."""
    page = _state().repository.list_models(
        name_contains=name_contains, tag=tag, limit=limit, offset=offset
    )
    if _as_json():
        click.echo(_dumps(page.to_dict()))
        return
    if not page.items:
        click.echo("No models." if page.total == 0 else f"No models past offset {offset}.")
        return
    _table(
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


@models.command()
@click.argument("ref")
@json_command
def show(ref: str) -> None:
    """Show a model (NAME) or one version (NAME:VERSION, NAME@ALIAS)."""
    parsed = ModelRef.parse(ref)
    repository = _state().repository
    if parsed.in_repository and parsed.version is None and parsed.alias is None:
        details = repository.get_model(str(parsed.name))
        if _as_json():
            click.echo(_dumps(details.to_dict()))
        else:
            _show_model(details)
        return
    version = repository.resolve(parsed)
    if _as_json():
        click.echo(_dumps(version.to_dict()))
    else:
        _show_version(version)


@models.command()
@click.argument("ref")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_command
def delete(ref: str, yes: bool) -> None:
    """Delete one version (NAME:VERSION, NAME@ALIAS) or a whole model (NAME)."""
    parsed = ModelRef.parse(ref)
    repository = _state().repository
    whole_model = parsed.in_repository and parsed.version is None and parsed.alias is None
    if whole_model:
        details = repository.get_model(str(parsed.name))
        what = f"model {details.name} and its {len(details.versions)} version(s)"
    else:
        # Delete the version the user confirmed, even if an alias moves meanwhile.
        resolved = repository.resolve(parsed)
        parsed = ModelRef(name=resolved.name, version=resolved.version)
        what = f"version {resolved.ref}"
    if not yes:
        if _as_json() or not sys.stdin.isatty():
            raise InvalidInput(f"Deleting {what} needs --yes when nobody can be asked.")
        click.confirm(f"Delete {what}?", abort=True)
    if whole_model:
        deleted = repository.delete_model(str(parsed.name))
        payload: dict[str, Any] = {
            "deleted": deleted.name,
            "versions": [v.version for v in deleted.versions],
        }
    else:
        removed = repository.delete_version(parsed)
        payload = {"deleted": removed.ref, "versions": [removed.version]}
    if _as_json():
        click.echo(_dumps(payload))
    else:
        click.echo(f"Deleted {what}.")


@models.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from model REF instead.")
@json_command
def alias(ref: str, alias: str, remove: bool) -> None:
    """Point ALIAS at the version REF names (REF@ALIAS then resolves to it)."""
    repository = _state().repository
    if remove:
        parsed = ModelRef.parse(ref)
        if not parsed.in_repository:
            raise InvalidInput("--remove takes a model NAME.")
        repository.remove_alias(str(parsed.name), alias)
        payload: dict[str, Any] = {"name": parsed.name, "alias": alias, "removed": True}
        message = f"Removed alias {parsed.name}@{alias}."
    else:
        version = repository.set_alias(ref, alias)
        payload = {"name": version.name, "alias": alias, "version": version.version}
        message = f"{version.name}@{alias} -> version {version.version}"
    click.echo(_dumps(payload) if _as_json() else message)


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
    removed = _state().repository.collect_garbage(min_age_seconds=min_age)
    if _as_json():
        click.echo(_dumps({"removed": [str(path) for path in removed]}))
    else:
        click.echo(f"Removed {len(removed)} leftover folder(s).")
        for path in removed:
            click.echo(f"  {path}")


def _register(ref: str, *, again: bool) -> None:
    from .deploy.mlflow import MlflowRegistry

    registry = MlflowRegistry(_state().repository)
    registration = registry.reregister(ref) if again else registry.register(ref)
    if _as_json():
        click.echo(_dumps(registration.to_dict()))
    else:
        verb = "Re-registered" if again else "Registered"
        click.echo(f"{verb} {registration.name}:{registration.version} as {registration.model_uri}")


@main.command()
@click.argument("ref")
@json_command
def register(ref: str) -> None:
    """Register model version REF in MLflow (models:/NAME/N)."""
    _register(ref, again=False)


@main.command()
@click.argument("ref")
@json_command
def reregister(ref: str) -> None:
    """Register model version REF in MLflow again, as a new MLflow version."""
    _register(ref, again=True)


@main.command()
@click.argument("ref_or_id")
@json_command
def snippets(ref_or_id: str) -> None:
    """Ready-to-run code: python and curl for a deployment ID, offline python for a
    registered model version REF."""
    from .deploy.deployments import Deployments
    from .lifecycle import offline_snippets

    repository = _state().repository
    deployments = Deployments(repository)
    if deployments.exists(ref_or_id):
        found = deployments.snippets(ref_or_id)
    else:
        found = offline_snippets(repository, ref_or_id)
    if _as_json():
        click.echo(_dumps([snippet.to_dict() for snippet in found]))
        return
    for snippet in found:
        click.secho(f"# {snippet.title}", bold=True)
        click.echo(snippet.code + "\n")


def _show_deployment(deployment: Any) -> None:
    click.secho(f"{deployment.id}  {deployment.ref}  {deployment.status}", bold=True)
    click.echo(f"  target     {deployment.target}")
    click.echo(f"  url        {deployment.url or '-'}")
    click.echo(f"  model uri  {deployment.model_uri}")
    if deployment.error:
        click.echo(f"  error      {deployment.error}")


@main.command()
@click.argument("ref")
@click.option("--target", default="local", show_default=True, help="Where to serve it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, help="Port (default: a free one).")
@click.option(
    "--token",
    envvar="SPARKSERVE_ENDPOINT_TOKEN",
    help="Require this bearer token (prefer the SPARKSERVE_ENDPOINT_TOKEN variable).",
)
@json_command
def deploy(ref: str, target: str, host: str, port: int | None, token: str | None) -> None:
    """Deploy registered model version REF as a REST endpoint; prints its id and URL."""
    from .deploy.deployments import Deployments

    deployment = Deployments(_state().repository).deploy(
        ref, target, host=host, port=port, token=token
    )
    if _as_json():
        click.echo(_dumps(deployment.to_dict()))
    else:
        click.echo(f"Deployed {deployment.ref} as {deployment.id} at {deployment.url}")
        click.echo(f"  sparkserve snippets {deployment.id}")


@main.command()
@click.argument("deployment_id")
@json_command
def undeploy(deployment_id: str) -> None:
    """Stop deployment DEPLOYMENT_ID."""
    from .deploy.deployments import Deployments

    deployment = Deployments(_state().repository).undeploy(deployment_id)
    if _as_json():
        click.echo(_dumps(deployment.to_dict()))
    else:
        click.echo(f"Undeployed {deployment.ref} ({deployment.id}).")


@main.group("deployments")
def deployments_group() -> None:
    """List and inspect deployments."""


@deployments_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and failed ones.")
@json_command
def deployments_list(show_all: bool) -> None:
    """Deployments, newest first (running ones unless --all)."""
    from .deploy.deployments import Deployments

    found = Deployments(_state().repository).list(active_only=not show_all)
    if _as_json():
        click.echo(_dumps([d.to_dict() for d in found]))
        return
    if not found:
        click.echo("No deployments." if show_all else "No running deployments (--all for all).")
        return
    _table(
        ["ID", "MODEL", "TARGET", "STATUS", "URL"],
        [[d.id, d.ref, d.target, d.status, d.url or "-"] for d in found],
    )


@deployments_group.command("show")
@click.argument("deployment_id")
@json_command
def deployments_show(deployment_id: str) -> None:
    """One deployment, its endpoint checked now."""
    from .deploy.deployments import Deployments

    deployment = Deployments(_state().repository).get(deployment_id)
    if _as_json():
        click.echo(_dumps(deployment.to_dict()))
    else:
        _show_deployment(deployment)


@main.command()
@click.argument("ref")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="Worker processes on the port.")
@click.option(
    "--token",
    envvar="SPARKSERVE_ENDPOINT_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' (prefer the SPARKSERVE_ENDPOINT_TOKEN variable: "
    "a command line is visible to other users).",
)
@click.option("--no-batching", is_flag=True, help="Score each request on its own.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")
@click.option(
    "--max-body-mb", default=50.0, show_default=True, help="Largest request body accepted."
)
def serve(
    ref: str,
    host: str,
    port: int,
    workers: int,
    token: str | None,
    no_batching: bool,
    timeout: float,
    max_body_mb: float,
) -> None:
    """Serve model REF over MLflow's REST scoring protocol, in the foreground."""
    from .scoring.server import EndpointConfig
    from .scoring.server import serve as run_endpoint

    try:
        path = _state().repository.model_path(ref)
    except SparkserveError as error:
        raise click.ClickException(error.message) from None
    except Exception as error:  # an unusable repository: a message, not a traceback
        raise click.ClickException(f"{type(error).__name__}: {error}") from None
    if workers < 1:
        raise click.BadParameter("must be 1 or more", param_hint="--workers")
    config = EndpointConfig(
        model_path=str(path),
        model_ref=ref,
        batching=not no_batching,
        timeout_seconds=timeout,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
    )
    auth = "with a bearer token" if token else "without authentication"
    click.echo(f"Serving {ref} on http://{host}:{port} ({workers} worker(s), {auth})", err=True)
    run_endpoint(config, host=host, port=port, workers=workers, token=token)


@main.command()
@click.option("--keep-running", is_flag=True, help="Leave the demo's endpoint up at the end.")
@json_command
def demo(keep_running: bool) -> None:
    """The tour on this machine: train, save, alias, register, deploy, score, snippets."""
    from .demo import DEMO_ALIAS, DEMO_MODEL, run_demo

    as_json = _as_json()

    def report(message: str) -> None:
        if not as_json:
            click.echo(f"{click.style('✓', fg='green')} {message}")

    result = run_demo(_state().repository, report, keep_running=keep_running)
    if as_json:
        click.echo(_dumps(result.to_dict()))
        return
    click.echo()
    _table(
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
    click.echo("Next:")
    click.echo("  sparkserve models list")
    click.echo(f"  sparkserve models show {DEMO_MODEL}@{DEMO_ALIAS}")
    if keep_running:
        click.echo(f"  sparkserve undeploy {result.deployment['id']}")


# ---------------------------------------------------------------- offline scoring and jobs


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[float | None, str], None]]:
    """A progress bar on standard error; yields show(fraction or None, text)."""
    steps = 1000
    with click.progressbar(
        length=steps, label=label, file=sys.stderr, item_show_func=lambda text: text
    ) as bar:
        shown = 0

        def show(fraction: float | None, text: str) -> None:
            nonlocal shown
            target = int((fraction or 0.0) * steps)
            bar.update(max(target - shown, 0), text)
            shown = max(shown, target)

        yield show


def _spec_options(function: F) -> F:
    """The workflow settings `score`, `workflows create` and `workflows update` share."""
    options = [
        click.option("--input-format", help="csv, parquet or jsonl (default: by extension)."),
        click.option(
            "--format",
            "--output-format",
            "output_format",
            help="csv, parquet or jsonl (default: the output's extension, else the input's).",
        ),
        click.option(
            "--keep-columns",
            metavar="A,B",
            help="Input columns copied to the output (default all, also '*'; '' for none).",
        ),
        click.option("--engine", help="local (default) or spark."),
        click.option("--prediction-column", help="Name of the prediction column."),
        click.option(
            "--spark-config",
            metavar="'KEY=VALUE ...'",
            help="Spark settings, such as 'spark.master=local[2] spark.executor.memory=4g'.",
        ),
        click.option("--lib-jars", metavar="A.jar,B.jar", help="Jars added to the Spark session."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _email_options(function: F) -> F:
    function = click.option(
        "--email-on-failure", metavar="ADDRESSES", help="Comma-separated: told of a failure."
    )(function)
    return click.option(
        "--email-on-success", metavar="ADDRESSES", help="Comma-separated: told of a success."
    )(function)


def _spec_changes(settings: dict[str, Any]) -> dict[str, Any]:
    """WorkflowSpec settings from command-line options; options not given are left out."""
    from .workflows import parse_lib_jars, parse_spark_config

    changes = {name: value for name, value in settings.items() if value is not None}
    if "spark_config" in changes:
        changes["spark_config"] = parse_spark_config(changes["spark_config"])
    if "lib_jars" in changes:
        changes["lib_jars"] = list(parse_lib_jars(changes["lib_jars"]))
    return changes


@main.command("score")
@click.argument("ref")
@click.argument("input")
@click.argument("output")
@_spec_options
@json_command
def score_command(ref: str, input: str, output: str, **settings: Any) -> None:
    """Score INPUT (a file, folder or glob of CSV, Parquet or JSON Lines) with model REF into
    OUTPUT (a file or folder), in the foreground with a progress bar."""
    from .scoring.batch import use_returning_allocator
    from .workflows import WorkflowSpec
    from .workflows.definitions import run_spec

    use_returning_allocator()
    spec = WorkflowSpec.from_dict(
        {"model": ref, "input": input, "output": output, **_spec_changes(settings)}
    )
    repository = _state().repository
    with _interrupt_on_sigterm():
        if _as_json():
            result = run_spec(spec, repository=repository)
        else:
            with _progress_bar(f"Scoring {Path(spec.input).name}") as show:
                result = run_spec(
                    spec,
                    repository=repository,
                    progress=lambda p: show(p.fraction, f"{p.rows_done:,} rows"),
                )
                show(1.0, f"{result.rows:,} rows")
    if _as_json():
        click.echo(_dumps(result.to_dict()))
    else:
        click.echo(
            f"Scored {result.rows:,} rows from {result.files} file(s) into {result.output} in "
            f"{result.seconds:.1f} s (predictions: {', '.join(result.prediction_columns)})."
        )
    _offer_warm_scorer()


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the engine removes its temporary output (a run in
    the warm scorer does the same)."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _offer_warm_scorer() -> None:
    """After a run in a fresh process, start a warm scorer for the next ones (mode auto)."""
    from .warm import client

    if client.offer(idle_timeout=DEFAULT_IDLE_SECONDS):
        click.echo(
            f"Starting a warm scorer: the next runs start faster (it stops after "
            f"{DEFAULT_IDLE_SECONDS // 60:.0f} idle minutes, or with `sparkserve scorer stop`).",
            err=True,
        )


def _show_workflow(workflow: Any) -> None:
    spec = workflow.spec
    click.secho(f"workflow {workflow.id}  {workflow.name or '-'}", bold=True)
    columns = "all" if spec.keep_columns is None else ", ".join(spec.keep_columns) or "none"
    fields = [
        ("model", spec.model),
        ("input", spec.input + (f" ({spec.input_format})" if spec.input_format else "")),
        ("output", spec.output + (f" ({spec.output_format})" if spec.output_format else "")),
        ("keep columns", columns),
        ("prediction", spec.prediction_column),
        ("engine", spec.engine),
        ("spark config", " ".join(f"{k}={v}" for k, v in spec.spark_config.items()) or "-"),
        ("lib jars", ", ".join(spec.lib_jars) or "-"),
        ("email on success", ", ".join(spec.email_on_success) or "-"),
        ("email on failure", ", ".join(spec.email_on_failure) or "-"),
        ("updated", workflow.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"  {label.ljust(width)}  {value}")


@main.group("workflows")
def workflows_group() -> None:
    """Saved score workflows: create, list, show, update, delete and execute them."""


@workflows_group.command("create")
@click.argument("ref")
@click.argument("input")
@click.argument("output")
@click.option("--name", default="", help="What the workflow is for.")
@_spec_options
@_email_options
@json_command
def workflows_create(ref: str, input: str, output: str, name: str, **settings: Any) -> None:
    """Save a workflow scoring INPUT with model REF into OUTPUT; prints its id."""
    from .workflows import Workflows

    workflow = Workflows(_state().repository).create(
        {"model": ref, "input": input, "output": output, **_spec_changes(settings)}, name=name
    )
    if _as_json():
        click.echo(_dumps(workflow.to_dict()))
    else:
        click.echo(f"Created workflow {workflow.id}.")
        click.echo(f"  sparkserve workflows execute {workflow.id}")


@workflows_group.command("list")
@json_command
def workflows_list() -> None:
    """Workflows, by id."""
    from .workflows import Workflows

    found = Workflows(_state().repository).list()
    if _as_json():
        click.echo(_dumps([workflow.to_dict() for workflow in found]))
        return
    if not found:
        click.echo("No workflows: sparkserve workflows create REF INPUT OUTPUT makes one.")
        return
    _table(
        ["ID", "NAME", "MODEL", "ENGINE", "INPUT", "OUTPUT"],
        [
            [w.id, w.name or "-", w.spec.model, w.spec.engine, w.spec.input, w.spec.output]
            for w in found
        ],
    )


@workflows_group.command("show")
@click.argument("workflow_id", type=int)
@json_command
def workflows_show(workflow_id: int) -> None:
    """One workflow's settings."""
    from .workflows import Workflows

    workflow = Workflows(_state().repository).get(workflow_id)
    if _as_json():
        click.echo(_dumps(workflow.to_dict()))
    else:
        _show_workflow(workflow)


@workflows_group.command("update")
@click.argument("workflow_id", type=int)
@click.option("--model", help="Model reference.")
@click.option("--input", "input_", help="File, folder or glob to score.")
@click.option("--output", help="File or folder to write.")
@click.option("--name", help="What the workflow is for.")
@_spec_options
@_email_options
@json_command
def workflows_update(
    workflow_id: int,
    model: str | None,
    input_: str | None,
    output: str | None,
    name: str | None,
    **settings: Any,
) -> None:
    """Change the settings given; the others stay ('' resets one to its default)."""
    from .workflows import Workflows

    changes = _spec_changes({"model": model, "input": input_, "output": output, **settings})
    for option in ("input_format", "output_format", "engine", "prediction_column"):
        if changes.get(option) == "":
            changes[option] = None  # None resets to the default
    workflow = Workflows(_state().repository).update(workflow_id, changes, name=name)
    if _as_json():
        click.echo(_dumps(workflow.to_dict()))
    else:
        _show_workflow(workflow)


@workflows_group.command("delete")
@click.argument("workflow_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_command
def workflows_delete(workflow_id: int, yes: bool) -> None:
    """Delete a workflow (its jobs stay)."""
    from .workflows import Workflows

    workflows = Workflows(_state().repository)
    workflow = workflows.get(workflow_id)
    if not yes:
        if _as_json() or not sys.stdin.isatty():
            raise InvalidInput(
                f"Deleting workflow {workflow.id} needs --yes when nobody can be asked."
            )
        click.confirm(f"Delete workflow {workflow.id} ({workflow.spec.model})?", abort=True)
    workflows.delete(workflow.id)
    if _as_json():
        click.echo(_dumps({"deleted": workflow.id}))
    else:
        click.echo(f"Deleted workflow {workflow.id}.")


@workflows_group.command("execute")
@click.argument("workflow_id", type=int)
@click.option(
    "--program-parameters",
    metavar="'--KEY VALUE ...'",
    help="Override settings for this run, such as '--input may.csv --output may.parquet'.",
)
@click.option(
    "--spark-config", metavar="'KEY=VALUE ...'", help="Spark settings added for this run."
)
@click.option("--lib-jars", metavar="A.jar,B.jar", help="Jars added for this run.")
@_email_options
@click.option("--wait", is_flag=True, help="Wait for the job to end (exit 1 unless it succeeds).")
@json_command
def workflows_execute(
    workflow_id: int,
    program_parameters: str | None,
    spark_config: str | None,
    lib_jars: str | None,
    email_on_success: str | None,
    email_on_failure: str | None,
    wait: bool,
) -> None:
    """Run a workflow as a job in the background; prints the job id."""
    from .workflows import JobRunner, execution_request

    body = {
        "workflowId": workflow_id,
        "programParameters": program_parameters,
        "sparkConfig": spark_config,
        "libJars": lib_jars,
        "emailOnSuccess": email_on_success,
        "emailOnFailure": email_on_failure,
    }
    request = execution_request({key: value for key, value in body.items() if value is not None})
    runner = JobRunner(_state().repository)
    job = runner.execute(request)
    if wait:
        _wait_for_job(runner, job)
        return
    if _as_json():
        click.echo(_dumps(job.to_dict()))
    else:
        click.echo(f"Job {job.id} queued (workflow {workflow_id}).")
        click.echo(f"  sparkserve jobs show {job.id}")


def _wait_for_job(runner: Any, job: Any) -> None:
    """Wait for `job` with a progress bar, show how it ended; exit 1 unless it succeeded."""
    try:
        if _as_json():
            job = runner.wait(job.id)
            click.echo(_dumps(job.to_dict()))
        else:
            with _progress_bar(f"Job {job.id}") as show:
                job = runner.wait(
                    job.id,
                    on_update=lambda j: show(j.fraction, f"{j.status}, {j.rows_done:,} rows"),
                )
            _show_job(job)
    except KeyboardInterrupt:
        click.echo(
            f"\nJob {job.id} goes on in the background; sparkserve jobs cancel {job.id} stops it.",
            err=True,
        )
        click.get_current_context().exit(130)
    if job.status != "succeeded":
        click.get_current_context().exit(1)


def _show_job(job: Any) -> None:
    click.secho(f"job {job.id}  {job.status}", bold=True)
    what = "one-off score" if job.workflow_id is None else f"workflow {job.workflow_id}"
    rows = f"{job.rows_done:,}" + (f" of {job.rows_total:,}" if job.rows_total else "")
    fields = [
        ("what", what + (f" ({job.workflow_name})" if job.workflow_name else "")),
        ("model", job.spec.model),
        ("input", job.spec.input),
        ("output", job.output_path),
        ("engine", job.spec.engine),
        ("rows", rows + (f" ({job.fraction:.0%})" if job.fraction is not None else "")),
        ("created", job.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("duration", "-" if job.seconds is None else f"{job.seconds:.1f} s"),
        ("log", str(job.log_file)),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"  {label.ljust(width)}  {value}")
    if job.error:
        click.echo(f"  {'error'.ljust(width)}  {job.error}")


@main.group("scorer")
def scorer_group() -> None:
    """The warm scorer: a preloaded process that `sparkserve score` and jobs start from."""


@scorer_group.command("start")
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_IDLE_SECONDS,
    show_default=True,
    help="Stop after this many seconds without runs (0: never).",
)
@json_command
def scorer_start(idle_timeout: float) -> None:
    """Start the warm scorer (if none runs) and wait until it answers."""
    from .warm import client

    _show_scorer(client.start(idle_timeout=idle_timeout))


@scorer_group.command("status")
@json_command
def scorer_status() -> None:
    """Whether a warm scorer runs, and its recent runs."""
    from .warm import client, protocol

    current = client.status()
    if current is None:
        if _as_json():
            click.echo(_dumps({"running": False, "mode": protocol.mode()}))
        else:
            click.echo(f"No warm scorer is running (mode: {protocol.mode()}).")
        return
    _show_scorer(current)


@scorer_group.command("stop")
@json_command
def scorer_stop() -> None:
    """Stop your warm scorers once their runs in progress have finished."""
    from .warm import client

    pids = client.stop()
    if _as_json():
        click.echo(_dumps({"stopped": pids}))
    elif not pids:
        click.echo("No warm scorer was running.")
    else:
        click.echo(f"Stopped the warm scorer (pid {', '.join(map(str, pids))}).")


def _show_scorer(current: dict[str, Any]) -> None:
    if _as_json():
        click.echo(_dumps({"running": True, **current}))
        return
    idle = current["idle_timeout"]
    click.echo(f"Warm scorer pid {current['pid']} on {current['socket']}")
    click.echo(f"  preloaded in {current['preload_seconds']:.1f} s, {current['peak_mb']:.0f} MB")
    click.echo(f"  idle timeout: {f'{idle:g} s' if idle else 'none'}")
    for run in current["in_progress"]:
        click.echo(f"  running: pid {run['pid']} {' '.join(run['command'])} ({run['seconds']} s)")
    for run in current["recent"][-5:]:
        click.echo(
            f"  ended: pid {run['pid']} {' '.join(run['command'])}: exit {run['exit_code']} "
            f"after {run['seconds']} s, peak {run['peak_mb']:.0f} MB"
        )


@main.group("jobs")
def jobs_group() -> None:
    """Jobs running workflows: list, show, log and cancel them."""


@jobs_group.command("list")
@click.option("--status", help="Only jobs in this status (queued, running, succeeded, ...).")
@click.option("--workflow", "workflow_id", type=int, help="Only jobs of this workflow.")
@click.option("--limit", default=50, show_default=True, help="Jobs to show.")
@json_command
def jobs_list(status: str | None, workflow_id: int | None, limit: int) -> None:
    """Jobs, newest first."""
    from .workflows import JobRunner

    found = JobRunner(_state().repository).list(status=status, workflow_id=workflow_id, limit=limit)
    if _as_json():
        click.echo(_dumps([job.to_dict() for job in found]))
        return
    if not found:
        click.echo("No jobs.")
        return
    _table(
        ["ID", "WORKFLOW", "MODEL", "STATUS", "ROWS", "PROGRESS", "CREATED"],
        [
            [
                job.id,
                "-" if job.workflow_id is None else job.workflow_id,
                job.spec.model,
                job.status,
                f"{job.rows_done:,}",
                "-" if job.fraction is None else f"{job.fraction:.0%}",
                job.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for job in found
        ],
    )


@jobs_group.command("show")
@click.argument("job_id")
@json_command
def jobs_show(job_id: str) -> None:
    """One job, its process checked now."""
    from .workflows import JobRunner

    job = JobRunner(_state().repository).get(job_id)
    if _as_json():
        click.echo(_dumps(job.to_dict()))
    else:
        _show_job(job)


@jobs_group.command("log")
@click.argument("job_id")
@click.option("--tail", type=click.IntRange(min=1), help="Only the last N lines.")
@json_command
def jobs_log(job_id: str, tail: int | None) -> None:
    """A job's log."""
    from .workflows import JobRunner

    text = JobRunner(_state().repository).log(job_id, tail=tail)
    if _as_json():
        click.echo(_dumps({"id": job_id, "log": text}))
    else:
        click.echo(text, nl=not text.endswith("\n"))


@jobs_group.command("cancel")
@click.argument("job_id")
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait after SIGTERM before killing it.",
)
@json_command
def jobs_cancel(job_id: str, timeout: float) -> None:
    """Cancel a job: a queued one never runs; a running one stops, leaving no output."""
    from .workflows import JobRunner

    job = JobRunner(_state().repository).cancel(job_id, timeout=timeout)
    if _as_json():
        click.echo(_dumps(job.to_dict()))
    else:
        click.echo(f"Job {job.id} is {job.status}.")
