"""Regular expressions in plugin options: checked when the config is loaded.

An option that holds a regular expression is declared as :data:`Regex`
(``expect: Regex | None = Field(...)``): a string that must compile, so a
bad pattern is a config error naming the job and the field, never a failed
run. The option keeps its text (the schema, ``runner plugins`` and a
reload's comparison see a string); the check compiles it once.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["Regex", "compile_regex"]


def compile_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, or a ValueError that says why it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def _compiles(pattern: str) -> str:
    compile_regex(pattern)
    return pattern


#: An option's type for a regular expression (Python syntax): a string that compiles.
Regex = Annotated[str, AfterValidator(_compiles)]
