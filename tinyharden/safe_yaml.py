"""Reading YAML from untrusted files with bounded cost.

    >>> load_bounded("a: &x [1, 2]\\nb: *x\\n", source="r.yaml")[0]
    {'a': [1, 2], 'b': [1, 2]}

PyYAML's SafeLoader builds no arbitrary objects, but aliases let a 1 KB document
("billion laughs") describe a tree of billions of nodes that anything walking it (our
line-number index, pydantic) expands. The document is bounded before it is walked: its
size in bytes, its nesting depth, the number of aliases, and the number of nodes it has
once every alias is expanded (counted on the composed graph, in time linear in its size).
"""
from __future__ import annotations

from typing import Any

import yaml

from tinyharden.errors import UserError

MAX_BYTES = 1 << 20  # a recipe is a few KB; a MB is already absurd
MAX_DEPTH = 64
MAX_ALIASES = 256
MAX_EXPANDED_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses too deep a nesting or too many aliases while composing."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self._source = source
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise UserError(f"{self._source}: more than {MAX_ALIASES} YAML aliases (*name); "
                                "write the values out instead of repeating anchors")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise UserError(f"{self._source}: YAML nested deeper than {MAX_DEPTH} levels; flatten the document")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes in the tree `root` describes with every alias expanded; refuses cycles and bombs."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UserError(f"{source}: a YAML anchor contains an alias to itself; remove the recursive *alias")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise UserError(f"{source}: the YAML expands to more than {MAX_EXPANDED_NODES} values through its "
                            "aliases (an alias bomb?); write the document out without nested aliases")
        sizes[key] = total
        return total

    return size(root)


def _syntax_error(exc: yaml.YAMLError, source: str) -> UserError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark else source
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return UserError(f"{where}: {problem}; fix the YAML syntax (indentation, colons, quotes)")


def load_bounded(text: str, *, source: str) -> tuple[Any, dict[tuple, int]]:
    """The document in `text` and the line of every mapping key by its path; bounded cost.

    Raises a one-line `UserError` naming `source` for a syntax error or a document over
    the bounds (bytes, depth, aliases, expanded nodes).
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise UserError(f"{source}: larger than {MAX_BYTES // 1024} KB, too large for a YAML recipe; "
                        "keep data out of the recipe")
    loader = None
    try:
        loader = _BoundedLoader(text, source)  # the reader rejects control characters here
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _expanded_size(root, source)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, source) from None
    except RecursionError:
        raise UserError(f"{source}: YAML nested too deeply; flatten the document") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise UserError(f"{source}: unreadable YAML value ({str(exc)[:120]}); write a plain number or string") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, _key_lines(root)


def _key_lines(root: yaml.Node) -> dict[tuple, int]:
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def load_value(text: str, *, source: str) -> Any:
    """One YAML value from a command-line override (`key=VALUE`), bounded like a file.

    >>> load_value("[1, 2]", source="train.step_epochs")
    [1, 2]
    """
    return load_bounded(text, source=source)[0]


def read_yaml_file(path) -> Any:
    """The document in the YAML file `path`, bounded like `load_bounded`; unreadable files are a `UserError`.

    >>> read_yaml_file("recipes/quickstart.yaml")["name"]
    'quickstart'
    """
    return load_bounded_file(path)[0]


def load_bounded_file(path, *, what: str | None = None, fix: str = "") -> tuple[Any, dict[tuple, int]]:
    """(document, line of every key) of the YAML file `path`, bounded like `load_bounded`.

        data, lines = load_bounded_file("recipes/quickstart.yaml", what="recipe", fix="pass a YAML recipe")

    A missing file (when `what` names the kind of file) or an unreadable one is a one-line
    `UserError`; `fix` follows "not found".
    """
    from pathlib import Path

    path = Path(path)
    if what is not None and not path.is_file():
        raise UserError(f"{what} '{path}' not found; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if what is None:
            raise UserError(f"cannot read '{path}' ({type(exc).__name__}); pass a readable UTF-8 YAML file") from None
        raise UserError(f"cannot read {what} '{path}': {exc}") from None
    return load_bounded(text, source=str(path))


def parse_cli_value(raw: str, *, source: str) -> Any:
    """A `KEY=VALUE` value: YAML when it parses, else the raw string; bombs are still refused."""
    if not raw.strip():
        return None
    try:
        return load_value(raw, source=source)
    except UserError as exc:
        if "YAML syntax" not in str(exc):
            raise
        return raw
