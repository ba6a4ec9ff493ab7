"""What every browser check shares: the browser, a fresh context per run, and
what a run reports besides its own verdict.

One browser is launched per daemon (per browser kind and executable) and
shared by every browser job; each run gets a fresh browser context, closed
when the run ends however it ends, and at most :data:`MAX_OPEN_PAGES` runs
hold a page at once. A job may opt into ``isolation: page``: its runs then
get a fresh page in a context of their own job's, created on its first run
and kept among the daemon's shared resources (a new context costs nearly the
CPU of a browser launch; a new page a third of it), so cookies and storage
carry over between runs of that job, never to another job. Playwright is
imported only when the first run needs the browser, so a daemon without
browser jobs never pays for it.

:func:`run_in_browser` runs one check's own work (``body``) in such a page
and adds to its result what a person needs to see why it failed: the main
document's HTTP status and the final URL, failed requests and console errors
with the first few examples, the page's metrics from the browser's
Performance API, and, on failure, a full-page screenshot (and opt-in a
Playwright trace) saved as an artifact.

The body's work stops a little before the job's timeout (:func:`evidence_reserve`),
because the daemon cancels a run at its timeout and a cancelled run can take
no screenshot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field

from runner.builtins._compat import playwright_chromium
from runner.builtins.browser import evidence as artifacts
from runner.durations import Duration, format_duration
from runner.paths import state_dir
from runner.plugin import UNRESOLVED_HOST, Options, Result, RunContext, Slots, Status

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

T = TypeVar("T")

__all__ = [
    "BROWSER_PAGES",
    "CHROMIUM_ARGS",
    "MAX_OPEN_PAGES",
    "BrowserLaunchError",
    "BrowserNotFoundError",
    "BrowserOptions",
    "BrowserRun",
    "evidence_reserve",
    "find_chromium",
    "run_in_browser",
    "unresolved_fields",
]

#: Pages open at once in the shared browser. On 2 cores a third concurrent
#: context only adds memory (FIELD-NOTES: 4 at once was slower than 1 at a time).
MAX_OPEN_PAGES = 2

#: What every browser check declares as its ``slots``: the daemon hands out the
#: pages before a run's clock starts, so waiting for one is never a timeout of
#: the page (issue: 100 page checks, most "timed out" waiting for 2 pages).
#: The semaphore below stays for runs made outside the daemon's scheduler.
BROWSER_PAGES = Slots("browser page", MAX_OPEN_PAGES)

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

#: How far past its work deadline a run's own work may go before it is cut off.
EVIDENCE_GRACE = 0.1

#: Examples kept of failed requests and of console errors.
EXAMPLES = 3

#: The most a run keeps back from its own work for screenshot, trace and
#: closing the context; never more than a quarter of the job's timeout.
EVIDENCE_RESERVE_MAX = 2.0

_HOW_TO_FIX = (
    "install one (Debian/Ubuntu: apt-get install chromium), "
    "or set RUNNER_CHROMIUM or the job's executable_path option to a Chromium binary"
)


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
    """Return the Chromium executable a browser check would launch.

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
    found = playwright_chromium()
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


