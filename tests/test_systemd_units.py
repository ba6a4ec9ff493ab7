"""The shipped systemd units: systemd's own checker, the exposure score, key settings.

No systemd needs to be running: ``systemd-analyze verify`` and ``systemd-analyze
security --offline=true`` read unit files. verify also checks that the
ExecStart/ExecReload binaries exist, so it runs on a copy whose
``/opt/runner/venv/bin/runner`` points at this environment's ``runner``; the
shipped files keep the production path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).parent.parent / "systemd"
SHIPPED_RUNNER = "/opt/runner/venv/bin/runner"
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not on PATH (Debian: apt-get install systemd)",
)

# (shipped file, name the copy is verified under): a template is verified as an instance.
UNITS = [
    pytest.param("runner.service", "runner.service", id="runner"),
    pytest.param("runner@.service", "runner@site-checks.service", id="runner@site-checks"),
]


def settings(unit_file: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value assigned, in order (unit files repeat keys)."""
    result: dict[str, list[str]] = {}
    section = ""
    for line in (SYSTEMD_DIR / unit_file).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{unit_file}: keep settings on one line: {line!r}"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{unit_file}: not a Key=value line: {line!r}"
        result.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return result


def verifiable_copy(unit_file: str, name: str, directory: Path) -> Path:
    """The unit with its binaries pointing at ones that exist here, saved as ``name``."""
    runner = Path(sys.executable).with_name("runner")
    assert runner.is_file(), f"{runner} missing: install runner into this environment"
    text = (SYSTEMD_DIR / unit_file).read_text()
    assert SHIPPED_RUNNER in text
    text = text.replace(SHIPPED_RUNNER, str(runner))
    kill = shutil.which("kill")
    if not Path("/bin/kill").exists() and kill is not None:
        text = text.replace("/bin/kill", kill)
    path = directory / name
    path.write_text(text)
    return path


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--no-pager", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("unit_file", "name"), UNITS)
def test_verify_is_silent(unit_file: str, name: str, tmp_path: Path) -> None:
    # verify exits 0 on an unknown key (a typo such as WatchdogSecs=) and only
    # prints a warning, so any output at all is a failure.
    proc = analyze("verify", verifiable_copy(unit_file, name, tmp_path))
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and not output, (
        f"systemd-analyze verify {name}: exit {proc.returncode}\n{output}"
    )


@pytest.mark.parametrize(("unit_file", "name"), UNITS)
def test_exposure_score(unit_file: str, name: str, tmp_path: Path) -> None:
    proc = analyze("security", "--offline=true", verifiable_copy(unit_file, name, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert found, f"no overall exposure level in:\n{proc.stdout}{proc.stderr}"
    score = float(found[1])
    flagged = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("✗"))
    assert score <= MAX_EXPOSURE, f"{name}: exposure {score} > {MAX_EXPOSURE}\n{flagged}"


@pytest.mark.parametrize(
    ("unit_file", "config"),
    [
        pytest.param("runner.service", "/etc/runner/runner.yaml", id="runner"),
        pytest.param("runner@.service", "/etc/runner/%i.yaml", id="runner@"),
    ],
)
def test_key_settings(unit_file: str, config: str) -> None:
    s = settings(unit_file)
    assert s["Service.Type"] == ["notify"]
    assert s["Service.NotifyAccess"] == ["main"]
    assert s["Service.ExecStart"] == [f"{SHIPPED_RUNNER} serve --log-format journal {config}"]
    assert s["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Service.WatchdogSec"] == ["30s"]
    assert s["Service.KillMode"] == ["control-group"]
    assert s["Service.Restart"] == ["on-failure"]
    assert s["Service.DynamicUser"] == ["yes"]
    assert s["Service.StandardOutput"] == ["journal"]
    assert s["Service.SyslogIdentifier"][0].startswith("runner")
    # sd_notify talks over a Unix datagram socket.
    assert "AF_UNIX" in s["Service.RestrictAddressFamilies"][0].split()
    # V8 (Chromium, Playwright's node driver) needs writable+executable memory.
    assert s.get("Service.MemoryDenyWriteExecute", ["no"]) == ["no"]
    # Chromium's zygote aborts when capset() fails, so no ~@privileged.
    assert not any("~@privileged" in v for v in s["Service.SystemCallFilter"])


def test_template_matches_plain_unit() -> None:
    """runner@.service is runner.service plus the instance name, nothing else."""
    plain = settings("runner.service")
    template = settings("runner@.service")
    for s in (plain, template):
        del s["Unit.Description"]
    normalized = {
        key: [
            v.replace("/etc/runner/%i.yaml", "/etc/runner/runner.yaml")
            .replace("runner-%i", "runner")
            .replace("runner@%i", "runner")
            for v in values
        ]
        for key, values in template.items()
    }
    assert normalized == plain
