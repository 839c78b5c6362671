"""The two ways to get a report: score rows with two versions now (`compare_versions`), or
read the pairs a deployment's shadow recorded (`compare_shadow`, nothing scored again)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, NotFound
from ..repository import ModelRepository
from .drift import drift_against_examples
from .predict import BATCH_ROWS, Predictions, input_types, score, version
from .report import CompareReport, build_report
from .rows import Rows, deployment_folder, rows_on


def compare_versions(
    repository: ModelRepository,
    a: str,
    b: str,
    on: str | Rows,
    *,
    via: str = "auto",
    batch_rows: int = BATCH_ROWS,
    token: str | None = None,
) -> CompareReport:
    """Score the rows `on` (a file, a deployment's capture, or Rows already read) with
    versions `a` and `b`, and compare their answers, latency and the rows' drift."""
    first, second = version(repository, a), version(repository, b)
    rows = on if isinstance(on, Rows) else rows_on(repository, on, input_types(first))
    if rows.frame.empty:
        raise InvalidInput(f"There are no rows to compare on in {rows.source}.")
    answers = [
        score(repository, model, rows.frame, via=via, batch_rows=batch_rows, token=token)
        for model in (first, second)
    ]
    drift = drift_against_examples([(m.ref, m.path) for m in (first, second)], rows.frame)
    notes = []
    if answers[0].through_endpoint != answers[1].through_endpoint:
        notes.append(
            "One version answered through its endpoint and the other in process: their "
            "latencies differ by the HTTP round trip too (--via process measures both alike)."
        )
    return build_report(*answers, source=rows.source, drift=drift, notes=notes)


def compare_shadow(repository: ModelRepository, deployment_id: str) -> CompareReport:
    """The answers a deployment's primary and its shadow gave to the same mirrored rows."""
    from ..deploy.deployments import Deployments
    from ..deploy.local_target import SHADOW_FOLDER
    from ..scoring.shadow import read_pairs

    try:
        deployment = Deployments(repository).get(deployment_id)
    except NotFound as error:
        raise InvalidInput(error.message) from None
    folder = deployment_folder(repository, deployment_id) / SHADOW_FOLDER
    if not folder.is_dir():
        raise InvalidInput(
            f"Deployment {deployment_id} has recorded no shadow answers (no {folder}): "
            "deploy it with a shadow version and send it traffic first."
        )
    pairs = read_pairs(folder)
    if pairs.inputs.empty:
        raise InvalidInput(f"Deployment {deployment_id}'s shadow has recorded no rows yet.")
    shadow_ref = _shadow_ref(repository, deployment.details)
    primary = Predictions(
        f"{deployment.ref} (primary)",
        pairs.primary,
        np.asarray(pairs.primary_latency_ms, dtype=float),
        f"deployment {deployment_id}, live requests",
    )
    shadow = Predictions(
        f"{shadow_ref or 'the shadow'} (shadow)",
        pairs.shadow,
        np.asarray(pairs.shadow_latency_ms, dtype=float),
        f"shadow of {deployment_id}, mirrored requests",
        failures=int(pairs.shadow_failures),
    )
    notes = []
    if pairs.dropped:
        notes.append(f"{pairs.dropped:,} requests were not mirrored (the shadow's queue was full).")
    if pairs.shadow_failures:
        notes.append(f"The shadow failed or timed out on {pairs.shadow_failures:,} requests.")
    refs = [deployment.ref, *([shadow_ref] if shadow_ref else [])]
    drift = drift_against_examples([(r, version(repository, r).path) for r in refs], pairs.inputs)
    return build_report(
        primary,
        shadow,
        source=f"traffic mirrored by deployment {deployment_id}",
        drift=drift,
        notes=notes,
    )


def _shadow_ref(repository: ModelRepository, details: dict[str, object]) -> str | None:
    """The shadow's version when the deployment's details name it: the deployment it mirrors
    to, or an endpoint URL of one (None when they do not say, or name something else)."""
    from ..deploy.deployments import Deployments

    service = Deployments(repository)
    mirrored = details.get("shadow_deployment")
    if isinstance(mirrored, str) and mirrored:
        try:
            return service.get(mirrored).ref
        except NotFound:  # dismissed since: its version is not known any more
            return None
    url = details.get("shadow")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        wanted = url.rstrip("/").removesuffix("/invocations")
        found = service.list(active_only=True)
        return next((d.ref for d in found if d.url and d.url.rstrip("/") == wanted), None)
    return None
