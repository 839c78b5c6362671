"""A Jupyter identity provider whose token names its holder, as JupyterHub's single-user
servers do: the token-authenticated user is `user_name` (a configurable trait) instead of
jupyter_server's made-up "Anonymous ..." one. Used by servers the tests start, in process
(`jp_server_config`) or as `jupyter server` subprocesses (with tests/ on PYTHONPATH)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Unicode

PROVIDER = "_named_users.NamedUserProvider"


class NamedUserProvider(IdentityProvider):
    user_name = Unicode("", config=True, help="The name of whoever holds this server's token.")

    def generate_anonymous_user(self, handler: Any) -> User:
        # Called for a request that holds the token and no login cookie yet; the cookie set
        # then carries this user on.
        return User(username=self.user_name, name=self.user_name)


def server_config(user_name: str) -> dict[str, Any]:
    """The traitlets that make a server's token user `user_name`."""
    return {
        "ServerApp": {"identity_provider_class": PROVIDER},
        "NamedUserProvider": {"user_name": user_name},
    }


def command_line(user_name: str) -> list[str]:
    """The same, as `jupyter server` arguments."""
    return [
        f"--ServerApp.identity_provider_class={PROVIDER}",
        f"--NamedUserProvider.user_name={user_name}",
    ]
