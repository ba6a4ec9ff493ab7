"""The ``page-title`` check: load a page in a real browser and compare its title.

One browser is launched per daemon (per browser kind and executable) and
shared by every page-title job; each run gets a fresh browser context, closed
when the run ends however it ends. Playwright is imported only when the first
run needs the browser, so a daemon without page-title jobs never pays for it.

Run ``python -m runner.builtins.page_title --find-browser`` to see which
Chromium the check would use.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from runner.plugin import Check, Options, Result, RunContext, Status

if TYPE_CHECKING:
    from playwright.async_api import Browser

T = TypeVar("T")

__all__ = [
    "BrowserLaunchError",
    "BrowserNotFoundError",
    "PageTitle",
    "PageTitleOptions",
    "find_chromium",
]

#: Pages open at once in the shared browser. On 2 cores a third concurrent
#: context only adds memory (FIELD-NOTES: 4 at once was slower than 1 at a time).
MAX_OPEN_PAGES = 2

#: Added to Playwright's own Chromium arguments (it already passes
#: ``--no-sandbox`` unless launched with ``chromium_sandbox=True``).
CHROMIUM_ARGS = (
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-gpu",
)

#: Names tried on ``PATH``, in order, when nothing more specific is configured.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Where `playwright install` puts its Chromium builds on Linux, relative to the
# browser's directory (mirrors EXECUTABLE_PATHS in Playwright's registry). The
# headless shell comes first because it is what Playwright itself uses headless.
_PLAYWRIGHT_CHROMIUM_BUILDS: dict[str, tuple[tuple[str, str], ...]] = {
    "x86_64": (
        ("chromium-headless-shell", "chrome-headless-shell-linux64/chrome-headless-shell"),
        ("chromium", "chrome-linux64/chrome"),
    ),
    "aarch64": (
        ("chromium-headless-shell", "chrome-headless-shell-linux-arm64/chrome-headless-shell"),
        ("chromium", "chrome-linux-arm64/chrome"),
    ),
}

_HOW_TO_FIX = (
    "install one (Debian/Ubuntu: apt-get install chromium), "
    "or set RUNNER_CHROMIUM or the job's executable_path option to a Chromium binary"
)


#: Node's timers (Playwright's driver) hold at most 2**31 - 1 ms (24.8 days); a
#: longer one fires at once, with a warning. The daemon's own deadline covers the rest.
_MAX_TIMER_MS = 2**31 - 1.0


class BrowserNotFoundError(LookupError):
    """No usable Chromium executable was found; the message says how to fix it."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; {_HOW_TO_FIX}")


class BrowserLaunchError(RuntimeError):
    """Playwright could not start the browser (missing download, missing libraries)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"could not launch {kind}: {reason}")


DEBIAN_CHROMIUM_WRAPPER = "/usr/bin/chromium"
DEBIAN_CHROMIUM_BINARY = "/usr/lib/chromium/chromium"


def find_chromium(executable_path: str | None = None) -> str:
    """Return the Chromium executable page-title would launch.

    Looks, in order, at ``executable_path``, the ``RUNNER_CHROMIUM`` environment
    variable, Playwright's own downloaded Chromium (``playwright install
    chromium``) and the names in :data:`CHROMIUM_NAMES` on ``PATH``. Nothing is
    launched: only the file system is consulted.

    Raises:
        BrowserNotFoundError: an explicitly given path is not an executable
            file, or no Chromium was found at all.
    """
    for source, explicit in (
        ("executable_path", executable_path),
        ("RUNNER_CHROMIUM", os.environ.get("RUNNER_CHROMIUM")),
    ):
        if explicit:
            if _is_executable(explicit):
                return explicit
            raise BrowserNotFoundError(f"{source}={explicit!r} is not an executable file")
    found = _playwright_chromium()
    if found is not None:
        return found
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            # Debian's /usr/bin/chromium is a shell wrapper that reads
            # /etc/chromium.d on every launch, adds extension flags and prints
            # shell errors to stderr; the binary behind it starts faster, quietly.
            if path == DEBIAN_CHROMIUM_WRAPPER and _is_executable(DEBIAN_CHROMIUM_BINARY):
                return DEBIAN_CHROMIUM_BINARY
            return path
    raise BrowserNotFoundError(
        "no Chromium found (looked at RUNNER_CHROMIUM, Playwright's browser cache "
        f"and {', '.join(CHROMIUM_NAMES)} on PATH)"
    )


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _playwright_chromium() -> str | None:
    """Playwright's downloaded Chromium for this Playwright version, if installed."""
    builds = _PLAYWRIGHT_CHROMIUM_BUILDS.get(platform.machine())
    # find_spec locates a top-level package without importing it.
    spec = find_spec("playwright")
    if builds is None or spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations))) / "driver" / "package"
    try:
        listed = json.loads((package / "browsers.json").read_text())["browsers"]
        revisions = {b["name"]: str(b["revision"]) for b in listed}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # The same lookup as Playwright's registryDirectory.
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":
        registry = package / ".local-browsers"
    elif configured:
        registry = Path(configured).absolute()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        registry = Path(cache) / "ms-playwright"
    for name, relative in builds:
        if name in revisions:
            candidate = registry / f"{name.replace('-', '_')}-{revisions[name]}" / relative
            if _is_executable(str(candidate)):
                return str(candidate)
    return None


