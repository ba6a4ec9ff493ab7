"""What a loaded config keeps per job (issue 23: `runner serve` holds 10,000 jobs
for its whole life, so every object a job keeps is 10,000 objects).

These assert on structure (what is shared, what is not imported), never on a
number of bytes: bench/README.md ("Issue 23: memory per job") has the bytes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from runner.config import load_config
from runner.model import NO_RETRY

WriteConfig = Callable[..., Path]

MANY = """
defaults:
  interval: 1s
jobs:
  - {name: a, plugin: sleep, options: &zero {seconds: 0}}
  - {name: b, plugin: sleep, options: *zero}
  - {name: c, plugin: sleep, retries: 2, retry_delay: 3s}
  - {name: d, plugin: sleep, retries: 2, retry_delay: 3s}
  - {name: e, plugin: sleep, interval: 5s}
"""


def test_jobs_that_say_the_same_share_one_schedule_and_one_retry(
    write_config: WriteConfig,
) -> None:
    jobs = {job.name: job for job in load_config(write_config(MANY)).jobs}
    a, b, c, d, e = (jobs[name] for name in "abcde")
    assert a.schedule is b.schedule is c.schedule
    assert e.schedule is not a.schedule and e.schedule is not None
    assert e.schedule.spread() == 5.0
    assert a.retry is b.retry is NO_RETRY
    assert c.retry is d.retry
    assert (c.retry.retries, c.retry.delay) == (2, 3.0)
    # One string for the plugin's name, not one per job from the YAML.
    assert a.plugin_name is b.plugin_name is e.plugin_name == "sleep"


def test_a_job_keeps_no_dict_of_its_own(write_config: WriteConfig) -> None:
    job = load_config(write_config(MANY)).jobs[0]
    assert not hasattr(job, "__dict__")
    assert not hasattr(job.retry, "__dict__")


def test_loading_a_good_config_does_not_import_difflib(write_config: WriteConfig) -> None:
    # difflib is for the "did you mean" of a config with a mistake (test_config
    # covers those); a daemon keeps every module it imported until it stops.
    path = write_config(MANY)
    code = (
        "import sys\n"
        "import runner.cli\n"
        "from runner.config import load_config\n"
        "load_config(sys.argv[1])\n"
        "print(sorted(m for m in ('difflib',) if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr
