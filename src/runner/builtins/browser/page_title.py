"""The ``page-title`` check: load a page in a real browser and compare its title.

The browser, the fresh context per run and everything a run reports besides
the title (diagnostics, page metrics, screenshots on failure) come from
:mod:`runner.builtins.browser.session`, shared with ``browser-steps``.

Run ``python -m runner.builtins.browser.page_title --find-browser`` to see which
Chromium the check would use.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator, model_validator

from runner.builtins._regex import Regex
from runner.builtins.browser.session import (
    BROWSER_PAGES,
    CHROMIUM_ARGS,
    MAX_OPEN_PAGES,
    BrowserLaunchError,
    BrowserNotFoundError,
    BrowserOptions,
    BrowserRun,
    find_chromium,
    run_in_browser,
    short_error,
    unresolved_fields,
)
from runner.plugin import Check, Result, RunContext, Status

__all__ = [
    "CHROMIUM_ARGS",
    "MAX_OPEN_PAGES",
    "BrowserLaunchError",
    "BrowserNotFoundError",
    "PageTitle",
    "PageTitleOptions",
    "find_chromium",
]


class PageTitleOptions(BrowserOptions):
    url: str = Field(description="The http:// or https:// URL to load.")
    expect_title: str | None = Field(
        default=None,
        description="The exact title the page must have. Give this or expect_title_regex, "
        "not both; with neither, any title passes.",
    )
    expect_title_regex: Regex | None = Field(
        default=None,
        description="A Python regular expression the title must contain a match for "
        "(re.search; anchor it with ^...$ for a whole-title match).",
    )
    wait_until: Literal["load", "domcontentloaded", "networkidle", "commit"] = Field(
        default="load",
        description="The navigation event to wait for before reading the title.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> PageTitleOptions:
        if self.expect_title is not None and self.expect_title_regex is not None:
            raise ValueError("give expect_title or expect_title_regex, not both")
        return self


class PageTitle(Check[PageTitleOptions]):
    """Loads a page in a headless browser and checks its title."""

    Options = PageTitleOptions

    slots = BROWSER_PAGES

    @classmethod
    def target_host(cls, options: PageTitleOptions) -> str | None:
        return urlsplit(options.url).hostname

    def __init__(self, options: PageTitleOptions) -> None:
        super().__init__(options)
        regex = options.expect_title_regex
        self._pattern = re.compile(regex) if regex is not None else None

    async def run(self, ctx: RunContext) -> Result:
        return await run_in_browser(ctx, self.options, self._load)

    async def _load(self, run: BrowserRun) -> Result:
        opts = self.options
        navigation_ms = run.ms_left()
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            response = await run.page.goto(
                opts.url, wait_until=opts.wait_until, timeout=navigation_ms
            )
        except PlaywrightTimeout:
            waited = navigation_ms / 1000
            return Result(
                Status.TIMEOUT, f"page did not reach {opts.wait_until!r} within {waited:.3g}s"
            )
        except PlaywrightError as exc:
            return Result.error(
                short_error(exc), error_type="NavigationError", **unresolved_fields(exc, opts.url)
            )
        # A page that redirects with <meta http-equiv="refresh"> shows a
        # placeholder (or nothing) until it does: follow it, within the time left.
        pending: tuple[float, str] | None = None
        for _ in range(MAX_META_REFRESHES):
            before = run.page.url
            try:
                refresh = _parse_refresh(await run.page.evaluate(_META_REFRESH_JS))
            except PlaywrightError:
                refresh = (0.0, "")  # the document went away: a refresh under way
            if refresh is None:
                break
            if refresh[1] and urljoin(before, refresh[1]) == before:
                break  # a page that reloads itself is not redirecting
            if refresh[0] * 1000 >= run.ms_left():
                pending = refresh
                break
            try:
                await run.page.wait_for_url(
                    lambda url, before=before: url != before,  # type: ignore[misc]
                    wait_until=opts.wait_until,
                    timeout=run.ms_left(),
                )
            except PlaywrightTimeout:
                pending = refresh
                break
            except PlaywrightError as exc:
                return Result.error(short_error(exc), error_type="NavigationError")
            # The final document's status is the one the diagnostics saw last.
            response = None
        title = await run.page.title()
        fields: dict[str, Any] = {"title": title, "url": run.page.url}
        if response is not None:
            fields["http_status"] = response.status
        if pending is not None:
            delay, target = pending[0], urljoin(run.page.url, pending[1])
            fields["meta_refresh"] = {"delay_s": delay, "url": target}
            if opts.expect_title is not None or opts.expect_title_regex is not None:
                return Result.fail(
                    f"the page redirects to {target} with <meta http-equiv=refresh> after "
                    f"{delay:g}s, past the job's timeout: its title is not the final one",
                    **fields,
                )
        problem = self._mismatch(title)
        if problem is not None:
            return Result.fail(problem, **fields)
        return Result.ok(**fields)

    def _mismatch(self, title: str) -> str | None:
        """Why ``title`` is not the expected one, or None when it is.

        Whitespace is normalized on both sides (runs of spaces, tabs, newlines
        and no-break spaces are one space; none at the ends): a title with
        U+00A0, as DocBook writes them, matches what a person types."""
        expected = self.options.expect_title
        shown = _normalized(title)
        if expected is not None and shown != _normalized(expected):
            return f"title is {title!r}, expected {expected!r}"
        if self._pattern is not None and self._pattern.search(shown) is None:
            return f"title is {title!r}, expected a match for {self._pattern.pattern!r}"
        return None


#: Meta refreshes followed one after another before the title is read.
MAX_META_REFRESHES = 5

_META_REFRESH_JS = """() => {
  const meta = document.querySelector('meta[http-equiv="refresh" i]');
  return meta ? meta.getAttribute("content") : null;
}"""

_REFRESH = re.compile(
    r"""\s* (\d+ (?:\.\d*)?) \s* (?: [;,] \s* (?:url \s* = \s*)? ['"]? ([^'"]*) ['"]? )?""",
    re.IGNORECASE | re.VERBOSE,
)


def _parse_refresh(content: object) -> tuple[float, str] | None:
    """The (delay, target) of a meta refresh's content ("5; url=/next"); None when
    there is none, or when it only reloads the same page."""
    if not isinstance(content, str):
        return None
    match = _REFRESH.match(content)
    if match is None or not (match.group(2) or "").strip():
        return None
    return float(match.group(1)), match.group(2).strip()


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _main(argv: Sequence[str]) -> int:
    if list(argv) != ["--find-browser"]:
        print(
            "usage: python -m runner.builtins.browser.page_title --find-browser\n"
            "  print the Chromium page-title would launch; exit 1 if there is none",
            file=sys.stderr,
        )
        return 2
    try:
        print(find_chromium())
    except BrowserNotFoundError as exc:
        print(f"page-title: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
