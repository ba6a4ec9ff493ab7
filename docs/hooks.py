"""MkDocs hook: ``<!-- options: NAME -->`` becomes the options table of the
installed plugin or notifier NAME, built from its options model by
:func:`runner.docs_tables.options_table` (the JSON Schema ``runner schema``
gives editors), so no options table in these pages is written by hand.

An unknown NAME, or one that names both a plugin and a notifier, stops the
build. mkdocs.yml lists this file under ``hooks:``; it is not a page.
"""

from __future__ import annotations

import re
from typing import Any

from runner.docs_tables import options_table
from runner.registry import NOTIFIERS, PLUGINS, Registry

MARKER = re.compile(r"^<!-- options: ([\w.-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    registries = [Registry.discover(PLUGINS), Registry.discover(NOTIFIERS)]

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        found = [r for r in registries if name in r.names()]
        if len(found) != 1:
            where = "both a plugin and a notifier" if found else "no installed plugin or notifier"
            raise ValueError(f"{page.file.src_path}: <!-- options: {name} --> names {where}")
        return options_table(found[0].load(name).Options)

    return MARKER.sub(table, markdown)
