"""The documentation, checked: the README and the site under docs/.

- Every YAML block that is a whole config (it has a top-level ``jobs:``)
  passes the validation ``runner check`` does. A block that is not a whole
  config must say so in an HTML comment on the line before it,
  ``<!-- fragment: why -->``; an unmarked block without ``jobs:`` fails, so
  no example is skipped silently. ``${NAME}`` in a block is given a
  placeholder value, as the environment would. The one exception: the
  plugin guide's ``# config.yaml`` names the guide's own demo plugins, and
  tests/test_plugin_guide.py checks it with them installed.
- ``mkdocs build --strict`` builds the site (every link and anchor
  resolves; every ``<!-- options: NAME -->`` names an installed plugin).
- The README stays at most 12 KB and keeps the two commands .ci/run relies on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.config import ConfigError, load_config
from runner.registry import NOTIFIERS, PLUGINS, Registry

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FRAGMENT = re.compile(r"<!-- fragment: .+ -->")
ENV = re.compile(r"(?<!\$)\$\{(\w+)")
#: Blocks another test checks (see the module docstring): (page, first line).
CHECKED_ELSEWHERE = {("docs/plugins.md", "# config.yaml")}
README_LIMIT = 12_000  # bytes


def yaml_blocks() -> list[tuple[str, int, str, bool]]:
    """(page, line, text, marked as a fragment) of every YAML block."""
    blocks = []
    for page in PAGES:
        source = page.read_text()
        for match in FENCE.finditer(source):
            if match.group(1) != "yaml":
                continue
            before = source[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            line = source.count("\n", 0, match.start()) + 1
            name = str(page.relative_to(ROOT))
            blocks.append((name, line, match.group(2), bool(FRAGMENT.fullmatch(before.strip()))))
    return blocks


BLOCKS = yaml_blocks()


def placeholder(name: str) -> str:
    """What the environment gives ``${NAME}`` in an example: Apprise URLs are
    checked when the config is read, so ``*_APPRISE_URL`` gets one."""
    if name.endswith("APPRISE_URL"):
        return f"json://127.0.0.1/docs-example-{name.lower()}"
    return f"docs-example-{name.lower()}"


def test_the_docs_have_yaml_blocks() -> None:
    assert len(BLOCKS) > 15


@pytest.mark.parametrize(
    ("page", "line", "text", "fragment"), BLOCKS, ids=[f"{p}:{n}" for p, n, _, _ in BLOCKS]
)
def test_every_config_in_the_docs_passes_runner_check(
    page: str,
    line: int,
    text: str,
    fragment: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if (page, text.split("\n", 1)[0].strip()) in CHECKED_ELSEWHERE:
        pytest.skip("checked by tests/test_plugin_guide.py with the guide's plugins installed")
    document = yaml.safe_load(text)
    whole = isinstance(document, dict) and "jobs" in document
    if fragment:
        assert not whole, f"{page}:{line} is a whole config: drop its fragment comment"
        return
    assert whole, (
        f"{page}:{line}: a YAML block without jobs: must be marked with "
        "<!-- fragment: why --> on the line before it"
    )
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.chdir(ROOT)  # configs/site and other relative paths, as from a clone
    environ = {name: placeholder(name) for name in ENV.findall(text)}
    try:
        load_config(config, environ={**os.environ, **environ})
    except ConfigError as exc:
        pytest.fail(f"{page}:{line}: runner check fails:\n{exc}")


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The options tables were generated from the models, not left as markers.
    page = (site / "builtins" / "http-status" / "index.html").read_text()
    assert "<code>max_body_bytes</code>" in page
    assert "<!-- options:" not in page


def test_every_built_in_plugin_and_notifier_has_its_options_table() -> None:
    markers = set()
    for page in DOCS.rglob("*.md"):
        markers.update(re.findall(r"^<!-- options: ([\w.-]+) -->$", page.read_text(), re.M))
    for group in (PLUGINS, NOTIFIERS):
        for entry in Registry.discover(group):
            if entry.distribution == "runner-daemon":
                assert entry.name in markers, f"no <!-- options: {entry.name} --> in docs/"


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_the_readme_keeps_the_two_commands_ci_runs() -> None:
    """The README promises two commands on a fresh machine; .ci/run runs the second."""
    readme = README.read_text()
    assert "scripts/dev.sh serve" in readme
    assert "scripts/dev.sh test" in readme
    assert "\nscripts/dev.sh test\n" in (ROOT / ".ci" / "run").read_text()
