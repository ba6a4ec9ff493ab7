"""A minimal runner plugin: the ``file-age`` check, registered as ``example-check``.

Is the nightly backup there, and was it written in the last day? Copy this
package to start your own plugin; everything a plugin imports from runner
is in ``runner.plugin``.
"""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import Field

from runner.plugin import Check, Options, Result, RunContext


class FileAgeOptions(Options):
    # A job's `options:` are validated by this model before the daemon starts;
    # Options rejects unknown keys. `runner plugins -v` shows each description.
    path: str = Field(min_length=1, description="The file to check.")
    max_age: int = Field(gt=0, description="Fail when the file is older than this, in seconds.")


class FileAge(Check[FileAgeOptions]):
    """Fails when a file is missing or was last modified more than max_age seconds ago."""

    Options = FileAgeOptions  # the docstring's first line is what `runner plugins` shows

    async def run(self, ctx: RunContext) -> Result:
        path, max_age = self.options.path, self.options.max_age
        try:
            # Never block the event loop: stat() can hang on a network filesystem.
            stat = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:
            return Result.fail(f"{path} does not exist", path=path)
        # Anything else raised (permission denied) becomes an `error` result.
        age_s = round(time.time() - stat.st_mtime, 1)
        if age_s > max_age:
            return Result.fail(
                f"{path} is {age_s}s old, more than {max_age}s", path=path, age_s=age_s
            )
        return Result.ok(f"{path} is {age_s}s old", path=path, age_s=age_s)
