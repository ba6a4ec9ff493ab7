"""Reading a YAML config that may be hostile: bounded, with a place for every refusal.

A config is text someone edits at 3 a.m., or a file an attacker got to write.
Either way, reading it must end quickly, in bounded memory, with an error
that names a line and column, never a traceback. This module reads the bytes
and composes the YAML document itself (over libyaml's event parser when
PyYAML has it), so every bound is checked while the document is built, before
anything is expanded:

* the file is at most :data:`MAX_BYTES`;
* it is UTF-8 (a BOM is allowed) without NUL, control characters or the
  invisible bidirectional controls that make text read differently from how
  it parses ("Trojan Source");
* collections nest at most :data:`MAX_DEPTH` levels;
* the document holds at most :data:`MAX_NODES` values, counting every value
  an alias (``*name``) repeats each time it is used, and aliases repeat at
  most :data:`MAX_ALIAS_NODES` of them in all: a "billion laughs" of a few
  hundred bytes is refused at the alias that crosses the bound;
* an alias cannot refer to the collection it is in;
* scalars that cannot be built (an integer of 5,000 digits, the 45th of a
  month) are refused with their place.

Only the safe constructor is used: no tags make Python objects.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "SourceError",
    "compose",
    "decode",
    "load",
    "read_source",
]

#: The largest config file read, in bytes (a giant string costs little; values are
#: bounded by MAX_NODES).
MAX_BYTES = 8 * 1024 * 1024
#: Collections nested deeper than this are refused (a config needs about six).
MAX_DEPTH = 64
#: Values in the whole document, aliases expanded (about 30,000 jobs): bounds time
#: and memory.
MAX_NODES = 500_000
#: Values that aliases may repeat, in all (``<<: *defaults`` in each of 10,000
#: jobs repeats 10 values each and fits).
MAX_ALIAS_NODES = 100_000

# libyaml's parser when PyYAML was built with it: the same events and marks,
# scanned about ten times faster than the pure-Python one. CBaseLoader is its
# public name (libyaml's CParser plus the base constructor and resolver, unused).
_Parser: Any
try:
    from yaml import CBaseLoader as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None

# Everything YAML 1.1 calls printable, minus the bidirectional embedding,
# override and isolate controls (U+202A-U+202E, U+2066-U+2069). Compiled when
# a config first holds a non-ASCII character: its ranges cost 3 ms to compile,
# a noticeable part of a daemon's start; ASCII text is checked by the second.
_NOT_PRINTABLE_PATTERN = (
    "[^\t\n\r\x20-\x7e\x85\xa0-\u2029\u202f-\u2065\u206a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_NOT_PRINTABLE_ASCII = re.compile("[^\t\n\r\x20-\x7e]")


@functools.cache
def _not_printable() -> re.Pattern[str]:
    return re.compile(_NOT_PRINTABLE_PATTERN)


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SourceError(ValueError):
    """A config that cannot be read: what, and where (1-based line and column)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else ""
        if self.line and self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}" if where else self.message


# --------------------------------------------------------------------------- bytes to text


def read_source(path: Path) -> str:
    """The text of the config at ``path``, checked by :func:`decode`.

    Raises:
        OSError: the file cannot be read.
        SourceError: it is too large or not clean UTF-8 text.
    """
    with path.open("rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise SourceError(
            f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB; "
            "a config this large is refused (split the jobs over several daemons)"
        )
    return decode(raw)


