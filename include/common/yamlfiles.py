"""YAML configuration files validated by pydantic, with errors that name the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml._yaml import CParser

from include.common.errors import InvalidInput

MAX_FILE_BYTES = 1_000_000
# Aliases let a few bytes stand for a great deal (a "billion laughs": nine levels of nine aliases
# are 387 million values); what a file stands for once its aliases are written out is bounded, and
# so is nesting (each level costs stack in the parser and everything after it).
MAX_EXPANDED_VALUES = 100_000
MAX_DEPTH = 64
Model = TypeVar("Model", bound=BaseModel)


class _Refused(yaml.MarkedYAMLError):
    """YAML that is valid but refused: too deep, a recursive alias, or too much behind its aliases."""

    problem_mark: yaml.Mark  # always given: where the refused YAML is

    def __init__(self, problem: str, problem_mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=problem_mark)


class _BoundedLoader(yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """The safe loader, refusing nesting deeper than MAX_DEPTH and aliases inside their own anchor,
    and noting where the first alias is. libyaml scans and parses (most of the work, which every task
    does again for the files it reads); the nodes are composed here, where the bounds are checked."""

    def __init__(self, stream) -> None:
        CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._open_anchors: set[str] = set()
        self.first_alias: yaml.Mark | None = None

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.first_alias = self.first_alias or event.start_mark
            if event.anchor in self._open_anchors:
                raise _Refused(problem=f"the alias *{event.anchor} is inside the value it names (a recursive alias)",
                               problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._depth += 1
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(event.anchor)


def _expansion(root: yaml.Node) -> tuple[int, int]:
    """How many values the node stands for with its aliases written out, and how deep they nest
    (an alias placed deep that names a deep value nests deeper than either). Each node is counted
    once and looked up after, without recursion: the graph has no cycles (the loader refused them)."""
    found: dict[int, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in found:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        if children_done:
            found[id(node)] = (1 + sum(found[id(c)][0] for c in children),
                               1 + max((found[id(c)][1] for c in children), default=0))
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in found)
    return found[id(root)]


@dataclass(frozen=True)
class LoadedFile(Generic[Model]):
    path: Path
    content: Model
    lines: dict[tuple, int]  # YAML path -> line number, for messages

    def line_of(self, *path) -> int:
        return _line_of(self.lines, path)

    def error(self, path: tuple, message: str) -> InvalidInput:
        """An error about the value at `path` (keys and indexes), naming its file, line and field."""
        return _error_at(self.path, self.lines, path, message)


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _error_at(file: Path, lines: dict[tuple, int], path: tuple, message: str) -> InvalidInput:
    field = ".".join(str(part) for part in path) or "(file)"
    return InvalidInput(f"{file}:{_line_of(lines, path)}: {field}: {message}")


def _lines(node: yaml.Node, path: tuple, into: dict[tuple, int]) -> None:
    into[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            into[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), into)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), into)


def _parsed(path: Path) -> tuple[yaml.Node | None, object]:
    """The file's YAML node tree and its data, bounded in size, nesting and aliases."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
        loader = _BoundedLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and loader.first_alias is not None:
                values, depth = _expansion(node)
                if values > MAX_EXPANDED_VALUES:
                    raise _Refused(problem=f"its aliases stand for more than {MAX_EXPANDED_VALUES:,} values "
                                           "(a \"billion laughs\"); write the values out or use fewer aliases",
                                   problem_mark=loader.first_alias)
                if depth > MAX_DEPTH:
                    raise _Refused(problem=f"its aliases nest values more than {MAX_DEPTH} levels deep",
                                   problem_mark=loader.first_alias)
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    except _Refused as exc:
        raise InvalidInput(f"{path}:{exc.problem_mark.line + 1}: refused YAML: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.context_mark or exc.problem_mark  # where the broken construct starts
        raise InvalidInput(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {exc.problem}") from None
    return node, data


def read_yaml(path: Path) -> object:
    """A YAML file's data, read with the same bounds as configuration files but not validated (for
    a cheap look at DAG parse time); InvalidInput names the file and what is wrong."""
    return _parsed(Path(path))[1]


def load_yaml_file(path: Path, model: type[Model], expected: str) -> LoadedFile[Model]:
    """Parse and validate one file; InvalidInput names the file, the line and the field.

    expected: what the file's top level must hold, for the message when it is not a mapping.
    """
    path = Path(path)
    node, data = _parsed(path)
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
        raise _error_at(path, lines, tuple(error["loc"]), error["msg"].removeprefix("Value error, ") + more) from None
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
