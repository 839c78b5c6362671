"""The artifact store on an S3-compatible bucket (`SPARKSERVE_ARTIFACT_ROOT=s3://BUCKET/PREFIX`).

A version's files live under the key prefix `PREFIX/NAME/vN-ID/`. A save writes the model
into a local staging folder and uploads it to that final prefix inside the write transaction
that inserts its row, before the commit: a listed version always has its files, and a
process killed between the upload and the commit leaves only unreferenced objects, which
`collect_garbage` deletes. Readers go through a local cache (a `LocalArtifactStore` under
SPARKSERVE_HOME): versions never change, so a folder in the cache is reused as it is; a fetch
downloads into a staging folder and renames it into place, so a concurrent reader never sees
half a folder. Listing versions downloads nothing.

Endpoint, credentials and region come from boto3's own chain (`AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL`, profiles, ...); nothing secret is logged or put in a message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3  # the `s3` extra: without it, `artifacts.open_store` says what to install
from botocore.config import Config

from ..clouds.aws import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, AwsError, error_code, said
from ..config import ARTIFACT_ROOT_ENV, safe_uri
from ..errors import InvalidInput, NotFound
from .artifacts import _VERSION_FOLDER, MARKER, STALE_STAGING_SECONDS, LocalArtifactStore

# A delete_objects call takes at most this many keys.
_DELETE_BATCH = 1000
_PARALLEL_FILES = 8


class S3ArtifactStore:
    def __init__(self, root: str, *, cache_root: Path) -> None:
        self.root = root
        self.bucket, _, self.prefix = root.removeprefix("s3://").partition("/")
        # One cache per bucket and prefix: two roots never share a folder.
        self.cache = LocalArtifactStore(cache_root / self.bucket / (self.prefix or "_"))
        self.client = _client()
        self.endpoint = safe_uri(self.client.meta.endpoint_url or "")

    # ------------------------------------------------------------------------- locations

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def path(self, relative: str) -> Path:
        return self.cache.path(relative)

    def relative_of(self, path: Path) -> str:
        return self.cache.relative_of(path)

    def new_location(self, name: str, version: int) -> str:
        return self.cache.new_location(name, version)

    def staging(self) -> AbstractContextManager[Path]:
        return self.cache.staging()

    # ----------------------------------------------------------------------------- owner

    def owner(self) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(MARKER))
        except Exception as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            raise self._error(error, "read the repository marker") from error
        return answer["Body"].read().decode().strip() or None

    def claim(self, repository_id: str) -> None:
        """Record which repository writes here (first come), so gc can tell a shared root.
        Also what finds out, at once, that the bucket is missing or unreachable."""
        if self.owner() is not None:
            return
        marker = {"Bucket": self.bucket, "Key": self.key(MARKER), "Body": f"{repository_id}\n"}
        try:
            try:
                # Fails if another process claimed it first.
                self.client.put_object(**marker, IfNoneMatch="*")
            except Exception as error:
                if error_code(error) != "NotImplemented":
                    raise
                self.client.put_object(**marker)  # a server without conditional writes
        except Exception as error:
            if error_code(error) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise self._error(error, "write the repository marker") from error

    # ---------------------------------------------------------------------- write, read

    def promote(self, source: Path, relative: str) -> Path:
        """Upload `source` under the version's final prefix (the row's commit makes it
        visible), then keep the folder as this machine's cached copy."""
        base = self.key(relative)
        files = sorted(p for p in source.rglob("*") if p.is_file())

        def upload(file: Path) -> None:
            key = f"{base}/{file.relative_to(source).as_posix()}"
            self.client.upload_file(str(file), self.bucket, key)

        try:
            _each(upload, files)
        except Exception as error:
            raise self._error(error, f"upload {relative}") from error
        return self.cache.promote(source, relative)

    def fetch(self, relative: str) -> Path:
        """The version's folder in the cache, downloaded first if it is not there yet."""
        target = self.cache.path(relative)
        if target.is_dir():
            return target  # only ever renamed in complete
        base = self.key(relative)
        files = {key: key[len(base) + 1 :] for key in self._keys(f"{base}/")}
        files = {key: name for key, name in files.items() if not name.endswith("/")}
        if not files:
            raise NotFound(
                f"The files of {relative} are not in s3://{self.bucket}/{base}/: the "
                "version was deleted meanwhile, or the bucket's objects were removed."
            )
        if any(part in ("", ".", "..") for name in files.values() for part in name.split("/")):
            raise InvalidInput(
                f"s3://{self.bucket}/{base}/ holds a key that is no file name (such as '..'): "
                "sparkserve did not write it; remove it from the bucket."
            )
        with self.cache.staging() as folder:
            download = folder / "model"

            def fetch_one(item: tuple[str, str]) -> None:
                (download / item[1]).parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, item[0], str(download / item[1]))

            try:
                _each(fetch_one, list(files.items()))
            except Exception as error:
                raise self._error(error, f"download {relative}") from error
            try:
                self.cache.promote(download, relative)
            except OSError:
                if not target.is_dir():  # else another reader put it in place first
                    raise
        return target

    # -------------------------------------------------------------------------- removing

    def remove(self, relative: str) -> None:
        self._delete_prefix(f"{self.key(relative)}/")
        self.cache.remove(relative)

    def remove_model(self, name: str) -> None:
        self.cache.remove_model(name)  # a bucket has no folders to remove

    def sweep_staging(self, *, min_age_seconds: float = STALE_STAGING_SECONDS) -> list[Path]:
        return self.cache.sweep_staging(min_age_seconds=min_age_seconds)

    def candidates(self, min_age_seconds: float) -> tuple[list[str], list[Path]]:
        """Version prefixes in the bucket (and folders in this machine's cache) untouched
        for `min_age_seconds`: what gc may remove if nothing references it."""
        cutoff = time.time() - min_age_seconds
        newest: dict[str, float] = {}
        start = f"{self.prefix}/" if self.prefix else ""
        for key, modified in self._objects(start):
            parts = key[len(start) :].split("/")
            # Only prefixes this store makes (NAME/vN-ID/...): never the marker, nor others'.
            if len(parts) < 3 or parts[0].startswith("."):
                continue
            if not _VERSION_FOLDER.fullmatch(parts[1]):
                continue
            relative = f"{parts[0]}/{parts[1]}"
            newest[relative] = max(newest.get(relative, 0.0), modified)
        stored = {relative for relative, touched in newest.items() if touched < cutoff}
        cached, staging = self.cache.candidates(min_age_seconds)
        return sorted(stored | set(cached)), staging

    def remove_unreferenced(
        self, candidates: list[str], is_referenced: Callable[[str], bool]
    ) -> list[Path | str]:
        removed: list[Path | str] = []
        for relative in candidates:
            if is_referenced(relative):
                continue
            prefix = f"{self.key(relative)}/"
            cached = self.cache.path(relative)
            if self._delete_prefix(prefix):
                removed.append(f"s3://{self.bucket}/{prefix}")
            elif cached.is_dir():
                removed.append(cached)
            self.cache.remove(relative)
        return removed

    # -------------------------------------------------------------------------- internals

    def _objects(self, prefix: str) -> Iterator[tuple[str, float]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"].timestamp()
        except Exception as error:
            raise self._error(error, f"list s3://{self.bucket}/{prefix}") from error

    def _keys(self, prefix: str) -> list[str]:
        return [key for key, _modified in self._objects(prefix)]

    def _delete_prefix(self, prefix: str) -> int:
        keys = self._keys(prefix)
        try:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
        except Exception as error:
            raise self._error(error, f"delete s3://{self.bucket}/{prefix}") from error
        return len(keys)

    def _error(self, error: BaseException, action: str) -> Exception:
        """What went wrong, worded with what to fix (never the credentials)."""
        where = f"the bucket {self.bucket} at {self.endpoint or 'AWS S3'}"
        name = type(error).__name__
        code = error_code(error)
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return InvalidInput(
                f"No AWS credentials to reach {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (boto3's own chain)."
            )
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            return InvalidInput(
                f"Cannot reach {where} to {action}: check AWS_ENDPOINT_URL_S3 (or "
                "AWS_ENDPOINT_URL) and that the service is up."
            )
        if code == "NoSuchBucket":
            return InvalidInput(
                f"The bucket {self.bucket} does not exist at {self.endpoint or 'AWS S3'}: "
                f"create it (aws s3 mb s3://{self.bucket}) or set {ARTIFACT_ROOT_ENV} to "
                "another bucket."
            )
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return InvalidInput(
                f"S3 refused to let this process {action} in {where} ({code}): check the "
                "credentials and that they may list, read, write and delete objects there."
            )
        return AwsError(f"S3 could not {action} in {where}: {said(error)}")


def _each(action: Callable[[Any], None], items: list[Any]) -> None:
    """`action` on every item, a few at once (a model folder is a handful of files: the
    requests' latency, not bandwidth, is what a fetch waits for); the first error raised."""
    with ThreadPoolExecutor(max_workers=_PARALLEL_FILES) as pool:
        for _done in pool.map(action, items):
            pass


# What decides the client boto3 makes here: a repository opened again with the same ones
# reuses it (making one costs about 50 ms), and a forked process makes its own (a client's
# pooled connections must not be shared across processes).
_CLIENT_SETTINGS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
_clients: dict[tuple[object, ...], Any] = {}
_clients_lock = threading.Lock()


def _client() -> Any:
    key = (os.getpid(), *(os.environ.get(name) for name in _CLIENT_SETTINGS))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _new_client()
        return _clients[key]


def _new_client() -> Any:
    """An S3 client from boto3's own chain, with short timeouts; path-style addressing on
    any endpoint but AWS's own (MinIO and moto do not serve BUCKET.HOST names)."""
    session = boto3.session.Session()

    def make(**s3: str) -> Any:
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "max_attempts": 3},
            s3=s3 or None,
        )
        return session.client("s3", config=config)

    found = make()
    host = urlsplit(found.meta.endpoint_url or "").hostname or ""
    return found if host.endswith(".amazonaws.com") else make(addressing_style="path")
