"""IPython magics: the notebook face of the core (`%load_ext jupyter_sparkserve`).

They run in the kernel against the same SPARKSERVE_HOME as the Jupyter server, so a model
saved here shows in the sidebar. Every user mistake becomes a UsageError that says what to
type, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .config import Settings
from .errors import SparkserveError
from .repository import ModelRepository
from .repository.names import parse_key_values


def _parse(magic: Any, line: str) -> argparse.Namespace:
    """Arguments split as a shell would (quotes group words), parsed by the magic's parser,
    which turns a mistake into a UsageError with the usage line."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Could not read the arguments ({error}): check the quotes.") from None
    return magic.parser.parse_args(words)


@magics_class
class SparkserveMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._repository: ModelRepository | None = None

    @property
    def repository(self) -> ModelRepository:
        if self._repository is None:
            self._repository = ModelRepository(Settings.from_env())
        return self._repository

    def _variable(self, name: str, what: str) -> Any:
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"No variable named {name!r} in this notebook: pass the {what}.")
        return namespace[name]

    @magic_arguments()
    @argument("model", help="Variable holding the trained model (scikit-learn, pyfunc, ...).")
    @argument("name", help="Model name in the repository; saving again makes a new version.")
    @argument("-d", "--description", default="", help="What this version is.")
    @argument("-x", "--input-example", help="Variable holding a few input rows (DataFrame).")
    @argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Tag.")
    @argument("--metric", action="append", default=[], metavar="KEY=VALUE", help="Metric.")
    @argument("--flavor", help="MLflow flavor to save with, when it cannot be told.")
    @line_magic
    def sfsave(self, line: str) -> None:
        """Save a model variable to the repository: %sfsave model iris -x X_test."""
        args = _parse(self.sfsave, line)
        model = self._variable(args.model, "model to save")
        example = (
            self._variable(args.input_example, "input example") if args.input_example else None
        )
        try:
            version = self.repository.save(
                model,
                args.name,
                description=args.description,
                tags=parse_key_values(args.tag, "tag"),
                metrics=parse_key_values(args.metric, "metric"),
                input_example=example,
                flavor=args.flavor,
            )
        except SparkserveError as error:
            raise UsageError(error.message) from None
        print(f"Saved {version.ref} ({version.flavor}) to {self.repository.settings.home}")

    @magic_arguments()
    @argument("--filter", dest="name_contains", help="Only names containing this text.")
    @argument("--tag", help="Only models with a version tagged KEY or KEY=VALUE.")
    @argument("--limit", type=int, default=50, help="How many models to show.")
    @line_magic
    def sfmodels(self, line: str) -> pd.DataFrame:
        """List the repository's models: %sfmodels --filter iris."""
        args = _parse(self.sfmodels, line)
        try:
            page = self.repository.list_models(
                name_contains=args.name_contains, tag=args.tag, limit=args.limit
            )
        except SparkserveError as error:
            raise UsageError(error.message) from None
        rows = [model.to_dict() for model in page.items]
        columns = ["name", "latest_version", "version_count", "flavor", "aliases", "updated_at"]
        return pd.DataFrame(rows, columns=columns)
