"""Parse YAML (or JSON, which YAML reads too) keeping the line and column of every key and value.

The result is plain data (dicts, lists, scalars) plus two maps from a key path
such as ``("steps", 2, "timeout")`` to a :class:`Position`: where the value
starts and, for mapping entries, where the key is. Mapping keys are kept as the
text written, so ``on:`` or ``yes:`` stay keys rather than becoming booleans.

A file may be hostile, so reading it is bounded: its size, how deep it nests,
how many values it holds once aliases are expanded, and how long a number may
be. Whatever the file holds, parsing ends in a tree or in ScenarioInvalid.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from test_coordinator.scenario.problems import (
    Position,
    ScenarioInvalid,
    ScenarioProblem,
    format_path,
    shown,
)

Path = tuple[str | int, ...]

MAX_FILE_BYTES = 1024 * 1024
"""A scenario file may be at most 1 MiB (real ones are a few KiB)."""
MAX_DEPTH = 64
"""Lists and mappings nest at most this deep, counting the document itself."""
MAX_VALUES = 50_000
"""Values (keys, scalars, lists, mappings) in a document once every alias is expanded."""
MAX_NUMBER_CHARS = 100
"""Longer numbers are refused: Python's int conversion is quadratic and limited."""
MAX_CHARACTER_PROBLEMS = 20

_LIMIT = "the limit for a scenario"
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep, {_LIMIT}"
_YAML = "tag:yaml.org,2002:"
_KEPT_AS_WRITTEN = {f"{_YAML}{kind}" for kind in ("str", "timestamp", "merge", "value")}
_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map"
_SAFE = SafeConstructor()
_BUILDERS: dict[str, Callable[[yaml.ScalarNode], Any]] = {
    f"{_YAML}int": _SAFE.construct_yaml_int,
    f"{_YAML}float": _SAFE.construct_yaml_float,
    f"{_YAML}bool": _SAFE.construct_yaml_bool,
    f"{_YAML}null": _SAFE.construct_yaml_null,
}
_NUMBERS = {f"{_YAML}int", f"{_YAML}float"}
# What the YAML reader refuses (PyYAML's and libyaml's rule), found before parsing.
_NOT_ALLOWED = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# libyaml (C) parses several times faster than PyYAML's Python parser; both give the same events.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class SourceTree:
    """A parsed document with the position of every value and every mapping key."""

    file: str
    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def value_position(self, path: Path) -> Position:
        """Where the value at ``path`` starts, or its closest known ancestor."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def key_position(self, path: Path) -> Position:
        return self.keys.get(path) or self.value_position(path)

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> ScenarioProblem:
        position = self.key_position(path) if at_key else self.value_position(path)
        return ScenarioProblem(self.file, position, format_path(path), message)


def _position(mark: Any) -> Position:
    """A mark's position, to be clamped to the end of the text by the caller.

    libyaml puts the end of a file without a final line break on the line after it.
    """
    return Position(mark.line + 1, mark.column + 1)


def position_at(text: str, index: int) -> Position:
    """The line and column of ``text[index]``, counting line breaks as YAML does."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return Position(line, index - start + 1)


def too_large(file: str) -> ScenarioProblem:
    return ScenarioProblem(
        file,
        Position(1, 1),
        "",
        f"the file is larger than 1 MiB ({MAX_FILE_BYTES} bytes), {_LIMIT}",
    )


def _indentation(text: str, index: int) -> str:
    """The blanks that start the line ``index`` is on, up to ``index`` (included)."""
    start = text.rfind("\n", 0, index) + 1
    line = text[start : index + 1]
    return line[: len(line) - len(line.lstrip(" \t"))]