class BrowserOptions(Options):
    """Options every browser check takes: the browser, evidence and page-speed limits."""

    browser: Literal["chromium", "firefox", "webkit"] = Field(
        default="chromium",
        description="The browser engine. Firefox and WebKit need `playwright install` "
        "or executable_path.",
    )
    executable_path: str | None = Field(
        default=None,
        description="The browser executable to launch. For Chromium the default is "
        "$RUNNER_CHROMIUM, then Playwright's own Chromium, then chromium on PATH.",
    )
    screenshot: Literal["on-failure", "always", "never"] = Field(
        default="on-failure",
        description="When to save a full-page PNG screenshot (result field `screenshot`): "
        "on fail, error and timeout; on every run; or never.",
    )
    trace: Literal["off", "on-failure"] = Field(
        default="off",
        description="Save a Playwright trace zip (result field `trace`) when a run does not "
        "pass; open it with `playwright show-trace`. It records what was typed.",
    )
    artifacts_dir: str | None = Field(
        default=None,
        description="Folder for screenshots and traces (a subfolder per job). Default: "
        "$STATE_DIRECTORY/artifacts, else artifacts/ in ~/.local/state/runner.",
    )
    keep_artifacts: int = Field(
        default=50,
        ge=1,
        description="Keep the evidence of this job's newest N failures; older is deleted.",
    )
    keep_artifacts_for: Duration = Field(
        default=7 * 86400.0,
        description="Delete this job's evidence older than this.",
    )
    max_lcp: Duration | None = Field(
        default=None,
        description="Fail when the page's Largest Contentful Paint is later than this (2.5s).",
    )
    max_load: Duration | None = Field(
        default=None,
        description="Fail when the page's load event ends later than this after navigation "
        "start (5s).",
    )
    isolation: Literal["context", "page"] = Field(
        default="context",
        description="`context`: every run in a fresh browser context, nothing shared. "
        "`page`: a fresh page in a context kept for this job, about twice as fast; "
        "cookies and storage carry over between this job's runs, never to other jobs.",
    )


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
    # a task of their own that a cancelled run does not cancel, and closes
    # them (a relaunch's old browser too) in tasks of their own as well.
    async with AsyncExitStack() as stack:
        with _node_compile_cache():
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
            raise BrowserLaunchError(kind, short_error(exc)) from exc
        stack.push_async_callback(browser.close)
        yield _SharedBrowser(browser, asyncio.Semaphore(MAX_OPEN_PAGES))


#: Where Playwright's driver (Node) keeps the code it compiled, under
#: runner's state folder: Node's own compile cache (``NODE_COMPILE_CACHE``,
#: Node 22.1 and later; older versions ignore it).
NODE_COMPILE_CACHE_DIR = "node-compile-cache"


@contextmanager
def _node_compile_cache() -> Iterator[None]:
    """Give the Playwright driver started in this block Node's compile cache.

    The driver loads about 12 MB of JavaScript at every start; with the
    cache, a start after the first reuses the compiled code: the driver was
    ready in 0.34 s instead of 0.42 s, on 0.32 s of CPU instead of 0.39 s
    (bench/README.md, browser.py).
    Node creates the folder and says nothing when it cannot write there.
    The driver copies this process's environment when it starts, so the
    variable is set only for that moment; a value the user set (or
    ``NODE_DISABLE_COMPILE_CACHE``) is left alone.
    """
    if "NODE_COMPILE_CACHE" in os.environ or "NODE_DISABLE_COMPILE_CACHE" in os.environ:
        yield
        return
    os.environ["NODE_COMPILE_CACHE"] = str(state_dir() / NODE_COMPILE_CACHE_DIR)
    try:
        yield
    finally:
        os.environ.pop("NODE_COMPILE_CACHE", None)


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


def evidence_reserve(timeout: float) -> float:
    """Seconds before the job's timeout at which a browser run stops its own work,
    to take a screenshot and close its context: a quarter of the timeout, at
    most :data:`EVIDENCE_RESERVE_MAX`."""
    return min(EVIDENCE_RESERVE_MAX, timeout / 4)


@dataclass(slots=True)
class _Diagnostics:
    """What the page did while the run watched it."""

    http_status: int | None = None
    failed_requests: int = 0
    failed_examples: list[str] = field(default_factory=list)
    console_errors: int = 0
    console_examples: list[str] = field(default_factory=list)

    def request_failed(self, example: str) -> None:
        self.failed_requests += 1
        if len(self.failed_examples) < EXAMPLES:
            self.failed_examples.append(example[:300])

    def console_error(self, text: str) -> None:
        self.console_errors += 1
        if len(self.console_examples) < EXAMPLES:
            self.console_examples.append(text[:300])

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "failed_requests": self.failed_requests,
            "console_errors": self.console_errors,
        }
        if self.failed_examples:
            out["failed_request_examples"] = list(self.failed_examples)
        if self.console_examples:
            out["console_error_examples"] = list(self.console_examples)
        return out


