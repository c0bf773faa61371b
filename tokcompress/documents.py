"""The one reader of YAML/JSON documents (specs, suites, profile metadata): safe, strict and bounded.

Every file the library reads as a document goes through `read_document` (or `parse_document` for
text already in memory), so the same rules hold everywhere:

* **plain data only**: YAML is loaded by a `yaml.SafeLoader` subclass; a tag that would build an
  object (``!!python/object/apply:os.system``) is an error naming the file and line, never a call.
* **no silent overrides**: a mapping key given twice is an error naming the key, its line and
  column, and where it first appeared (YAML and JSON alike; ``<<`` merges may still be overridden).
* **bounded**: files above `MAX_BYTES` are refused before parsing; YAML aliases are counted while
  the document is composed (at most `MAX_ALIASES` of them, expanding to at most `MAX_NODES` values,
  so a "billion laughs" document fails in milliseconds); nesting deeper than `MAX_DEPTH` is refused
  before any recursion can overflow; integers longer than Python's digit limit are errors, not crashes.
* **strict JSON**: ``NaN``, ``Infinity`` and numbers that overflow to infinity are refused.
* **readable errors**: every message names the file and the position (line and column, or the byte
  offset of a non-UTF-8 byte) and echoes at most `MAX_ECHO` characters of the input.
"""

from __future__ import annotations

import json
import math
import os
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import DocumentError, TokcompressError, shorten

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ECHO",
    "MAX_NODES",
    "DocumentError",
    "parse_document",
    "read_document",
]

MAX_BYTES = 1 << 20
"""Largest document read (1 MiB). Specs and suites are a few KB; pure-Python YAML parses ~200 KB/s."""
MAX_DEPTH = 64
"""Deepest nesting of mappings/lists; real documents use fewer than 10 levels."""
MAX_ALIASES = 256
"""Most YAML aliases (``*name``) in one document."""
MAX_NODES = 100_000
"""Most values (scalars, lists, mappings) a YAML document may hold once every alias is expanded."""
MAX_ECHO = 200
"""Most characters of the input any error message repeats."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _problem(mark: Any, message: str) -> ComposerError:
    return ComposerError(None, None, message, mark)


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that counts as it composes: depth, aliases, expanded size, duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._values = 0  # values composed so far, aliases counted at their expanded size

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _problem(mark, f"more than {MAX_ALIASES} aliases (limit MAX_ALIASES)")
            node = super().compose_node(parent, index)
            if not hasattr(node, "_tc_size"):
                raise _problem(mark, "alias refers to a collection that contains it (a recursive structure)")
            self._count(node._tc_size, mark)
            if self._depth + node._tc_height > MAX_DEPTH:
                raise _problem(mark, f"alias expands to nesting deeper than {MAX_DEPTH} levels (limit MAX_DEPTH)")
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _problem(mark, f"nested deeper than {MAX_DEPTH} levels (limit MAX_DEPTH)")
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, mark)
        children = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else (
            node.value if isinstance(node, SequenceNode) else ())
        node._tc_size = 1 + sum(c._tc_size for c in children)
        node._tc_height = 1 + max((c._tc_height for c in children), default=0)
        return node

    def _count(self, size: int, mark: Any) -> None:
        self._values += size
        if self._values > MAX_NODES:
            raise _problem(
                mark, f"more than {MAX_NODES} values once aliases are expanded (limit MAX_NODES; an alias bomb?)"
            )

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # a list/mapping key is unhashable; the constructor reports it
            key = "<<" if key_node.tag == _MERGE_TAG else self.construct_object(key_node)
            try:
                first = seen.get(key)
            except TypeError:  # not hashable: the constructor reports it
                continue
            if first is None:
                seen[key] = key_node
            elif first is key_node:  # an alias used twice as a key: the same node, positioned at its anchor
                raise _problem(node.start_mark, f"duplicate key {shorten(key_node.value)} in this mapping "
                                                "(the same alias used twice as a key)")
            else:
                same = "" if first.value == key_node.value else f" as {shorten(first.value)}"
                raise _problem(
                    key_node.start_mark,
                    f"duplicate key {shorten(key_node.value)} (first{same} at line {first.start_mark.line + 1}, "
                    f"column {first.start_mark.column + 1}); a key may appear once per mapping",
                )
        return node

    def construct_undefined(self, node: Any) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConstructorError(
            None, None,
            f"tag {shorten(tag)} is not allowed: documents hold plain data only "
            "(mappings, lists, strings, numbers, booleans, null)",
            node.start_mark,
        )

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:  # more digits than sys.get_int_max_str_digits()
            raise ConstructorError(None, None, f"integer cannot be read: {shorten(str(exc), quote=False)}",
                                   node.start_mark) from None


_SafeLoader.add_constructor("tag:yaml.org,2002:int", _SafeLoader.construct_yaml_int)
_SafeLoader.add_constructor(None, _SafeLoader.construct_undefined)


# -- JSON ----------------------------------------------------------------------------------
# A string, possibly unterminated: possessive and anchored at the end, so it never backtracks and a
# scan never restarts inside a string (which would make a file of escaped quotes quadratic).
_STRING = r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)'
_JSON_STRING = re.compile(_STRING, re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_OR_STRING = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
_WS = re.compile(r"[ \t\n\r]*")


class _JSONProblem(ValueError):
    """Raised inside json.loads hooks; located afterwards by `_locate_json_problem`."""


def _refuse_constant(name: str) -> Any:
    raise _JSONProblem(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JSONProblem(text)
    return value


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _JSONProblem("duplicate")
    return out


def _json_depth_offset(text: str) -> int | None:
    """Offset of the first bracket nested deeper than `MAX_DEPTH`, or None (brackets in strings ignored)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets or max(accumulate(1 if c in "[{" else -1 for c in brackets)) <= MAX_DEPTH:
        return None
    depth = 0
    for match in _BRACKET_OR_STRING.finditer(text):
        c = match.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif c in "]}":
            depth -= 1
    return None  # pragma: no cover - the fast count above said otherwise


