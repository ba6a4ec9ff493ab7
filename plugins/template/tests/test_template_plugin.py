"""Tests for the example check. run_check validates the options and runs the
check once, the way the daemon does, and returns the Result it would log."""

from __future__ import annotations

import os
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.plugin import Status
from runner.testing import run_check
from runner_plugin_template import FileAge


def test_registered_under_its_entry_point() -> None:
    # Fails after a rename that missed pyproject.toml (or before `pip install -e .`).
    (entry,) = entry_points(group="runner.plugins", name="example-check")
    assert entry.load() is FileAge


async def test_fresh_file_is_ok(tmp_path: Path) -> None:
    backup = tmp_path / "backup.tar"
    backup.write_bytes(b"data")

    result = await run_check(FileAge, {"path": str(backup), "max_age": 60})

    assert result.status is Status.OK
    assert result.fields["age_s"] < 60
    assert result.message == f"{backup} is {result.fields['age_s']}s old"


async def test_old_file_fails(tmp_path: Path) -> None:
    backup = tmp_path / "backup.tar"
    backup.write_bytes(b"data")
    an_hour_ago = time.time() - 3600
    os.utime(backup, (an_hour_ago, an_hour_ago))

    result = await run_check(FileAge, {"path": str(backup), "max_age": 60})

    assert result.status is Status.FAIL
    assert result.message is not None and result.message.endswith("old, more than 60s")
    assert 3600 <= result.fields["age_s"] < 3700


async def test_missing_file_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    result = await run_check(FileAge, {"path": str(missing), "max_age": 60})

    assert result.status is Status.FAIL
    assert result.message == f"{missing} does not exist"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"path": "/tmp/x"}, id="no-max-age"),
        pytest.param({"path": "/tmp/x", "max_age": 0}, id="max-age-0"),
        pytest.param({"path": "/tmp/x", "max_age": 60, "maxage": 1}, id="unknown-key"),
    ],
)
def test_invalid_options_are_rejected(options: dict[str, object]) -> None:
    # The daemon reports these as config errors (file, line, job, field) at start.
    with pytest.raises(ValidationError):
        FileAge.Options.model_validate(options)