@dataclass(slots=True)
class BrowserRun:
    """One run's page, handed to a check's body by :func:`run_in_browser`."""

    page: Page
    context: BrowserContext
    #: ``loop.time()`` by which the body's own work must end.
    work_deadline: float
    diagnostics: _Diagnostics = field(default_factory=_Diagnostics)

    def ms_left(self) -> float:
        """Milliseconds until :attr:`work_deadline` (at least 1), for Playwright timeouts.

        At most 2**31 - 1 (24.8 days): Node's timers, in Playwright's driver,
        fire at once (with a warning) past that. The daemon's own deadline
        covers a longer timeout."""
        left = (self.work_deadline - asyncio.get_running_loop().time()) * 1000
        return min(max(left, 1.0), _MAX_TIMER_MS)


#: The longest a screenshot or a trace may take, however long the timeout.
EVIDENCE_MAX_S = 60.0
#: The longest timer Node (Playwright's driver) holds: 2**31 - 1 ms.
_MAX_TIMER_MS = 2**31 - 1.0


def _watch(page: Page, diagnostics: _Diagnostics) -> None:
    """Count failed requests and console errors, and note the main document's status."""

    def on_response(response: Any) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == page.main_frame:
            diagnostics.http_status = response.status
        if response.status >= 400:
            diagnostics.request_failed(f"{response.status} {request.method} {response.url}")

    def on_request_failed(request: Any) -> None:
        diagnostics.request_failed(f"{request.failure} {request.method} {request.url}")

    def on_console(message: Any) -> None:
        # Chromium repeats each failed load as a console error ("Failed to
        # load resource: ... 404"), the browser's own favicon.ico request too:
        # those are counted, once, as failed requests.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            diagnostics.console_error(message.text)

    def on_page_error(error: Any) -> None:
        diagnostics.console_error(f"uncaught {short_error(error)}")

    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)


BodyFn = Callable[[BrowserRun], Awaitable[Result]]


async def run_in_browser(ctx: RunContext, options: BrowserOptions, body: BodyFn) -> Result:
    """Run ``body`` in a fresh context and page of the shared browser; add the
    page's diagnostics, metrics and, when asked for, a screenshot and trace.

    ``body`` returns the check's own verdict with its fields; it should stop by
    ``run.work_deadline`` (use ``run.ms_left()`` as Playwright's timeout). A
    Playwright timeout it raises becomes a ``timeout`` result, another
    Playwright error an ``error`` result.
    """
    key = ("browser", options.browser, options.executable_path)
    try:
        shared = await ctx.shared(
            key,
            lambda: _open_browser(options.browser, options.executable_path),
            usable=lambda s: s.browser.is_connected(),
        )
    except (BrowserNotFoundError, BrowserLaunchError) as exc:
        return Result.error(str(exc), error_type=type(exc).__name__)

    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    async with shared.slots, _page_for_run(ctx, options, shared) as (context, page):
        # The evidence's share is kept back from whatever the work has left
        # (launching the browser and waiting for a slot included).
        work_deadline = ctx.deadline - evidence_reserve(ctx.timeout)
        run = BrowserRun(page, context, work_deadline)
        _watch(page, run.diagnostics)
        # Playwright's own timeouts run in its driver and fire late on a
        # busy machine: the loop's deadline makes sure the evidence keeps
        # its share of the time.
        overrun = asyncio.timeout_at(work_deadline + EVIDENCE_GRACE)
        try:
            async with overrun:
                result = await body(run)
        except TimeoutError:
            if not overrun.expired():
                raise
            result = Result(Status.TIMEOUT, "the page did not answer within the job's timeout")
        except PlaywrightTimeout as exc:
            result = Result(Status.TIMEOUT, short_error(exc))
        except PlaywrightError as exc:
            result = Result.error(short_error(exc), error_type="BrowserError")
        return await _conclude(ctx, options, run, result)