class PageTitleOptions(Options):
    url: str = Field(description="The http:// or https:// URL to load.")
    expect_title: str | None = Field(
        default=None,
        description="The exact title the page must have. Give this or expect_title_regex, "
        "not both; with neither, any title passes.",
    )
    expect_title_regex: str | None = Field(
        default=None,
        description="A Python regular expression the title must contain a match for "
        "(re.search; anchor it with ^...$ for a whole-title match).",
    )
    browser: Literal["chromium", "firefox", "webkit"] = Field(
        default="chromium",
        description="The browser engine. Firefox and WebKit need `playwright install` "
        "or executable_path.",
    )
    wait_until: Literal["load", "domcontentloaded", "networkidle", "commit"] = Field(
        default="load",
        description="The navigation event to wait for before reading the title.",
    )
    executable_path: str | None = Field(
        default=None,
        description="The browser executable to launch. For Chromium the default is "
        "$RUNNER_CHROMIUM, then Playwright's own Chromium, then chromium on PATH.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
        return value

    @field_validator("expect_title_regex")
    @classmethod
    def _compilable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> PageTitleOptions:
        if self.expect_title is not None and self.expect_title_regex is not None:
            raise ValueError("give expect_title or expect_title_regex, not both")
        return self


@dataclass(frozen=True, slots=True)
class _SharedBrowser:
    browser: Browser
    #: Bounds the pages open at once across every job using this browser.
    slots: asyncio.Semaphore


@asynccontextmanager
async def _open_browser(kind: str, executable_path: str | None) -> AsyncIterator[_SharedBrowser]:
    """Start Playwright and launch one browser; stop both, leaving no process, on exit."""
    args: Sequence[str] = ()
    if kind == "chromium":
        executable_path = find_chromium(executable_path)
        args = CHROMIUM_ARGS
    # Imported here, not at module level: it costs ~100 ms of start-up.
    from playwright.async_api import Error, async_playwright

    # No cancellation care needed here: the daemon runs resource factories in
    # a task of their own that a cancelled run does not cancel.
    async with AsyncExitStack() as stack:
        playwright = await async_playwright().start()
        stack.push_async_callback(playwright.stop)
        launcher = {
            "chromium": playwright.chromium,
            "firefox": playwright.firefox,
            "webkit": playwright.webkit,
        }[kind]
        try:
            browser = await launcher.launch(
                headless=True, executable_path=executable_path, args=args
            )
        except Error as exc:
            raise BrowserLaunchError(kind, _short(exc)) from exc
        stack.push_async_callback(browser.close)
        yield _SharedBrowser(browser, asyncio.Semaphore(MAX_OPEN_PAGES))


async def _finish_even_if_cancelled(
    start: Coroutine[Any, Any, T], undo: Callable[[T], Awaitable[object]]
) -> T:
    """Await ``start``; if cancelled meanwhile, let it finish, ``undo`` it, then re-raise.

    Playwright cancelled half-way through creating something leaves it behind:
    a driver process, a browser, a browser context that nothing will close.
    """
    task = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is None:
            await undo(task.result())
        raise


class PageTitle(Check[PageTitleOptions]):
    """Loads a page in a headless browser and checks its title."""

    Options = PageTitleOptions

    def __init__(self, options: PageTitleOptions) -> None:
        super().__init__(options)
        regex = options.expect_title_regex
        self._pattern = re.compile(regex) if regex is not None else None

    async def run(self, ctx: RunContext) -> Result:
        opts = self.options
        key = ("page-title.browser", opts.browser, opts.executable_path)
        try:
            shared = await ctx.shared(
                key,
                lambda: _open_browser(opts.browser, opts.executable_path),
                usable=lambda s: s.browser.is_connected(),
            )
        except (BrowserNotFoundError, BrowserLaunchError) as exc:
            return Result.error(str(exc), error_type=type(exc).__name__)

        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        loop = asyncio.get_running_loop()
        async with shared.slots:
            # Leave a tenth of what remains for closing the context, so a slow
            # page becomes a timeout result here rather than a cancelled run.
            remaining = ctx.deadline - loop.time()
            navigation_ms = min(max(remaining * 900, 1.0), _MAX_TIMER_MS)
            context = await _finish_even_if_cancelled(
                shared.browser.new_context(), lambda c: c.close()
            )
            try:
                page = await context.new_page()
                try:
                    response = await page.goto(
                        opts.url, wait_until=opts.wait_until, timeout=navigation_ms
                    )
                except PlaywrightTimeout:
                    waited = navigation_ms / 1000
                    return Result(
                        Status.TIMEOUT,
                        f"page did not reach {opts.wait_until!r} within {waited:.3g}s",
                    )
                except PlaywrightError as exc:
                    return Result.error(_short(exc), error_type="NavigationError")
                title = await page.title()
                fields: dict[str, Any] = {"title": title, "url": page.url}
                if response is not None:
                    fields["http_status"] = response.status
            finally:
                await context.close()
        problem = self._mismatch(title)
        if problem is not None:
            return Result.fail(problem, **fields)
        return Result.ok(**fields)

    def _mismatch(self, title: str) -> str | None:
        """Why ``title`` is not the expected one, or None when it is."""
        expected = self.options.expect_title
        if expected is not None and title != expected:
            return f"title is {title!r}, expected {expected!r}"
        if self._pattern is not None and self._pattern.search(title) is None:
            return f"title is {title!r}, expected a match for {self._pattern.pattern!r}"
        return None


def _short(exc: BaseException) -> str:
    """The first line of a Playwright error, without its ``Page.goto:`` prefix or call log."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    method, sep, rest = first.partition(": ")
    if sep and "." in method and " " not in method:
        return rest
    return first


def _main(argv: Sequence[str]) -> int:
    if list(argv) != ["--find-browser"]:
        print(
            "usage: python -m runner.builtins.page_title --find-browser\n"
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
