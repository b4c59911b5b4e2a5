"""Data flows one way: no module imports a later stage (docs/architecture.md).

Every import counts, at module level or inside a function (except under TYPE_CHECKING,
which only names types)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

# Earlier layers first; a module may import its own layer and earlier ones.
LAYERS: list[set[str]] = [
    {"aggregator", "aggregator.__init__", "aggregator.models", "aggregator.config", "aggregator.configcheck",
     "aggregator.yamltree", "aggregator.exceptions",
     "aggregator.urls", "aggregator.html_text", "aggregator.redaction", "aggregator.progress",
     "aggregator.language", "aggregator._compat", "aggregator.answers"},
    {"aggregator.sources"},
    {"aggregator.store"},
    {"aggregator.citing", "aggregator.entryview"},
    {"aggregator.translating"},
    {"aggregator.publishing"},
    {"aggregator.running", "aggregator.app"},  # the front door runs the stages; the daemon holds one
    {"aggregator.demo"},  # the sample served on loopback, one cycle through the front door
    {"aggregator.cli", "aggregator.__main__"},
]


def _layer(module: str) -> int:
    best = -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if module == n or module.startswith(n + "."):
                best = i if n != "aggregator" else max(best, i)
    # "aggregator.X" not listed: the first-layer package root matched only "aggregator"
    return best


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip |= {id(n) for n in ast.walk(sub)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aggregator"):
            if node.module == "aggregator":
                out += [(node.lineno, f"aggregator.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("aggregator")]
    return out


def test_no_stage_imports_a_later_one() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        mine = _layer(module)
        assert mine >= 0, f"{module} is in no layer: add it to LAYERS"
        for line, imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            theirs = _layer(imported)
            if theirs > mine and imported not in ("aggregator.__version__", "aggregator.USER_AGENT",
                                                   "aggregator.PROJECT_URL", "aggregator._compat"):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {imported}")
    assert not problems, "\n".join(problems)
