"""Score a DataFrame through a live endpoint: `dataframe_split` POSTs to `URL/invocations`,
in chunks so that a progress bar can follow a large frame (and `compare` can time each
request). The answer becomes columns the same way the offline engines make them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import requests

from ..errors import InvalidInput, SparkserveError, remedy
from .batch import prediction_frame
from .offline import kept_columns

CHUNK_ROWS = 10_000  # rows per request: far below an endpoint's body limit
TIMEOUT_SECONDS = 300.0


class EndpointRefused(SparkserveError):
    """The endpoint could not be reached, or answered with an error."""

    code = "ENDPOINT_REFUSED"
    http_status = 502


def invocations_url(url: str) -> str:
    """`URL/invocations` from an endpoint's base URL (or from its invocations URL)."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an endpoint URL: give one such as http://host:port.")
    return base if base.endswith("/invocations") else f"{base}/invocations"


def score_at_endpoint(
    url: str,
    frame: pd.DataFrame,
    *,
    keep_columns: Sequence[str] | None = None,
    prediction_column: str = "prediction",
    token: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """The frame's kept columns (default all) plus the endpoint's prediction column(s).
    `progress(rows_done, rows_total)` follows the chunks (one request each)."""
    target = invocations_url(url)
    kept = kept_columns(frame, keep_columns, prediction_column)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    parts = []
    total = len(frame)
    with requests.Session() as session:
        for start in range(0, max(total, 1), chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows]
            predictions = _post(session, target, chunk, headers)
            parts.append(prediction_frame(predictions, len(chunk), prediction_column))
            if progress is not None:
                progress(start + len(chunk), total)
    predicted = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    predicted.index = frame.index
    return pd.concat([frame[kept], predicted], axis=1)


def _post(session: requests.Session, url: str, chunk: pd.DataFrame, headers: dict[str, str]) -> Any:
    # pandas writes numpy values, NaN and timestamps as JSON the endpoint reads back.
    rows = chunk.to_json(orient="split", index=False, date_format="iso")
    body = f'{{"dataframe_split": {rows}}}'.encode()
    try:
        response = session.post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.ConnectionError:
        raise EndpointRefused(
            f"Nothing answers at {url}: check the URL, or that the deployment is running.",
            remedy=remedy("list_deployments"),
        ) from None
    except requests.RequestException as error:
        raise EndpointRefused(f"The request to {url} failed: {error}") from None
    if response.status_code == 401:
        raise EndpointRefused(
            f"{url} wants a bearer token: set SPARKSERVE_ENDPOINT_TOKEN in the kernel "
            "(os.environ['SPARKSERVE_ENDPOINT_TOKEN'] = ...) and score again."
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not response.ok:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise EndpointRefused(
            f"{url} answered {response.status_code}: {message or response.text[:500]}"
        )
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise EndpointRefused(f"{url} did not answer with predictions: {response.text[:500]}")
    return answer["predictions"]