def parse_source(text: str, file: str) -> SourceTree:
    """Parse ``text``; raise ScenarioInvalid for syntax errors, duplicate keys and any limit."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ScenarioInvalid([too_large(file)])
    unreadable = _unreadable_characters(text, file)
    if unreadable:
        raise ScenarioInvalid(unreadable)
    end = position_at(text, len(text))
    loader = _Loader(text)
    try:
        root = _compose(loader)
    except _Refused as exc:
        position = min(_position(exc.mark), end)
        raise ScenarioInvalid([ScenarioProblem(file, position, "", str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = min(_position(mark), end) if mark is not None else Position(1, 1)
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        if "maximum nesting depth" in what:  # libyaml's own limit, met when it reads ahead
            raise ScenarioInvalid([ScenarioProblem(file, position, "", _TOO_DEEP)]) from None
        if mark is not None and "\t" in _indentation(text, mark.index):
            what += " (a tab in the indentation: YAML indents with spaces)"
        raise ScenarioInvalid(
            [ScenarioProblem(file, position, "", f"not valid YAML or JSON: {what}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioInvalid(
            [ScenarioProblem(file, Position(1, 1), "", f"not valid YAML or JSON: {exc}")]
        ) from None
    finally:
        loader.dispose()
    if root is None:
        raise ScenarioInvalid(
            [ScenarioProblem(file, Position(1, 1), "", "the file is empty; expected a mapping")]
        )
    tree = SourceTree(file=file, data=None)
    problems: list[ScenarioProblem] = []
    tree.data = _Converter(tree, problems, end).convert(root, ())
    if problems:
        raise ScenarioInvalid(problems)
    return tree


def _unreadable_characters(text: str, file: str) -> list[ScenarioProblem]:
    problems = []
    for count, match in enumerate(_NOT_ALLOWED.finditer(text)):
        position = position_at(text, match.start())
        if count == MAX_CHARACTER_PROBLEMS:
            rest = sum(1 for _ in _NOT_ALLOWED.finditer(text, match.start()))
            problems.append(
                ScenarioProblem(file, position, "", f"{rest} more such characters from here on")
            )
            break
        code = ord(match.group())
        what = "control character" if unicodedata.category(match.group()) == "Cc" else "character"
        escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        problems.append(
            ScenarioProblem(
                file,
                position,
                "",
                f"{what} U+{code:04X} is not allowed; inside double quotes write {escape}",
            )
        )
    return problems


class _Refused(Exception):
    """The document cannot be read further; ``mark`` is where."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark


@dataclass(slots=True)
class _Open:
    """A list or mapping being composed: its node, a key waiting for its value, its measures."""

    node: Any
    anchor: str | None
    key: Any = None
    values: int = 1
    height: int = 1


def _compose(loader: Any) -> Any:
    """The document's node graph, like PyYAML's composer but iterative and bounded.

    Aliases share the node they name. Every value counts towards MAX_VALUES as
    often as it would appear once aliases are expanded, so an alias bomb stops
    at the alias that passes the limit, long before any expansion happens.
    """
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # document start
    anchors: dict[str, Any] = {}
    measured: dict[int, tuple[int, int]] = {}  # anchored node id → (values, height) once closed
    stack: list[_Open] = []
    total = 0
    while True:
        event = loader.get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _Refused(event.start_mark, _TOO_DEEP)
            sequence = isinstance(event, yaml.SequenceStartEvent)
            kind = yaml.SequenceNode if sequence else yaml.MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
            _anchor(anchors, event, node)
            total += 1
            _check_total(total, event)
            stack.append(_Open(node, event.anchor))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            node, values, height = frame.node, frame.values, frame.height
            node.end_mark = event.end_mark
            if frame.anchor is not None:
                measured[id(node)] = (values, height)
        elif isinstance(event, yaml.AliasEvent):
            node = anchors.get(event.anchor)
            if node is None:
                raise _Refused(event.start_mark, f"alias *{event.anchor} names no anchor before it")
            if id(node) not in measured:
                raise _Refused(
                    event.start_mark,
                    f"alias *{event.anchor} is inside the value it names; "
                    "a value cannot contain itself",
                )
            values, height = measured[id(node)]
            if len(stack) + height > MAX_DEPTH:
                raise _Refused(event.start_mark, _TOO_DEEP)
            total += values
            _check_total(total, event, after_aliases=True)
        else:  # a scalar: the parser sends nothing else inside a document
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(
                tag, event.value, event.start_mark, event.end_mark, style=event.style
            )
            _anchor(anchors, event, node)
            values, height = 1, 0
            if event.anchor is not None:
                measured[id(node)] = (1, 0)
            total += 1
            _check_total(total, event)
        if not stack:
            break
        parent = stack[-1]
        parent.values += values
        parent.height = max(parent.height, height + 1)
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        raise _Refused(
            loader.get_event().start_mark,
            "not valid YAML or JSON: expected a single document in the stream "
            "but found another document",
        )
    return node


