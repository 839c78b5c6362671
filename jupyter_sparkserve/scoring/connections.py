"""The endpoint's HTTP protocol: uvicorn's httptools protocol with a request-head deadline.

uvicorn closes connections idle between requests (keep-alive timeout) but waits forever for
a request head that never ends: a client trickling one header line every few seconds
(slowloris) holds a connection, and enough of them hold every file descriptor. Like nginx's
`client_header_timeout`, a connection whose request line and headers are not complete within
the head timeout of being opened (or of its next request's first byte) gets a 408 and is
closed. A slow body is bounded by the request deadline (`--timeout`, a 504) in the app.
"""

from __future__ import annotations

import asyncio
import functools
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import DEFAULT_HEAD_TIMEOUT_SECONDS, ENDPOINT_HEAD_TIMEOUT_ENV

_TIMEOUT_BODY = (
    b'{"error_code": "REQUEST_TIMEOUT", "message": "The request head (request line and '
    b'headers) did not arrive in time."}'
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's `http` protocol for the endpoint. A class, not a closure: `--workers N`
    hands it to spawned processes, which read the timeout from the environment."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timeout = _head_timeout()
        self._start_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_deadline()  # a keep-alive connection's next request

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a request still being answered: that answer first.
            self._start_head_deadline()
            return
        self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


@functools.cache
def _head_timeout() -> float:
    """Read once per process: `serve` sets it before uvicorn starts (and its workers)."""
    return float(os.environ.get(ENDPOINT_HEAD_TIMEOUT_ENV) or DEFAULT_HEAD_TIMEOUT_SECONDS)