@asynccontextmanager
async def _page_for_run(
    ctx: RunContext, options: BrowserOptions, shared: _SharedBrowser
) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """A fresh page for one run, in a fresh context or (``isolation: page``) in
    the job's own long-lived one; the page, or the fresh context, is closed
    on exit however the run ends.

    With ``trace: on-failure`` tracing starts here and, in the job's
    long-lived context, stops here too: each run records its own trace, and a
    run that kept it (:func:`_save_evidence`) has already stopped it."""
    if options.isolation == "context":
        context = await _finish_even_if_cancelled(shared.browser.new_context(), lambda c: c.close())
        try:
            if options.trace == "on-failure":
                await context.tracing.start(screenshots=True, snapshots=True)
            yield context, await context.new_page()
        finally:
            await context.close()
        return

    job = await ctx.shared(
        # The job's name and the browser's key: another job, or this job
        # with another browser, never gets this context.
        ("browser-context", ctx.job, options.browser, options.executable_path),
        lambda: _open_job_context(shared.browser),
        # A relaunched browser (the old one crashed or was killed) needs a
        # new context: the old one went with its browser.
        usable=lambda j: j.context.browser is shared.browser and shared.browser.is_connected(),
    )
    context = job.context
    tracing = False
    page: Page | None = None
    try:
        if options.trace == "on-failure":
            await context.tracing.start(screenshots=True, snapshots=True)
            tracing = True
        page = await _finish_even_if_cancelled(context.new_page(), lambda p: p.close())
        popups: list[Page] = []

        def opened(popup: Page) -> None:
            popups.append(popup)
            popup.on("popup", opened)

        page.on("popup", opened)
        yield context, page
    finally:
        # Every call bounded and quiet: a crashed browser answers none, and
        # the next run gets a new browser and a new context anyway.
        if tracing:
            # Discards what was not kept; when _save_evidence already stopped
            # it to keep it, this answers an error that _bounded swallows.
            await _bounded(context.tracing.stop(), EVIDENCE_MAX_S)
        if page is not None:
            for popup in popups:
                await _bounded(popup.close(), EVIDENCE_MAX_S)
            await job.keep(page)


@dataclass(slots=True)
class _JobContext:
    """A job's long-lived context (``isolation: page``) and the page it keeps
    between runs, emptied (about:blank): Chromium gives the next run's fresh
    page that page's renderer process for the same site instead of starting
    one, which costs about as much CPU as a new context."""

    context: BrowserContext
    keeper: Page | None = None

    async def keep(self, page: Page) -> None:
        """Empty ``page`` and keep it in place of the previous one. A page that
        does not empty at once (a script that never yields) is closed instead.

        Only the previous kept page is closed, never "every other page": a
        page another run is creating (the daemon never overlaps two runs of
        a job, a plugin's own caller might) is already listed, and closing it
        was seen to leave that run's ``new_page`` waiting until its timeout.
        The run's popups are closed by :func:`_page_for_run`."""
        emptied = await _bounded(page.goto("about:blank"), KEEPER_BLANK_S)
        previous, self.keeper = self.keeper, (None if isinstance(emptied, str) else page)
        for stale in (previous, None if self.keeper else page):
            if stale is not None:
                await _bounded(stale.close(), EVIDENCE_MAX_S)


#: How long a page-isolated run's page may take to go to about:blank to be
#: kept; past it, the page is closed.
KEEPER_BLANK_S = 1.0


@asynccontextmanager
async def _open_job_context(browser: Browser) -> AsyncIterator[_JobContext]:
    """A job's long-lived context, closed at shutdown or when its browser is gone."""
    job = _JobContext(await browser.new_context())
    try:
        yield job
    finally:
        await _bounded(job.context.close(), 10.0)


async def _conclude(
    ctx: RunContext, options: BrowserOptions, run: BrowserRun, result: Result
) -> Result:
    """``result`` with the page's diagnostics, metrics, thresholds and evidence added."""
    loop = asyncio.get_running_loop()
    fields: dict[str, Any] = dict(result.fields)
    # After a failed navigation the page is about:blank or Chromium's error
    # page: neither its URL nor its metrics are the target's.
    on_target = run.page.url.startswith(("http://", "https://"))
    if on_target:
        fields.setdefault("url", run.page.url)
    if run.diagnostics.http_status is not None:
        fields.setdefault("http_status", run.diagnostics.http_status)
    fields.update(run.diagnostics.fields())
    # A page whose script never yields cannot answer: every call to it is
    # bounded. A run that already failed takes its screenshot first (the
    # evidence matters more than the metrics); a passing one needs its
    # metrics first, as a threshold may still fail it.
    status, message = result.status, result.message
    failed = status is not Status.OK
    if failed:
        fields.update(await _evidence_if_wanted(ctx, options, run, failed=True))
    # A page that could not be photographed in time will not answer this either.
    responsive = "screenshot_error" not in fields
    metrics: dict[str, Any] | str | None = None
    if on_target and responsive:
        budget = max(ctx.deadline - loop.time(), 0.0)
        metrics = await _bounded(run.page.evaluate(_METRICS_JS), min(1.5, budget / 2))
        if isinstance(metrics, dict):
            fields["metrics"] = metrics
    if not failed:
        slow = _too_slow(options, metrics) if isinstance(metrics, dict) else None
        if slow is not None:
            status, message = Status.FAIL, slow
        fields.update(await _evidence_if_wanted(ctx, options, run, failed=slow is not None))
    return Result(status, message, fields)


