"""The server extension application: traitlets configuration and handler registration."""

from __future__ import annotations

import asyncio
import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Int, List, Unicode

from .. import config
from ..config import Settings
from ..confinement import Confinement
from ..deploy.mlflow import preload_in_background as preload_mlflow
from ..deploy.targets import check_defaults
from ..deploy.watch import DeploymentWatcher
from ..warm import client as warm_client
from .handlers import handler_routes
from .services import Services

# How long a stopping server waits for a deploy it started to finish recording its outcome.
DRAIN_SECONDS = 30.0


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
    max_jobs = Int(
        None,
        allow_none=True,
        config=True,
        help="Score jobs running at once; defaults to $SPARKSERVE_MAX_JOBS, then 2.",
    )
    smtp_host = Unicode(
        None,
        allow_none=True,
        config=True,
        help="SMTP server for job e-mail reports; defaults to $SPARKSERVE_SMTP_HOST (unset: none).",
    )
    smtp_port = Int(
        None, allow_none=True, config=True, help="Its port; defaults to 587 with STARTTLS, else 25."
    )
    smtp_sender = Unicode(
        None, allow_none=True, config=True, help="The From address of job reports."
    )
    smtp_starttls = Bool(
        None, allow_none=True, config=True, help="Upgrade the SMTP connection with STARTTLS."
    )
    smtp_user = Unicode(None, allow_none=True, config=True, help="SMTP login user, if any.")
    smtp_password = Unicode(None, allow_none=True, config=True, help="SMTP login password.")
    allowed_dirs = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Folders besides the server's root_dir that score jobs and workflows submitted "
        "over REST may read and write; nothing else is accepted (relative paths start at "
        "root_dir).",
    )
    deploy_defaults = Dict(
        default_value={},
        config=True,
        help="Option values that deploys over REST use when they do not give them, by target "
        "(`{'sagemaker': {'role': 'arn:aws:iam::...:role/x'}, 'azureml': {'workspace': 'w'}}`); "
        "the Deploy dialog shows them as the defaults. Secrets (a token) are not accepted here.",
    )
    warm_scorer = Bool(
        True,
        config=True,
        help="Keep a warm scorer (MLflow and the flavors preloaded) that score jobs fork from, "
        "for as long as this server runs (unless $SPARKSERVE_WARM_SCORER is use or off).",
    )

    def initialize_settings(self) -> None:
        settings = self.sparkserve_settings()
        confinement = Confinement.of(self.serverapp.root_dir, self.allowed_dirs)
        check_defaults(self.deploy_defaults)  # a bad value stops the server, saying which
        self.settings["sparkserve_services"] = Services(
            settings,
            confinement=confinement,
            warm_scorer=self.warm_scorer,
            deploy_defaults=self.deploy_defaults,
        )
        self.log.info("jupyter_sparkserve: repository at %s", settings.home)
        # A local endpoint that dies on its own shows as failed within a second or two.
        self._watcher = DeploymentWatcher(self.settings["sparkserve_services"].repository)
        self._watcher.start()
        if self.warm_scorer:  # one that stops with this server; jobs fork from it
            warm_client.offer(idle_timeout=0, parent_pid=os.getpid())
            preload_mlflow(settings)  # the first Register and Deploy: no seconds of imports

    def sparkserve_settings(self) -> Settings:
        """The traitlets mapped onto the core's settings, over the environment. The SMTP
        ones go to job processes only (they send the reports), never into this server's
        environment, which kernels and endpoints inherit."""
        return Settings.from_env(
            home=self.home,
            database_url=self.database_url,
            mlflow_tracking_uri=self.mlflow_tracking_uri,
            max_jobs=self.max_jobs,
            smtp={
                config.SMTP_HOST_ENV: self.smtp_host,
                config.SMTP_PORT_ENV: self.smtp_port,
                config.SMTP_SENDER_ENV: self.smtp_sender,
                config.SMTP_STARTTLS_ENV: self.smtp_starttls,
                config.SMTP_USER_ENV: self.smtp_user,
                config.SMTP_PASSWORD_ENV: self.smtp_password,
            },
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(handler_routes())

    async def stop_extension(self) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)  # its round may be waiting on a GET /ping
        services = self.settings.get("sparkserve_services")
        if services is not None:
            await services.drain(DRAIN_SECONDS)
            services.close()
