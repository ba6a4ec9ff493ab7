"""The plugin line: runner's built-in plugins and notifiers, and the plugins of
this repository, import only what a third-party plugin may import, so each
could live in a distribution of its own without changing an import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]

#: The public API (docs/plugins.md) and the ground floor.
PUBLIC = (
    "runner.plugin",
    "runner.notifier",
    "runner.durations",
    "runner.resources",
    "runner.testing",
    "runner.paths",
    "runner.model",
    "runner.schedules",
    "runner.pings",
)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (TYPE_CHECKING and function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _allowed(module: str, own: str) -> bool:
    if module == "runner":  # for runner.__version__
        return True
    if not module.startswith("runner."):
        return True  # the standard library, other distributions, the plugin's own package
    return module in PUBLIC or module.startswith(tuple(f"{p}." for p in (*PUBLIC, own) if p))


def test_builtins_and_repository_plugins_import_only_the_public_api() -> None:
    files = [(p, "runner.builtins") for p in (ROOT / "src/runner/builtins").rglob("*.py")]
    files += [(p, "") for p in ROOT.glob("plugins/*/src/**/*.py")]
    assert len(files) > 20
    crossing = {
        (str(path.relative_to(ROOT)), module)
        for path, own in files
        for module in _imports(path)
        if not _allowed(module, own)
    }
    assert crossing == set(), "a plugin imports runner's internals: make what it needs public"
