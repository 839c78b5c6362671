"""`sparkserve register`, `reregister`, `deploy`, `undeploy`, `deployments ...` (list, show,
dismiss), `snippets` and `serve`: MLflow registration and online scoring.

`deploy`'s flags are generated from the options every installed target declares, so a
target added by another package brings its flags along.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import BASE_IMAGE_ENV, DEFAULT_HEAD_TIMEOUT_SECONDS, ENDPOINT_TOKEN_ENV
from ..containers.context import DEFAULT_BASE_IMAGE
from ..deploy.targets import foreign_options, target_options, targets
from ..errors import InvalidInput, SparkserveError
from .output import as_json, counted, emit, fields, json_command, repository, table
from .root import main

F = TypeVar("F", bound=Callable[..., Any])
CLICK_TYPES = {
    "string": click.STRING,
    "integer": click.INT,
    "number": click.FLOAT,
    "boolean": click.BOOL,
}


def _register(ref: str, *, again: bool) -> None:
    from ..deploy.mlflow import MlflowRegistry

    registry = MlflowRegistry(repository())
    registration = registry.reregister(ref) if again else registry.register(ref)
    verb = "Re-registered" if again else "Registered"
    emit(
        registration.to_dict(),
        lambda: click.echo(
            f"{verb} {registration.name}:{registration.version} as {registration.model_uri}"
        ),
    )


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
    """Ready-to-run code: python and curl for a deployment ID (or a version REF that is
    deployed), offline python for a registered version REF."""
    from ..lifecycle import snippets_for

    found = snippets_for(repository(), ref_or_id)

    def show() -> None:
        for snippet in found.snippets:
            click.secho(f"# {snippet.title}", bold=True)
            click.echo(snippet.code + "\n")

    emit([snippet.to_dict() for snippet in found.snippets], show)


def _option_flags(function: F) -> F:
    for option, owners in reversed(target_options()):
        help_text = f"{option.help} (target {', '.join(owners)})"
        if option.env:
            help_text += f"; default ${option.env}"
        function = click.option(
            option.flag,
            option.name,
            type=CLICK_TYPES[option.type],
            default=None,
            show_default=False,
            help=help_text,
        )(function)
    return function


@main.command()
@click.argument("ref")
@click.option(
    "--target",
    type=click.Choice(list(targets())),
    default="local",
    show_default=True,
    help="Where to serve it.",
)
@click.option("--register", is_flag=True, help="Register it in MLflow first if it is not.")
@_option_flags
@json_command
def deploy(ref: str, target: str, register: bool, **values: Any) -> None:
    """Deploy registered model version REF as a REST endpoint; prints its id and URL."""
    from ..deploy.deployments import Deployments

    given = {name: value for name, value in values.items() if value is not None}
    foreign = foreign_options(target, given)
    if foreign:
        raise InvalidInput(f"{', '.join(foreign)}: not an option of target {target}.")
    deployment = Deployments(repository()).deploy(
        ref, target, given, register=register, environ=os.environ
    )

    def show() -> None:
        click.echo(f"Deployed {deployment.ref} as {deployment.id} at {deployment.url}")
        click.echo(f"  sparkserve snippets {deployment.id}")

    emit(deployment.to_dict(), show)


@main.command()
@click.argument("deployment_id")
@json_command
def undeploy(deployment_id: str) -> None:
    """Stop deployment DEPLOYMENT_ID."""
    from ..deploy.deployments import Deployments

    deployment = Deployments(repository()).undeploy(deployment_id)
    emit(
        deployment.to_dict(),
        lambda: click.echo(f"Undeployed {deployment.ref} ({deployment.id})."),
    )


@main.group("deployments")
def deployments_group() -> None:
    """List, inspect and dismiss deployments."""


@deployments_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and failed ones.")
@json_command
def deployments_list(show_all: bool) -> None:
    """Deployments, newest first (running ones unless --all)."""
    from ..deploy.deployments import Deployments

    found = Deployments(repository()).list(active_only=not show_all)

    def show() -> None:
        if not found:
            click.echo("No deployments." if show_all else "No running deployments (--all for all).")
            return
        table(
            ["ID", "MODEL", "TARGET", "STATUS", "BY", "URL"],
            [[d.id, d.ref, d.target, d.status, d.created_by or "-", d.url or "-"] for d in found],
        )

    emit([d.to_dict() for d in found], show)


@deployments_group.command("show")
@click.argument("deployment_id")
@json_command
def deployments_show(deployment_id: str) -> None:
    """One deployment, its endpoint checked now."""
    from ..deploy.deployments import Deployments

    deployment = Deployments(repository()).get(deployment_id)

    def show() -> None:
        rows = [
            ("target", deployment.target),
            ("url", deployment.url or "-"),
            ("model uri", deployment.model_uri),
            ("deployed by", deployment.created_by or "-"),
            *deployment.shown_details(),
        ]
        if deployment.error:
            rows.append(("error", deployment.error))
        fields(f"{deployment.id}  {deployment.ref}  {deployment.status}", rows)

    emit(deployment.to_dict(), show)


@deployments_group.command("dismiss")
@click.argument("deployment_id")
@json_command
def deployments_dismiss(deployment_id: str) -> None:
    """Forget ended deployment DEPLOYMENT_ID (stopped or failed): its record and its log."""
    from ..deploy.deployments import Deployments

    deployment = Deployments(repository()).dismiss(deployment_id)
    emit(
        deployment.to_dict(),
        lambda: click.echo(f"Dismissed {deployment.id} of {deployment.ref} ({deployment.status})."),
    )


@main.command()
@click.argument("ref")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="Worker processes on the port.")
@click.option(
    "--token",
    envvar=ENDPOINT_TOKEN_ENV,
    help="Require 'Authorization: Bearer TOKEN' (prefer the SPARKSERVE_ENDPOINT_TOKEN variable: "
    "a command line is visible to other users).",
)
@click.option("--no-batching", is_flag=True, help="Score each request on its own.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")
@click.option(
    "--max-body-mb", default=50.0, show_default=True, help="Largest request body accepted."
)
@click.option(
    "--head-timeout",
    default=DEFAULT_HEAD_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds a connection may take to send a request's line and headers (then 408).",
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
    head_timeout: float,
) -> None:
    """Serve model REF over MLflow's REST scoring protocol, in the foreground."""
    from ..scoring.endpoint_config import EndpointConfig
    from ..scoring.server import serve as run_endpoint

    try:
        path = repository().model_path(ref)
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
        head_timeout_seconds=head_timeout,
    ).with_environment(os.environ)  # what a deployment's options set (`endpoint_settings`)
    auth = "with a bearer token" if token else "without authentication"
    served = f"{counted(workers, 'worker')}, {auth}"
    click.echo(f"Serving {ref} on http://{host}:{port} ({served})", err=True)
    run_endpoint(config, host=host, port=port, workers=workers, token=token)