async def _evidence_if_wanted(
    ctx: RunContext, options: BrowserOptions, run: BrowserRun, *, failed: bool
) -> dict[str, Any]:
    if options.screenshot == "always" or (failed and options.screenshot == "on-failure"):
        return await _save_evidence(ctx, options, run, trace=failed)
    if failed and options.trace == "on-failure":
        return await _save_evidence(ctx, options, run, trace=True, screenshot=False)
    return {}


def _too_slow(options: BrowserOptions, metrics: dict[str, Any]) -> str | None:
    """Why the page was too slow for the job's thresholds, or None.

    A metric the page did not produce (no LCP candidate, no load event) fails nothing.
    """
    for name, limit, key in (
        ("Largest Contentful Paint", options.max_lcp, "lcp_ms"),
        ("load", options.max_load, "load_ms"),
    ):
        value = metrics.get(key)
        if limit is not None and isinstance(value, int | float) and value / 1000 > limit:
            return (
                f"{name} took {format_duration(round(value / 1000, 3))}, "
                f"over the limit of {format_duration(limit)}"
            )
    return None


async def _save_evidence(
    ctx: RunContext,
    options: BrowserOptions,
    run: BrowserRun,
    *,
    trace: bool,
    screenshot: bool = True,
) -> dict[str, Any]:
    """Save a screenshot (and the trace, when it is on) within the run's budget;
    returns the result fields naming them, or saying why they are missing."""
    loop = asyncio.get_running_loop()
    folder = artifacts.job_folder(artifacts.artifacts_base(options.artifacts_dir), ctx.job)
    stem = await asyncio.to_thread(artifacts.new_stem, folder)
    fields: dict[str, Any] = {}
    # Keep half of what is left for the metrics and closing the context.
    budget = min(max((ctx.deadline - loop.time()) * 0.5, 0.05), EVIDENCE_MAX_S)
    if screenshot:
        shot = await _bounded(
            run.page.screenshot(full_page=True, timeout=budget * 1000, animations="disabled"),
            budget,
        )
        if isinstance(shot, bytes):
            path = folder / f"{stem}.png"
            await asyncio.to_thread(artifacts.write_bytes, path, shot)
            fields["screenshot"] = str(path)
        else:
            fields["screenshot_error"] = shot
    if trace and options.trace == "on-failure":
        path = folder / f"{stem}-trace.zip"
        budget = min(max((ctx.deadline - loop.time()) * 0.5, 0.05), EVIDENCE_MAX_S)
        stopped = await _bounded(run.context.tracing.stop(path=str(path)), budget)
        if stopped is None:
            fields["trace"] = str(path)
        else:
            fields["trace_error"] = stopped
    if fields.get("screenshot") or fields.get("trace"):
        await asyncio.to_thread(
            artifacts.prune,
            folder,
            keep=options.keep_artifacts,
            keep_for=options.keep_artifacts_for,
        )
    return fields


async def _bounded(call: Awaitable[T], seconds: float) -> T | str:
    """``call``'s value, or a short reason it did not give one within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        return f"no answer within {seconds:.3g}s"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a closed page, a crashed browser
        return short_error(exc)


def short_error(exc: BaseException) -> str:
    """The first line of a Playwright error, without its ``Page.goto:`` prefix or call log."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    method, sep, rest = first.partition(": ")
    if sep and "." in method and " " not in method:
        first = rest
    # "Error: strict mode violation: ... resolved to 2 elements:" (a list follows)
    return first.removeprefix("Error: ").rstrip(":")