def _locate_json_problem(text: str) -> tuple[int, str] | None:
    """(offset, message) of the first duplicate key or non-finite number in `text` (parsed fine otherwise)."""
    plain = json.JSONDecoder(parse_constant=float)
    scan = plain.scan_once

    def value(idx: int) -> tuple[int, str] | int:
        idx = _WS.match(text, idx).end()
        char = text[idx: idx + 1]
        if char == "{":
            seen: dict[str, int] = {}
            idx = _WS.match(text, idx + 1).end()
            if text[idx: idx + 1] == "}":
                return idx + 1
            while True:
                idx = _WS.match(text, idx).end()
                key, end = json.decoder.scanstring(text, idx + 1)
                if key in seen:
                    line, col = _line_col(text, seen[key])
                    return idx, f"duplicate key {shorten(key)} (first at line {line}, column {col}); a key may appear once per mapping"
                seen[key] = idx
                idx = _WS.match(text, end).end() + 1  # past ':'
                found = value(idx)
                if isinstance(found, tuple):
                    return found
                idx = _WS.match(text, found).end()
                if text[idx] == "}":
                    return idx + 1
                idx += 1  # past ','
        if char == "[":
            idx = _WS.match(text, idx + 1).end()
            if text[idx: idx + 1] == "]":
                return idx + 1
            while True:
                found = value(idx)
                if isinstance(found, tuple):
                    return found
                idx = _WS.match(text, found).end()
                if text[idx] == "]":
                    return idx + 1
                idx += 1
        obj, end = scan(text, idx)
        if isinstance(obj, float) and not math.isfinite(obj):
            return idx, f"{shorten(text[idx:end], quote=False)} is not a JSON number (JSON has no NaN or Infinity)"
        return end

    found = value(0)
    return found if isinstance(found, tuple) else None


def _parse_json(text: str) -> Any:
    offset = _json_depth_offset(text)
    if offset is not None:
        raise _Located(offset, f"nested deeper than {MAX_DEPTH} levels (limit MAX_DEPTH)")
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_refuse_constant,
                          parse_float=_finite_float)
    except _JSONProblem:
        located = _locate_json_problem(text)
        if located is None:  # pragma: no cover - the hooks and the walk disagree
            raise _Located(0, "duplicate key or non-finite number") from None
        raise _Located(*located) from None
    except json.JSONDecodeError as exc:
        raise _Located(exc.pos, exc.msg) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer with more digits than Python converts
        raise _Located(None, shorten(str(exc), quote=False)) from None


class _Located(Exception):
    def __init__(self, offset: int | None, message: str) -> None:
        super().__init__(message)
        self.offset, self.message = offset, message


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _yaml_message(exc: yaml.YAMLError, text: str) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return where + shorten(" ".join(parts) or type(exc).__name__, limit=2 * MAX_ECHO, quote=False)
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _line_col(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or b"\0")
        return f"line {line}, column {col}: character U+{char:04X} is not allowed in YAML ({exc.reason})"
    return shorten(str(exc), quote=False)  # pragma: no cover - every YAMLError is one of the above


# -- public ---------------------------------------------------------------------------------
def parse_document(
    text: str, origin: str, suffix: str, what: str = "document", error: type[TokcompressError] = DocumentError
) -> Any:
    """The data in `text`: JSON when `suffix` is ``.json``, else YAML; `error` (a `TokcompressError`
    subclass, default `DocumentError`) names ``what origin`` and the position of any problem."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise error(f"{what} {origin} is too large: {size} bytes (limit MAX_BYTES = {MAX_BYTES} bytes)")
    if text.startswith("\ufeff"):
        text = text[1:]
    if suffix.lower() == ".json":
        try:
            return _parse_json(text)
        except _Located as exc:
            where = "" if exc.offset is None else "line {}, column {}: ".format(*_line_col(text, exc.offset))
            raise error(f"{what} {origin} is not valid JSON: {where}{exc.message}") from None
    loader = None
    try:
        loader = _SafeLoader(text)  # the reader refuses control characters here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise error(f"{what} {origin} is not valid YAML: {_yaml_message(exc, text)}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting long before
        raise error(f"{what} {origin} is not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_document(
    path: "str | os.PathLike[str]", what: str = "document", error: type[TokcompressError] = DocumentError
) -> Any:
    """The data in the YAML/JSON file `path` (JSON if it ends in ``.json``), read under the module's rules.

    Errors are `error` instances (default `DocumentError`) whose message starts ``{what} {path}``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                try:
                    size = f"{os.fstat(handle.fileno()).st_size} bytes"
                except OSError:  # pragma: no cover
                    size = f"more than {MAX_BYTES} bytes"
                raise error(f"{what} {path} is too large: {size} (limit MAX_BYTES = {MAX_BYTES} bytes)")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{what} {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}, column {col}); save the file as UTF-8"
        ) from None
    return parse_document(text, str(path), path.suffix, what=what, error=error)