@main.command()
@click.argument("ref")
@click.option("--tag", help="The image's tag (default: sparkserve/NAME:VERSION).")
@click.option(
    "--base-image",
    help=f"The image to build on (default: ${BASE_IMAGE_ENV}, else {DEFAULT_BASE_IMAGE}).",
)
@click.option("--push", is_flag=True, help="Push the image to the registry its tag names (--tag).")
@click.option(
    "--dockerfile-only",
    type=click.Path(file_okay=False),
    help="Write the Dockerfile and its build context to this new folder, and build nothing.",
)
@json_command
def build(
    ref: str, tag: str | None, base_image: str | None, push: bool, dockerfile_only: str | None
) -> None:
    """Build an OCI image of model version REF: `serve` (the REST endpoint) and
    `score INPUT OUTPUT` (batch) in one image, with everything installed at build time."""
    from pathlib import Path

    from ..containers.build_job import BuildSpec, run_build
    from ..containers.images import write_version_context

    def progress(line: str) -> None:
        if not as_json():
            click.echo(line, err=True)

    if dockerfile_only:
        dockerfile = write_version_context(
            repository(), ref, Path(dockerfile_only), tag=tag, base=base_image, log=progress
        )
        emit(
            {"dockerfile": str(dockerfile)},
            lambda: click.echo(f"Wrote {dockerfile}: docker build -t TAG {dockerfile.parent}"),
        )
        return
    spec = BuildSpec(model=ref, tag=tag, base_image=base_image, push=push)
    built = run_build(spec, repository=repository(), log=progress)
    payload = {"image": built.tag, "id": built.image_id}
    if built.pushed:
        payload["pushed"] = built.pushed

    def show() -> None:
        click.echo(f"Built {built.tag} ({built.image_id[:19]})")
        if built.pushed:
            click.echo(f"Pushed {built.pushed}")

    emit(payload, show)


@main.command("k8s")
@click.argument("ref")
@click.option(
    "--image",
    default="",
    help="The image the pods run (default: the tag `sparkserve build REF` gives it).",
)
@click.option("--replicas", default=2, show_default=True, help="Pods to run.")
@click.option("--namespace", help="The namespace of every resource.")
@click.option("--token-secret", help="A Secret whose key `token` the endpoint will require.")
@click.option(
    "--autoscale",
    metavar="MIN-MAX",
    help="Add a HorizontalPodAutoscaler between MIN and MAX pods (70% CPU).",
)
@click.option("--disruption-budget", is_flag=True, help="Add a PodDisruptionBudget (1 pod up).")
@click.option("--host-port", type=int, help="Publish on this node port (single-node clusters).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to FILE.")
def k8s(
    ref: str,
    image: str,
    replicas: int,
    namespace: str | None,
    token_secret: str | None,
    autoscale: str | None,
    disruption_budget: bool,
    host_port: int | None,
    output: str | None,
) -> None:
    """Kubernetes manifests serving model version REF from an image: a Deployment and a
    Service with probes, resources and Prometheus annotations."""
    from ..containers.images import kubernetes_manifest
    from ..containers.kubernetes import KubernetesOptions

    settings = {
        "image": image or None,
        "replicas": replicas,
        "namespace": namespace,
        "token_secret": token_secret,
        "autoscale": autoscale,
        "disruption_budget": disruption_budget,
        "host_port": host_port,
    }
    try:
        options = KubernetesOptions.from_settings(settings)
        text = kubernetes_manifest(repository(), ref, options).yaml
    except SparkserveError as error:
        raise click.ClickException(error.message) from None
    if output:
        from pathlib import Path

        from ..files import write_atomically

        write_atomically(Path(output), text)
        click.echo(f"Wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
