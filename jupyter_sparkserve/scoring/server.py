"""The online endpoint: a small ASGI app speaking MLflow's scoring protocol.

Routes: `POST /invocations`, `GET /ping`, `/health`, `/version`, `/metrics`. It is a plain
ASGI callable rather than a framework app because every microsecond per request counts here
(MLflow's own server is the baseline to beat); uvicorn with httptools and uvloop runs it.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..config import (
    ENDPOINT_CONFIG_ENV,
    ENDPOINT_HEAD_TIMEOUT_ENV,
    ENDPOINT_TOKEN_ENV,
)
from .batcher import MicroBatcher
from .capture import Recorder
from .endpoint_config import EndpointConfig
from .invariance import MergeVerdict, probe
from .metrics import ROUTES, EndpointMetrics
from .protocol import ModelInput, ScoringError, mime_type, parse_request
from .scorer import Scorer
from .shadow import MIRROR_HEADER, mirror_from_config
from .transform import (
    EXECUTION_PARAMETERS_PATH,
    answer_lines,
    execution_parameters,
    is_transform_body,
    parse_lines,
)

JSON_HEADERS = [(b"content-type", b"application/json")]
OPEN_PATHS = ("/ping", "/health")  # liveness probes (SageMaker, Kubernetes) carry no token
CAPTURED = "sparkserve.captured"  # in a request's scope: its body, type and arrival
MIRRORED = "sparkserve.mirrored"  # in a request's scope: (body, content type) for the shadow


class ScoringApp:
    def __init__(self, config: EndpointConfig, token: str | None = None) -> None:
        from .skops_types import prepare_loading

        prepare_loading(config.model_path)
        import mlflow
        import mlflow.pyfunc

        self.config = config
        self._token = token.encode() if token else None
        self.model = mlflow.pyfunc.load_model(config.model_path)
        self.model_input = ModelInput(self.model)
        self.metrics = EndpointMetrics()
        # A model opts out of batching in its MLmodel metadata: sparkserve: {batching: false}.
        opted_out = (self.model.metadata.metadata or {}).get("sparkserve", {}).get("batching")
        self.batching = config.batching and opted_out is not False
        self.merging = (
            probe(self.model_input, config.model_path, config.max_batch_rows)
            if self.batching
            else MergeVerdict(False, "batching is off")
        )
        self.metrics.merging = self.merging.merge
        self.scorer = Scorer(self.model_input, merge=self.merging.merge)
        print(
            f"sparkserve: {'merging' if self.merging.merge else 'not merging'} concurrent "
            f"requests: {self.merging.reason}",
            file=sys.stderr,
            flush=True,
        )
        self._batcher: MicroBatcher | None = None
        self.shadow = mirror_from_config(config)  # None without a shadow
        self._version = mlflow.__version__.encode()
        self._capture = _recorder(config)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        status, headers, body = await self._route(scope, receive, path)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        self.metrics.record_request(path, status, elapsed)
        captured = scope.get(CAPTURED)
        if captured is not None and self._capture is not None:
            self._capture.record(*captured, elapsed, status, body)
        mirrored = scope.get(MIRRORED)  # set only when the shadow is to get this request
        if mirrored is not None and status == 200:
            self.shadow.offer(*mirrored, body, elapsed * 1000)  # type: ignore[union-attr]

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # MLflow, pandas and the model leave millions of long-lived objects; a full
                # collection walking them all stalls every request in flight for ~100 ms.
                gc.collect()
                gc.freeze()
                if self.batching:
                    self._batcher = MicroBatcher(
                        self.scorer,
                        max_batch_rows=self.config.max_batch_rows,
                        max_wait_ms=self.config.max_wait_ms,
                        on_batch=self.metrics.record_batch,
                    )
                    self._batcher.start()
                if self._capture is not None:
                    self._capture.start()
                if self.shadow is not None:
                    self.shadow.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._batcher is not None:
                    await self._batcher.stop()
                if self._capture is not None:  # after the last answer: write what queued
                    await asyncio.to_thread(self._capture.close)
                if self.shadow is not None:
                    await asyncio.to_thread(self.shadow.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: dict[str, Any], receive: Any, path: str):
        method = scope["method"]
        if path not in OPEN_PATHS and self._token is not None and not self._authorized(scope):
            error = ScoringError(
                "UNAUTHENTICATED", "This endpoint needs 'Authorization: Bearer <token>'."
            )
            return error.status, [*JSON_HEADERS, (b"www-authenticate", b"Bearer")], error.body()
        if path == "/invocations":
            if method != "POST":
                return _not_allowed("POST", "/invocations")
            try:
                async with _deadline(self.config.timeout_seconds):
                    return await self._invocation(scope, receive)
            except (asyncio.TimeoutError, TimeoutError):
                return _error(
                    504,
                    "DEADLINE_EXCEEDED",
                    f"Scoring took longer than the {self.config.timeout_seconds:g} s limit.",
                )
        if method != "GET" and path in ROUTES:
            return _not_allowed("GET", path)
        if path in OPEN_PATHS:
            return 200, JSON_HEADERS, b"\n"
        if path == "/version":
            return 200, JSON_HEADERS, self._version
        if path == EXECUTION_PARAMETERS_PATH and self.config.transform:
            return 200, JSON_HEADERS, execution_parameters(self.config.workers)
        if path == "/metrics":
            return 200, [(b"content-type", b"text/plain; version=0.0.4")], self.metrics.render()
        return _error(404, "ENDPOINT_NOT_FOUND", f"No route {path}; scoring is POST /invocations.")

    def _authorized(self, scope: dict[str, Any]) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    credential.strip(), self._token or b""
                )
        return False

    async def _invocation(self, scope: dict[str, Any], receive: Any):
        content_type = None
        declared_length = None
        mirror = self.shadow is not None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared_length = int(value)
            elif name == MIRROR_HEADER:
                mirror = False  # a request mirrored to us is not passed on again: no loops
        limit = self.config.max_body_bytes
        if declared_length is not None and declared_length > limit:
            return _too_large(limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if mirror:
            scope[MIRRORED] = (body, content_type)
        lines = self.config.transform and is_transform_body(mime_type(content_type or ""))
        try:
            if lines:
                item = parse_lines(body, mime_type(content_type or ""), self.model_input)
            else:
                item = parse_request(body, content_type, self.model_input)
        except ScoringError as error:
            return error.status, JSON_HEADERS, error.body()
        if self._capture is not None and not lines and self._capture.sampled():
            scope[CAPTURED] = (body, content_type, time.time_ns())  # recorded once answered
        if self._batcher is not None:
            outcome = await self._batcher.submit(item)
        else:
            outcome = await asyncio.to_thread(self.scorer.score, [item])
            outcome = outcome[0]
        if isinstance(outcome, ScoringError):
            return outcome.status, JSON_HEADERS, outcome.body()
        if lines:
            kind = mime_type(content_type or "")
            return 200, [(b"content-type", kind.encode())], answer_lines(outcome, kind)
        return 200, JSON_HEADERS, outcome


def _recorder(config: EndpointConfig) -> Recorder | None:
    if not config.capture or not config.capture_folder:
        return None
    folder = Path(config.capture_folder)
    sample, megabytes = config.capture_sample, config.capture_max_mb
    print(
        f"sparkserve: capturing {sample:.0%} of requests to {folder} (at most {megabytes} MB)",
        file=sys.stderr,
        flush=True,
    )
    return Recorder(
        folder,
        sample=sample,
        max_bytes=megabytes * 1024 * 1024,
        flush_seconds=config.capture_flush_seconds,
    )


def _deadline(seconds: float) -> Any:
    """asyncio.timeout where there is one (3.11+): unlike wait_for it starts no extra task."""
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    return _WaitForDeadline(seconds)


class _WaitForDeadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._expired = False

    async def __aenter__(self) -> None:
        self._task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self.seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and kind is asyncio.CancelledError:
            raise TimeoutError
        return False


def _error(status: int, code: str, message: str):
    return status, JSON_HEADERS, ScoringError(code, message, status).body()


def _not_allowed(allowed: str, path: str):
    status, headers, body = _error(405, "BAD_REQUEST", f"Use {allowed} for {path}.")
    return status, [*headers, (b"allow", allowed.encode())], body


def _too_large(limit: int):
    return _error(
        413,
        "REQUEST_TOO_LARGE",
        f"The request body is larger than this endpoint's limit of {limit:,} bytes; "
        "send fewer rows per request.",
    )


def app_from_environment() -> ScoringApp:
    """The app factory uvicorn's worker processes call (config and token from the env)."""
    return ScoringApp(
        EndpointConfig.from_json(os.environ[ENDPOINT_CONFIG_ENV]),
        token=os.environ.get(ENDPOINT_TOKEN_ENV),
    )


def serve(
    config: EndpointConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    token: str | None = None,
) -> None:
    """Serve in the foreground until interrupted."""
    import uvicorn

    from .connections import HeadTimeoutProtocol

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": HeadTimeoutProtocol,
        "lifespan": "on",
        # Nothing here reads client addresses or needs Server/Date headers: skip the work.
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
    }
    os.environ[ENDPOINT_HEAD_TIMEOUT_ENV] = str(config.head_timeout_seconds)
    if workers > 1:
        os.environ[ENDPOINT_CONFIG_ENV] = config.to_json()
        if token:
            os.environ[ENDPOINT_TOKEN_ENV] = token
        uvicorn.run(
            "jupyter_sparkserve.scoring.server:app_from_environment",
            factory=True,
            workers=workers,
            **options,
        )
    else:
        uvicorn.run(ScoringApp(config, token=token), **options)
