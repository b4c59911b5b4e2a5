"""YAML trees as the config reader needs them: ``${VAR}`` expansion, a node's line for
error messages, the bound on what aliases expand to, plain data, and the C parser's
resolver. Pure helpers over the nodes ruamel.yaml gives (no knowledge of the config's
keys); :mod:`aggregator.config` reads and validates with them."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.resolver import VersionedResolver

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# A config holds a few thousand nodes (a thousand sources); YAML aliases can make a file
# of a few hundred bytes stand for billions (an "alias bomb"), so expanded configs are
# refused beyond this many nodes, and ``${VAR}`` expansion visits each node once.
MAX_NODES = 200_000


def expand_env(node: Any, env: dict[str, str], errors: list[tuple[int, str, str]],
                path: str = "", found: list[tuple[str, str]] | None = None,
                seen: set[int] | None = None) -> Any:
    """Replace ``${VAR}`` in every string, in place; record unset variables, and in
    ``found`` the (dotted path, value) of each substitution from the environment.
    A node an alias repeats is expanded once (in place, so every use sees it)."""
    if isinstance(node, (dict, list)):  # ruamel's CommentedMap/Seq, or the fast path's plain ones
        seen = set() if seen is None else seen
        if id(node) in seen:
            return node
        seen.add(id(node))
    if isinstance(node, dict):
        for k in list(node.keys()):
            node[k] = expand_env(node[k], env, errors, f"{path}.{k}" if path else str(k), found, seen)
        return node
    if isinstance(node, list):
        for i in range(len(node)):
            node[i] = expand_env(node[i], env, errors, f"{path}[{i}]", found, seen)
        return node
    if isinstance(node, str) and "${" in node:
        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                if found is not None:
                    found.append((path, env[name]))
                return env[name]
            if default is not None:
                return default
            errors.append((-1, path, f"environment variable {name} is not set"))
            return ""
        return _ENV.sub(repl, node)
    return node


def line_of(root: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the YAML tree."""
    node, line = root, None
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    if line is None and hasattr(root, "lc"):
        line = (root.lc.line or 0) + 1
    return line


def dotted_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def env_errors_with_lines(root: Any, raw: list[tuple[int, str, str]], filename: str) -> list[str]:
    out = []
    for _, dotted, msg in raw:
        loc: list[Any] = []
        for m in re.finditer(r"([^.\[\]]+)|\[(\d+)\]", dotted):
            loc.append(int(m.group(2)) if m.group(2) is not None else m.group(1))
        out.append(f"{filename}:{line_of(root, tuple(loc))}: {dotted}: {msg}")
    return out


class OneVersionResolver(VersionedResolver):
    """ruamel's resolver, asking once per document which YAML version it reads. Its own
    asks for every scalar, through an attribute the C parser does not have (an exception
    caught each time): a third of reading a 1,000-source config. The C parser reads every
    document as YAML 1.2 (it ignores a ``%YAML`` directive), so the answer cannot change."""

    _resolvers: Any = None

    @property
    def versioned_resolver(self) -> Any:
        if self._resolvers is None:
            self._resolvers = VersionedResolver.versioned_resolver.fget(self)  # type: ignore[attr-defined]
        return self._resolvers


class TooBig(Exception):
    pass


def expanded_size(node: Any, memo: dict[int, int], active: set[int]) -> int:
    """How many values ``node`` stands for once its aliases are expanded, computed once
    per distinct node (an alias repeats a node, it does not copy it); a node that
    contains itself counts as too many."""
    if not isinstance(node, (dict, list)):
        return 1
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        return MAX_NODES + 1
    active.add(key)
    children = node.values() if isinstance(node, dict) else node
    size = 1 + sum(min(expanded_size(child, memo, active), MAX_NODES + 1) for child in children)
    active.discard(key)
    memo[key] = size
    return size


def plain_data(node: Any, budget: list[int] | None = None) -> Any:
    """YAML nodes as plain dicts, lists and scalars (string keys). With ``budget`` (a
    one-item list, decremented per node), raises :class:`TooBig` past that many nodes."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooBig
    if isinstance(node, dict):
        return {str(k): plain_data(v, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [plain_data(v, budget) for v in node]
    return node