def decode(raw: bytes) -> str:
    """UTF-8 text without NUL, control characters or bidirectional controls."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("the file is UTF-16 text; save it as UTF-8", 1, 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[start : exc.start].decode("utf-8", "replace")) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise SourceError(
            f"byte 0x{byte} is not UTF-8 text; save the file as UTF-8 "
            "(Latin-1 and Windows-1252 are not read)",
            line,
            column,
        ) from None
    bad = (_NOT_PRINTABLE_ASCII if text.isascii() else _not_printable()).search(text)
    if bad is not None:
        line, column = _place(text, bad.start())
        char = bad.group()
        if char in _BIDI:
            message = (
                f"an invisible bidirectional control character (U+{ord(char):04X}) is not "
                "allowed in a config: it makes the text read differently from how it is "
                "parsed; remove it"
            )
        else:
            what = "a NUL byte" if char == "\0" else "a control character"
            message = (
                f"{what} (U+{ord(char):04X}) is not allowed in a config; remove it "
                "(write \\t, \\x1b, ... inside a double-quoted string if it is meant)"
            )
        raise SourceError(message, line, column)
    return text


def _place(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --------------------------------------------------------------------------- text to nodes


def _marked(message: str, mark: Any) -> SourceError:
    return SourceError(message, mark.line + 1, mark.column + 1)


def compose(text: str) -> Node | None:
    """The YAML document in ``text`` as a node graph, every bound checked while composing.

    Aliases stay shared (the graph is not expanded), so a bomb costs no more
    than its text before it is refused.

    Raises:
        SourceError: a bound is crossed, or the text is not one YAML document.
    """
    parser = _Parser(text) if _Parser is not None else yaml.SafeLoader(text)
    try:
        return _Composer(parser).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit, met while scanning ahead
            problem = f"collections nest deeper than {MAX_DEPTH} levels ({problem})"
        if mark is None:
            raise SourceError(f"invalid YAML: {problem}") from None
        raise _marked(f"invalid YAML: {problem}", mark) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"invalid YAML: {exc}") from None
    finally:
        dispose = getattr(parser, "dispose", None)
        if dispose is not None:
            dispose()


class _Composer:
    """An iterative composer (no recursion, whatever the depth) that counts as it goes."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.resolver = yaml.resolver.Resolver()
        self.anchors: dict[str, Node] = {}
        #: Expanded size and height of each finished collection with an anchor.
        self.sizes: dict[int, tuple[int, int]] = {}
        self.nodes = 0
        self.repeated = 0

    def document(self) -> Node | None:
        get = self.parser.get_event
        event = get()
        if isinstance(event, StreamStartEvent):
            event = get()
        if isinstance(event, StreamEndEvent):
            return None
        if not isinstance(event, DocumentStartEvent):
            raise _marked("invalid YAML: expected a document", event.start_mark)
        root = self.node()
        get()  # DocumentEnd
        event = get()
        if not isinstance(event, StreamEndEvent):
            raise _marked(
                "a config is one YAML document; remove the second '---' and what follows it",
                event.start_mark,
            )
        return root

    def count(self, size: int, mark: Any, alias: str | None = None) -> None:
        self.nodes += size
        if alias is not None:
            self.repeated += size
            if self.repeated > MAX_ALIAS_NODES:
                raise _marked(
                    f"alias *{alias} repeats {size:,} values, and aliases may repeat at most "
                    f"{MAX_ALIAS_NODES:,} in all (this looks like a 'billion laughs' bomb); "
                    "write the values out instead",
                    mark,
                )
        if self.nodes > MAX_NODES:
            raise _marked(
                f"the document holds more than {MAX_NODES:,} values (aliases expanded); "
                "split the config",
                mark,
            )

    def node(self) -> Node:
        """Compose the node whose first event is next, with everything inside it."""
        get = self.parser.get_event
        resolve: Any = self.resolver.resolve
        # Open collections: (node, anchor, nodes counted when it opened, height so far).
        stack: list[list[Any]] = []
        pending_key: list[Node | None] = []
        while True:
            event = get()
            kind = type(event)
            node: Node
            height = 0
            if kind is ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(ScalarNode, event.value, event.implicit)
                node = ScalarNode(
                    tag, event.value, event.start_mark, event.end_mark, style=event.style
                )
                self.count(1, event.start_mark)
                self.anchor(event, node)
            elif kind is AliasEvent:
                target = self.anchors.get(event.anchor)
                if target is None:
                    raise _marked(
                        f"invalid YAML: alias *{event.anchor} is not defined", event.start_mark
                    )
                if isinstance(target, ScalarNode):
                    size = 1
                else:
                    known = self.sizes.get(id(target))
                    if known is None:
                        raise _marked(
                            f"alias *{event.anchor} refers to the collection it is in",
                            event.start_mark,
                        )
                    size, height = known
                if len(stack) + height > MAX_DEPTH:
                    raise _marked(
                        f"alias *{event.anchor} nests collections deeper than {MAX_DEPTH} levels",
                        event.start_mark,
                    )
                self.count(size, event.start_mark, alias=event.anchor)
                node = target
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _marked(
                        f"collections nest deeper than {MAX_DEPTH} levels; a config needs "
                        "far fewer",
                        event.start_mark,
                    )
                node_class = SequenceNode if kind is SequenceStartEvent else MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(node_class, None, event.implicit)
                collection = node_class(
                    tag, [], event.start_mark, None, flow_style=event.flow_style
                )
                self.count(1, event.start_mark)
                self.anchor(event, collection)
                stack.append([collection, event.anchor, self.nodes - 1, 0])
                pending_key.append(None)
                continue
            elif kind is SequenceEndEvent or kind is MappingEndEvent:
                collection, anchor, first, height = stack.pop()
                pending_key.pop()
                collection.end_mark = event.end_mark
                height += 1
                if anchor is not None:
                    self.sizes[id(collection)] = (self.nodes - first, height)
                node = collection
            else:  # pragma: no cover - the parser yields nothing else inside a document
                raise _marked(f"invalid YAML: unexpected {kind.__name__}", event.start_mark)
            if not stack:
                return node
            parent = stack[-1]
            parent[3] = max(parent[3], height)
            container = parent[0]
            if isinstance(container, SequenceNode):
                container.value.append(node)
            elif pending_key[-1] is None:
                pending_key[-1] = node
            else:
                container.value.append((pending_key[-1], node))
                pending_key[-1] = None

    def anchor(self, event: Any, node: Node) -> None:
        if event.anchor is not None:
            # A redefined anchor is allowed by YAML 1.1; later aliases mean the new one.
            self.anchors[event.anchor] = node


# --------------------------------------------------------------------------- nodes to data


class _Constructor(yaml.constructor.SafeConstructor):
    """The safe constructor; a scalar that cannot be built is refused with its place."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            reason = str(exc).partition("; use sys.set_int_max_str_digits")[0]
            what = node.tag.rpartition(":")[2]
            raise _marked(f"invalid {what}: {reason}", node.start_mark) from None


def load(node: Node) -> Any:
    """The Python data of a composed document (aliases are shared objects)."""
    constructor = _Constructor()
    try:
        return constructor.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise (_marked(problem, mark) if mark is not None else SourceError(problem)) from None
