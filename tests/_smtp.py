"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it is sent, for e-mail tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from _endpoint_helpers import free_port
from aiosmtpd.controller import Controller


class Inbox:
    """An aiosmtpd handler keeping every message it is sent."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 60.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.envelopes) < count:
            assert time.monotonic() < deadline, f"{len(self.envelopes)} of {count} messages came"
            time.sleep(0.1)
        return self.envelopes


@contextmanager
def running_smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def received(envelope) -> EmailMessage:
    return message_from_bytes(envelope.content, _class=EmailMessage, policy=default)
