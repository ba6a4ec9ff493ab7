"""A config's YAML, with the line of every key and item and the keys written twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner import yaml_source

__all__ = ["Document", "PathTuple", "parse_document", "read_document"]

#: A place in a document: the keys and list indexes from its root,
#: such as ``("jobs", 2, "options", "url")``.
PathTuple = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """A parsed config file, and where in the file each of its values is."""

    data: Any
    #: The 1-based line of each place in the document.
    lines: dict[PathTuple, int]
    #: ``(parent, line, key)`` of each key its mapping holds twice.
    duplicates: list[tuple[PathTuple, int, str]]

    def line_of(self, path: PathTuple) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def read_document(path: Path) -> Document:
    """Read and parse a config file.

    Raises:
        OSError: the file cannot be read.
        SourceError: the YAML is invalid or crosses a bound of :mod:`runner.yaml_source`.
    """
    return parse_document(yaml_source.read_source(path))


def parse_document(text: str) -> Document:
    """Parse safely, and map each path in the document to its 1-based line.

    Raises:
        SourceError: the YAML is invalid or crosses a bound of :mod:`runner.yaml_source`.
    """
    node = yaml_source.compose(text)
    data = yaml_source.load(node) if node is not None else None
    lines: dict[PathTuple, int] = {}
    duplicates: list[tuple[PathTuple, int, str]] = []

    def walk(n: yaml.Node, path: PathTuple) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in n.value:
                key = str(key_node.value)
                if key in seen:
                    duplicates.append((path, key_node.start_mark.line + 1, key))
                seen.add(key)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return Document(data, lines, duplicates)
