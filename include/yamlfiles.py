"""YAML configuration files validated by pydantic, with errors that name the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from include.errors import InvalidInput

MAX_FILE_BYTES = 1_000_000
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class LoadedFile(Generic[Model]):
    path: Path
    content: Model
    lines: dict[tuple, int]  # YAML path -> line number, for messages

    def line_of(self, *path) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: tuple, message: str) -> InvalidInput:
        """An error about the value at `path` (keys and indexes), naming its file, line and field."""
        field = ".".join(str(part) for part in path) or "(file)"
        return InvalidInput(f"{self.path}:{self.line_of(*path)}: {field}: {message}")


def _lines(node: yaml.Node, path: tuple, into: dict[tuple, int]) -> None:
    into[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            into[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), into)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), into)


def load_yaml_file(path: Path, model: type[Model], expected: str) -> LoadedFile[Model]:
    """Parse and validate one file; InvalidInput names the file, the line and the field.

    expected: what the file's top level must hold, for the message when it is not a mapping.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.context_mark or exc.problem_mark  # where the broken construct starts
        raise InvalidInput(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {exc.problem}") from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _lines(node, (), lines)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}:1: expected a mapping with {expected}")
    try:
        content = model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise LoadedFile(path, None, lines).error(
            tuple(error["loc"]), error["msg"].removeprefix("Value error, ") + more) from None
    return LoadedFile(path, content, lines)


@dataclass(frozen=True)
class DirectoryLoad(Generic[Model]):
    """A directory's files: those that loaded, and each one that did not with its error."""

    files: list[LoadedFile[Model]]
    failed: dict[Path, InvalidInput]


def load_yaml_dir_each(directory: Path, load: Callable[[Path], LoadedFile[Model]], *, what: str,
                       key: str) -> DirectoryLoad[Model]:
    """Every *.yaml file of the directory, by `load`, each on its own: a bad file keeps no other out.
    A file describing the same `key` as a file before it fails too."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"{what} directory {directory} does not exist")
    files: list[LoadedFile[Model]] = []
    failed: dict[Path, InvalidInput] = {}
    owners: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            loaded = load(path)
        except InvalidInput as exc:
            failed[path] = exc
            continue
        value = getattr(loaded.content, key)
        if value in owners:
            failed[path] = loaded.error((key,), f"{key} '{value}' is already described by {owners[value]}")
        else:
            owners[value] = path
            files.append(loaded)
    return DirectoryLoad(files, failed)


def load_yaml_dir(directory: Path, load: Callable[[Path], LoadedFile[Model]], *, what: str,
                  key: str) -> list[LoadedFile[Model]]:
    """Every *.yaml file of the directory, by `load`; no two may describe the same `key`. All or
    nothing: the first bad file's error is raised."""
    loaded = load_yaml_dir_each(directory, load, what=what, key=key)
    if loaded.failed:
        raise next(iter(loaded.failed.values()))
    return loaded.files
