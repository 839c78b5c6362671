"""The server extension application: traitlets configuration and handler registration."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from ..config import Settings
from .base import RepositoryProvider
from .handlers import handler_routes


class SparkserveApp(ExtensionApp):
    name = "jupyter_sparkserve"

    home = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Repository folder; defaults to $SPARKSERVE_HOME, then ~/.sparkserve.",
    )
    database_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="SQLAlchemy URL of the repository database; defaults to SQLite in the home folder.",
    )
    mlflow_tracking_uri = Unicode(
        None,
        allow_none=True,
        config=True,
        help="MLflow tracking URI; defaults to $MLFLOW_TRACKING_URI, then SQLite in the home.",
    )

    def initialize_settings(self) -> None:
        settings = Settings.from_env(
            home=self.home,
            database_url=self.database_url,
            mlflow_tracking_uri=self.mlflow_tracking_uri,
        )
        self.settings["sparkserve_repository"] = RepositoryProvider(settings)
        self.log.info("jupyter_sparkserve: repository at %s", settings.home)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handler_routes())

    async def stop_extension(self) -> None:
        provider = self.settings.get("sparkserve_repository")
        if provider is not None:
            provider.close()