#: Read from the page after the run: the navigation's timing, the last Largest
#: Contentful Paint candidate, Cumulative Layout Shift (the largest session
#: window, as web-vitals computes it) and what the page transferred. Times are
#: milliseconds from navigation start; a value the page did not produce is null.
#: Transfer sizes of cross-origin resources without Timing-Allow-Origin read as 0.
_METRICS_JS = """async () => {
  const buffered = (type) => {
    try {
      const observer = new PerformanceObserver(() => {});
      observer.observe({type, buffered: true});
      const records = observer.takeRecords();
      observer.disconnect();
      return records;
    } catch (e) { return []; }
  };
  // An image that arrived last becomes the LCP candidate only once decoded,
  // painted and presented, which can be well after the load event on a busy
  // machine: wait (at most 1 s) until a candidate is as large as the largest
  // image already loaded in the viewport (a lazy one below the fold never is).
  const visibleArea = (element) => {
    const r = element.getBoundingClientRect();
    const w = Math.min(r.right, innerWidth) - Math.max(r.left, 0);
    const h = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
    return w > 0 && h > 0 ? w * h : 0;
  };
  const largest = Math.max(0, ...[...document.images]
    .filter((image) => image.complete && image.naturalWidth).map(visibleArea));
  const covers = (entries) => entries.some((entry) => entry.size >= largest * 0.9);
  if (largest && !covers(buffered("largest-contentful-paint"))) {
    await new Promise((done) => {
      const observer = new PerformanceObserver((list) => {
        if (covers(list.getEntries())) { observer.disconnect(); done(); }
      });
      try { observer.observe({type: "largest-contentful-paint"}); } catch (e) { done(); }
      setTimeout(() => { observer.disconnect(); done(); }, 1000);
    });
  }
  const nav = performance.getEntriesByType("navigation")[0];
  // Not the browser's own favicon.ico request: the page did not ask for it.
  const resources = performance.getEntriesByType("resource").filter(
    (r) => !(r.initiatorType === "other" && new URL(r.name).pathname === "/favicon.ico"));
  const lcp = buffered("largest-contentful-paint");
  let cls = 0, session = 0, first = 0, last = 0;
  for (const shift of buffered("layout-shift")) {
    if (shift.hadRecentInput) continue;
    if (session && shift.startTime - last < 1000 && shift.startTime - first < 5000) {
      session += shift.value;
    } else {
      session = shift.value;
      first = shift.startTime;
    }
    last = shift.startTime;
    cls = Math.max(cls, session);
  }
  const ms = (value) => (value > 0 ? Math.round(value * 10) / 10 : null);
  return {
    ttfb_ms: nav ? ms(nav.responseStart - nav.startTime) : null,
    dom_content_loaded_ms: nav ? ms(nav.domContentLoadedEventEnd - nav.startTime) : null,
    load_ms: nav ? ms(nav.loadEventEnd - nav.startTime) : null,
    lcp_ms: lcp.length ? ms(lcp[lcp.length - 1].startTime) : null,
    cls: Math.round(cls * 10000) / 10000,
    transfer_bytes: (nav ? nav.transferSize : 0)
      + resources.reduce((sum, r) => sum + (r.transferSize || 0), 0),
    requests: (nav ? 1 : 0) + resources.length,
  };
}"""


#: Chromium's net errors for a navigation whose host name did not resolve. With
#: no network at all its resolver says the internet is disconnected instead.
#: Playwright raises one Error type for every net error, so its code is read.
_NAME_NOT_RESOLVED = (
    "net::ERR_NAME_NOT_RESOLVED",
    "net::ERR_NAME_RESOLUTION_FAILED",
    "net::ERR_INTERNET_DISCONNECTED",
)


def unresolved_fields(exc: BaseException, url: str) -> dict[str, str]:
    """The result fields for a navigation to ``url`` that failed with ``exc``:
    ``unresolved_host`` when its host's name did not resolve, else none."""
    host = urlsplit(url).hostname
    if host and any(code in str(exc) for code in _NAME_NOT_RESOLVED):
        return {UNRESOLVED_HOST: host}
    return {}
