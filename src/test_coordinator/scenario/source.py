"""Parse YAML (or JSON, which YAML reads too) keeping the line and column of every key and value.

The result is plain data (dicts, lists, scalars) plus two maps from a key path
such as ``("steps", 2, "timeout")`` to a :class:`Position`: where the value
starts and, for mapping entries, where the key is. Mapping keys are kept as the
text written, so ``on:`` or ``yes:`` stay keys rather than becoming booleans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from test_coordinator.scenario.problems import (
    Position,
    ScenarioInvalid,
    ScenarioProblem,
    format_path,
)

Path = tuple[str | int, ...]


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
    return Position(mark.line + 1, mark.column + 1)


def parse_source(text: str, file: str) -> SourceTree:
    """Parse ``text``; raise ScenarioInvalid for syntax errors and duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = _position(mark) if mark is not None else Position(1, 1)
        what = " ".join(part for part in (exc.context, exc.problem) if part)
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
    tree.data = _convert(root, (), tree, problems, loader)
    if problems:
        raise ScenarioInvalid(problems)
    return tree


def _convert(
    node: yaml.Node,
    path: Path,
    tree: SourceTree,
    problems: list[ScenarioProblem],
    loader: yaml.SafeLoader,
) -> Any:
    tree.values[path] = _position(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    ScenarioProblem(
                        tree.file,
                        _position(key_node.start_mark),
                        "",
                        "a key must be a plain name, not a list or mapping",
                    )
                )
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = tree.keys[child]
                problems.append(
                    ScenarioProblem(
                        tree.file,
                        _position(key_node.start_mark),
                        "",
                        f"duplicate key {key!r} (first at line {first.line})",
                    )
                )
                continue
            tree.keys[child] = _position(key_node.start_mark)
            result[key] = _convert(value_node, child, tree, problems, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, index), tree, problems, loader)
            for index, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, str | int | float | bool | type(None)):
        return str(node.value)  # dates and other YAML types stay as written
    return value
