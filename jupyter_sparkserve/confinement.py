"""Where a score run may read and write when a server runs it on someone's behalf.

The REST API confines jobs and workflows to the Jupyter server's root folder and the folders
configured as allowed (`SparkserveApp.allowed_dirs`), as Jupyter's contents API confines the
files it serves: a relative path is taken from the root folder, and a path that leads
elsewhere (`..`, an absolute path, a symbolic link) is refused before anything runs. The CLI
and the magics act as the user in the user's own process and are not confined.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import Conflict, InvalidInput, remedy
from .files import uri_scheme
from .repository import ModelRef
from .workflows.definitions import WorkflowSpec, template_variables


class FileExists(Conflict):
    """The file a user named to write exists: a face asks before it is replaced."""

    code = "FILE_EXISTS"


@dataclass(frozen=True)
class Confinement:
    roots: tuple[Path, ...]  # resolved; the first one is where relative paths start

    @classmethod
    def of(cls, root: str | os.PathLike[str], allowed: Sequence[str] = ()) -> Confinement:
        folders = [Path(root), *(Path(path) for path in allowed)]
        return cls(tuple(folder.expanduser().resolve() for folder in folders))

    def spec(self, spec: WorkflowSpec) -> WorkflowSpec:
        """`spec` with its paths taken from the root folder and checked to stay in the
        allowed folders; a setting that still holds a `${variable}` is checked once the run
        fills it."""
        changes: dict[str, object] = {}
        for what in ("input", "output"):
            text = getattr(spec, what)
            # A URI (s3://) is no file here: the engine that takes it reads or writes it.
            if not template_variables(text, what) and uri_scheme(text) is None:
                changes[what] = self.path(text, what, pattern=what == "input")
        model = ModelRef.parse(spec.model) if not template_variables(spec.model, "model") else None
        if model is not None and not model.in_repository and "://" not in str(model.uri):
            changes["model"] = self.path(str(model.uri), "model")
        changes["lib_jars"] = tuple(
            self.path(jar.removeprefix("file://"), "lib_jars")
            if "://" not in jar or jar.startswith("file://")
            else jar
            for jar in spec.lib_jars
        )
        return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]

    def model_source(self, text: str) -> str:
        """An import source this server may fetch: a repository version, a `runs:/` or
        `models:/` URI of its MLflow store, or an MLflow model folder in its folders. Any
        other URI (http, s3, ...) could reach places the server was not meant to: it is
        for the user's own command line."""
        ref = ModelRef.parse(text)
        if ref.in_repository:
            return text
        uri = str(ref.uri)
        if uri.startswith(("runs:/", "models:/")):
            return uri
        if "://" in uri and not uri.startswith("file://"):
            raise InvalidInput(
                f"This server imports repository versions, runs:/ and models:/ URIs and model "
                f"folders in its folders, not {uri.split(':', 1)[0]} URIs such as {text!r}: "
                "import it from your own command line.",
                remedy=remedy("import_model", source=text),
            )
        return self.path(text.removeprefix("file://"), "source")

    def path(self, text: str, what: str, *, pattern: bool = False) -> str:
        """The absolute path `text` means from the root folder, refused unless it (and, for
        a glob, every file it matches now) stays in the allowed folders."""
        if "\0" in text:
            raise InvalidInput(f"The {what} path holds a NUL character: {text!r}.", field=what)
        candidate = Path(text).expanduser()
        absolute = candidate if candidate.is_absolute() else self.roots[0] / candidate
        if ".." in absolute.parts:
            raise self._outside(what, text)
        if pattern and glob.has_magic(str(absolute)):
            static = Path(*[part for part in _static_parts(absolute)])
            found = [Path(match) for match in glob.glob(str(absolute), recursive=True)]
            for path in [static, *found]:
                self._check(path, what, text)
        else:
            self._check(absolute, what, text)
        return str(absolute)

    def contents_path(self, path: str) -> str | None:
        """Where `path` is in the Jupyter server's files (relative to its root, `/`-separated),
        for opening it there; None when it is not under the root or does not exist."""
        if not path or uri_scheme(path) is not None:
            return None
        real = Path(path).expanduser().resolve()
        root = self.roots[0]
        if not real.exists() or not (real == root or root in real.parents):
            return None
        return real.relative_to(root).as_posix() if real != root else ""

    def file_to_write(
        self, text: str, what: str, *, suffixes: tuple[str, ...], overwrite: bool = False
    ) -> str:
        """The file `text` names for the server to write, as the Jupyter file browser names
        files: from the root folder (a leading `/` is the root too), never outside it (`..`,
        a link; the allowed folders are not the file browser's). Its name ends in one of
        `suffixes`, its folder exists, it is no folder; an existing file is refused
        (`FileExists`, for the face to ask) unless `overwrite`. Returns the path from the root,
        `/`-separated, as the contents API takes it."""
        kinds = " or ".join(suffixes)
        given = text.strip()
        if "\0" in given:
            raise InvalidInput(f"The {what} holds a NUL character: {text!r}.", field=what)
        relative = PurePosixPath(given.lstrip("/"))
        if not relative.name:
            raise InvalidInput(f"Give the {what}: a file name ending in {kinds}.", field=what)
        try:
            return self._writable(relative, what, suffixes, overwrite)
        except OSError as error:  # a name too long for the file system, a folder not readable
            raise InvalidInput(
                f"The {what} {given!r} cannot be written: {error.strerror}.", field=what
            ) from None

    def _writable(
        self, relative: PurePosixPath, what: str, suffixes: tuple[str, ...], overwrite: bool
    ) -> str:
        """`file_to_write`'s checks of the file system."""
        kinds = " or ".join(suffixes)
        given = relative.as_posix()  # as the contents API names it
        root = self.roots[0]
        target = root.joinpath(*relative.parts)
        if ".." in relative.parts or not _inside(target.parent.resolve(), root):
            raise InvalidInput(
                f"The {what} {given!r} leads outside the folder the file browser shows "
                f"({root}): choose a path inside it.",
                field=what,
            )
        if target.is_dir():
            raise InvalidInput(
                f"{given!r} is a folder: add the file's name, such as {given}/NAME{suffixes[0]}.",
                field=what,
            )
        if relative.suffix.lower() not in suffixes:
            raise InvalidInput(
                f"{relative.name!r} does not end in {kinds}: name the file such as "
                f"{relative.stem}{suffixes[0]}.",
                field=what,
            )
        folder = relative.parent.as_posix()
        if not target.parent.is_dir():
            kind = "is a file, not a folder" if target.parent.exists() else "does not exist"
            raise InvalidInput(
                f"The folder {folder!r} {kind}: choose a folder that exists, or create it in "
                "the file browser first.",
                field=what,
            )
        if target.is_symlink() and not _inside(target.resolve(), root):
            raise InvalidInput(
                f"{given!r} is a link to a file outside the folder the file "
                f"browser shows ({root}): choose another name.",
                field=what,
            )
        if target.exists() and not overwrite:
            raise FileExists(
                f"{given} exists already: replace it, or choose another name.",
                field=what,
            )
        return given

    def _check(self, path: Path, what: str, text: str) -> None:
        real = path.resolve()  # symbolic links followed: a link out of the root is outside
        if not any(real == root or root in real.parents for root in self.roots):
            raise self._outside(what, text)

    def _outside(self, what: str, text: str) -> InvalidInput:
        folders = ", ".join(str(root) for root in self.roots)
        return InvalidInput(
            f"The {what} {text!r} is outside the folders this server may read and write "
            f"({folders}): use a path inside them, or add its folder to "
            "SparkserveApp.allowed_dirs.",
            field=what,
        )


def _inside(real: Path, root: Path) -> bool:
    return real == root or root in real.parents


def _static_parts(path: Path) -> list[str]:
    """The leading parts of a glob pattern that hold no wildcard."""
    parts = []
    for part in path.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return parts