def _anchor(anchors: dict[str, Any], event: Any, node: Any) -> None:
    if event.anchor is None:
        return
    first = anchors.get(event.anchor)
    if first is not None:
        raise _Refused(
            event.start_mark,
            f"anchor &{event.anchor} is already defined at line {first.start_mark.line + 1}",
        )
    anchors[event.anchor] = node


def _check_total(total: int, event: Any, *, after_aliases: bool = False) -> None:
    if total > MAX_VALUES:
        where = " after expanding aliases" if after_aliases else ""
        raise _Refused(event.start_mark, f"more than {MAX_VALUES} values{where}, {_LIMIT}")


@dataclass(slots=True)
class _Converter:
    """Node graph → plain data, recording positions; aliases are expanded here (bounded)."""

    tree: SourceTree
    problems: list[ScenarioProblem]
    end: Position
    reported: set[int] = field(default_factory=set)

    def _at(self, mark: Any) -> Position:
        return min(_position(mark), self.end)

    def convert(self, node: Any, path: Path) -> Any:
        self.tree.values[path] = self._at(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path) if self._tag_ok(node, f"{_YAML}map", path) else None
        if isinstance(node, yaml.SequenceNode):
            if not self._tag_ok(node, f"{_YAML}seq", path):
                return None
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: Any, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, "", "a key must be a plain name, not a list or mapping")
                continue
            if not self._tag_ok(key_node, None, path):
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.tree.keys[child]
                self.problems.append(
                    ScenarioProblem(
                        self.tree.file,
                        self._at(key_node.start_mark),
                        "",
                        f"duplicate key {shown(key)} (first at line {first.line})",
                    )
                )
                continue
            self.tree.keys[child] = self._at(key_node.start_mark)
            result[key] = self.convert(value_node, child)
        return result

    def _scalar(self, node: Any, path: Path) -> Any:
        if node.tag in _KEPT_AS_WRITTEN:
            return node.value  # dates and the like stay as written
        if not self._tag_ok(node, None, path):
            return None
        if len(node.value) > MAX_NUMBER_CHARS and node.tag in _NUMBERS:
            self._report(
                node,
                format_path(path),
                f"number too long ({len(node.value)} characters; at most {MAX_NUMBER_CHARS})",
            )
            return None
        try:
            return _BUILDERS[node.tag](node)
        except (ValueError, IndexError, KeyError):
            short = "!!" + node.tag.removeprefix(_YAML)
            self._report(node, format_path(path), f"{shown(node.value)} is not a valid {short}")
            return None

    def _tag_ok(self, node: Any, expected: str | None, path: Path) -> bool:
        tag = node.tag
        if tag == expected or (expected is None and (tag in _BUILDERS or tag in _KEPT_AS_WRITTEN)):
            return True
        short = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
        self._report(
            node, format_path(path), f"unknown tag {shown(short)}; allowed: {_ALLOWED_TAGS}"
        )
        return False

    def _report(self, node: Any, path: str, message: str) -> None:
        """One problem per node, however many aliases repeat it."""
        if id(node) not in self.reported:
            self.reported.add(id(node))
            position = self._at(node.start_mark)
            self.problems.append(ScenarioProblem(self.tree.file, position, path, message))
