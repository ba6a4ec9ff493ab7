"""The ``browser-steps`` check: a scripted flow in a real browser.

"Can a user log in and see their dashboard": steps declared in YAML, run in a
fresh context of the shared browser (:mod:`runner.builtins.browser.session`), each
step's outcome and duration reported, the run stopped at the first step that
does not pass, with a screenshot of the page at that step::

    steps:
      - goto: https://app.example/login
      - fill: {selector: "#email", value: "${LOGIN_EMAIL}"}
      - fill: {label: Password, value: "${LOGIN_PASSWORD}"}
      - click: {role: button, name: "Sign in"}
      - expect_url: {regex: "/dashboard$"}
      - expect_text: {selector: h1, text: Welcome}
      - expect_title: Dashboard

Each step is a mapping with one key naming its kind (and an optional
``name``); the kinds form a discriminated union, so a typo is reported with
the file, line, job and field, and ``runner schema`` lets an editor complete
them. Values typed by ``fill`` are never part of a step's name, a message or a
field: they are masked in the result even when not taken from ``${ENV}``.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from runner.builtins._regex import Regex
from runner.builtins.browser.session import (
    BROWSER_PAGES,
    BrowserOptions,
    BrowserRun,
    run_in_browser,
    short_error,
    unresolved_fields,
)
from runner.durations import Duration, format_duration
from runner.plugin import Check, Result, RunContext, SecretMasker, Status

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

__all__ = ["BrowserSteps", "BrowserStepsOptions", "Step"]

#: How often expectations look at the page again while they wait.
POLL_INTERVAL = 0.1

AriaRole = Literal[
    "alert", "alertdialog", "application", "article", "banner", "blockquote", "button",
    "caption", "cell", "checkbox", "code", "columnheader", "combobox", "complementary",
    "contentinfo", "definition", "deletion", "dialog", "directory", "document", "emphasis",
    "feed", "figure", "form", "generic", "grid", "gridcell", "group", "heading", "img",
    "insertion", "link", "list", "listbox", "listitem", "log", "main", "marquee", "math",
    "menu", "menubar", "menuitem", "menuitemcheckbox", "menuitemradio", "meter",
    "navigation", "none", "note", "option", "paragraph", "presentation", "progressbar",
    "radio", "radiogroup", "region", "row", "rowgroup", "rowheader", "scrollbar", "search",
    "searchbox", "separator", "slider", "spinbutton", "status", "strong", "subscript",
    "superscript", "switch", "tab", "table", "tablist", "tabpanel", "term", "textbox",
    "time", "timer", "toolbar", "tooltip", "tree", "treegrid", "treeitem",
]  # fmt: skip


class StepFailed(Exception):
    """A step found the page not as expected; the message says what it found."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    return value


class Target(_Spec):
    """Which element a step acts on: exactly one of ``selector``, ``role``,
    ``label`` or ``text``. Roles, labels and text are what a user sees, and
    survive a redesign better than CSS (Playwright's advice)."""

    selector: str | None = Field(
        default=None, description="A CSS selector, or a Playwright one (text=..., xpath=...)."
    )
    role: AriaRole | None = Field(
        default=None, description="An ARIA role (button, link, textbox, ...), with `name`."
    )
    name: str | None = Field(
        default=None, description="With `role`: the element's accessible name (its text or label)."
    )
    label: str | None = Field(
        default=None, description="A form control by the text of its <label> or aria-label."
    )
    text: str | None = Field(default=None, description="An element by its text.")
    exact: bool = Field(
        default=False,
        description="Match `name`, `label` or `text` exactly and case-sensitively "
        "(default: a case-insensitive substring).",
    )

    @model_validator(mode="after")
    def _one_way(self) -> Target:
        given = [k for k in ("selector", "role", "label", "text") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of selector, role, label or text"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.name is not None and self.role is None:
            raise ValueError("name goes with role (role: button, name: Sign in)")
        return self

    def describe(self) -> str:
        if self.selector is not None:
            return self.selector
        if self.role is not None:
            return f'{self.role} "{self.name}"' if self.name is not None else self.role
        if self.label is not None:
            return f'label "{self.label}"'
        return f'text "{self.text}"'

    def locate(self, page: Page) -> Locator:
        if self.selector is not None:
            return page.locator(self.selector)
        if self.role is not None:
            return page.get_by_role(self.role, name=self.name, exact=self.exact or None)
        if self.label is not None:
            return page.get_by_label(self.label, exact=self.exact)
        return page.get_by_text(self.text or "", exact=self.exact)


class FillSpec(Target):
    value: str = Field(
        description="What to type. Use ${ENV} for secrets; never logged or shown in results."
    )


class PressSpec(Target):
    key: str = Field(description="A key or chord, as Playwright names them: Enter, Control+A.")


class WaitSpec(Target):
    state: Literal["visible", "hidden", "attached", "detached"] = Field(
        default="visible", description="The state to wait for."
    )


class ExpectTextSpec(_Spec):
    """An element whose text contains ``text`` (whitespace collapsed) or matches ``regex``.

    The element is given by ``selector``, ``role`` (with ``name``) or ``label``.
    """

    selector: str | None = Field(default=None, description="A CSS or Playwright selector.")
    role: AriaRole | None = Field(default=None, description="An ARIA role, with `name`.")
    name: str | None = Field(default=None, description="With `role`: the accessible name.")
    label: str | None = Field(default=None, description="A form control by its label.")
    text: str | None = Field(
        default=None, description="Text the element must contain (whitespace collapsed)."
    )
    regex: Regex | None = Field(
        default=None, description="A Python regular expression the element's text must match."
    )

    @model_validator(mode="after")
    def _valid(self) -> ExpectTextSpec:
        Target(selector=self.selector, role=self.role, name=self.name, label=self.label)
        if (self.text is None) == (self.regex is None):
            raise ValueError("give text or regex, one of them")
        return self

    @property
    def target(self) -> Target:
        return Target(selector=self.selector, role=self.role, name=self.name, label=self.label)


class ExpectUrlSpec(_Spec):
    regex: Regex | None = Field(
        default=None, description="A Python regular expression the URL must contain a match for."
    )
    equals: str | None = Field(default=None, description="The exact URL.")

    @model_validator(mode="after")
    def _one(self) -> ExpectUrlSpec:
        if (self.regex is None) == (self.equals is None):
            raise ValueError("give regex or equals, one of them")
        return self


# --- the steps ---------------------------------------------------------------


class _Step(_Spec, ABC):
    kind: ClassVar[str]
    name: str | None = Field(
        default=None, description="How the step is called in results (default: what it does)."
    )

    def label(self) -> str:
        """The step's name in results and messages; never holds a typed value."""
        return self.name or self.describe()

    @abstractmethod
    def describe(self) -> str:
        """What the step does, for its default name."""

    @abstractmethod
    async def perform(self, page: Page, timeout: float) -> None:
        """Do the step within ``timeout`` seconds; raise StepFailed or a Playwright error."""


class GotoStep(_Step):
    """Load a URL and wait for its load event."""

    kind: ClassVar[str] = "goto"
    goto: str = Field(description="The http:// or https:// URL to load.")

    @field_validator("goto")
    @classmethod
    def _http(cls, value: str) -> str:
        return _http_url(value)

    def describe(self) -> str:
        return f"goto {self.goto}"

    async def perform(self, page: Page, timeout: float) -> None:
        response = await page.goto(self.goto, timeout=timeout * 1000)
        if response is not None and response.status >= 400:
            raise StepFailed(f"HTTP status {response.status}")


class ClickStep(_Step):
    """Click an element (waiting until it is visible, stable and enabled)."""

    kind: ClassVar[str] = "click"
    click: Target

    def describe(self) -> str:
        return f"click {self.click.describe()}"

    async def perform(self, page: Page, timeout: float) -> None:
        await self.click.locate(page).click(timeout=timeout * 1000)


class FillStep(_Step):
    """Type a value into an input (its old content is replaced)."""

    kind: ClassVar[str] = "fill"
    fill: FillSpec

    def describe(self) -> str:
        return f"fill {self.fill.describe()}"

    async def perform(self, page: Page, timeout: float) -> None:
        await self.fill.locate(page).fill(self.fill.value, timeout=timeout * 1000)


class PressStep(_Step):
    """Press a key in an element (Enter to submit a form)."""

    kind: ClassVar[str] = "press"
    press: PressSpec

    def describe(self) -> str:
        return f"press {self.press.key} in {self.press.describe()}"

    async def perform(self, page: Page, timeout: float) -> None:
        await self.press.locate(page).press(self.press.key, timeout=timeout * 1000)


class WaitForStep(_Step):
    """Wait until an element is visible (or hidden, attached, detached)."""

    kind: ClassVar[str] = "wait_for"
    wait_for: WaitSpec

    def describe(self) -> str:
        return f"wait_for {self.wait_for.describe()} {self.wait_for.state}"

    async def perform(self, page: Page, timeout: float) -> None:
        locator = self.wait_for.locate(page).first
        await locator.wait_for(state=self.wait_for.state, timeout=timeout * 1000)


class ExpectUrlStep(_Step):
    """Wait until the page's URL matches."""

    kind: ClassVar[str] = "expect_url"
    expect_url: ExpectUrlSpec

    def describe(self) -> str:
        spec = self.expect_url
        return f"expect_url {spec.regex if spec.regex is not None else spec.equals}"

    async def perform(self, page: Page, timeout: float) -> None:
        spec = self.expect_url
        pattern = re.compile(spec.regex) if spec.regex is not None else None

        def matches(url: str) -> bool:
            return pattern.search(url) is not None if pattern is not None else url == spec.equals

        async def url() -> str:
            return page.url

        got = await _poll(url, matches, timeout)
        if not matches(got):
            raise StepFailed(f"got {got}")


class ExpectTitleStep(_Step):
    """Wait until the page's title is exactly this (whitespace collapsed)."""

    kind: ClassVar[str] = "expect_title"
    expect_title: str = Field(description="The exact title.")

    def describe(self) -> str:
        return f'expect_title "{self.expect_title}"'

    async def perform(self, page: Page, timeout: float) -> None:
        want = _collapse(self.expect_title)
        got = await _poll(page.title, lambda title: _collapse(title) == want, timeout)
        if _collapse(got) != want:
            raise StepFailed(f"title is {got!r}")


class ExpectTextStep(_Step):
    """Wait until an element's text contains ``text`` or matches ``regex``."""

    kind: ClassVar[str] = "expect_text"
    expect_text: ExpectTextSpec

    def describe(self) -> str:
        spec = self.expect_text
        wanted = f'"{spec.text}"' if spec.text is not None else f"/{spec.regex}/"
        return f"expect_text {spec.target.describe()} {wanted}"

    async def perform(self, page: Page, timeout: float) -> None:
        spec = self.expect_text
        locator = spec.target.locate(page)
        pattern = re.compile(spec.regex) if spec.regex is not None else None
        want = _collapse(spec.text or "")

        def matches(texts: list[str]) -> bool:
            if pattern is not None:
                return any(pattern.search(t) for t in texts)
            return any(want in _collapse(t) for t in texts)

        texts = await _poll(locator.all_inner_texts, matches, timeout)
        if not texts:
            raise StepFailed(f"no element matches {spec.target.describe()}")
        if not matches(texts):
            raise StepFailed(f"text is {_collapse(texts[0])[:200]!r}")


_STEPS: tuple[type[_Step], ...] = (
    GotoStep,
    ClickStep,
    FillStep,
    PressStep,
    WaitForStep,
    ExpectUrlStep,
    ExpectTitleStep,
    ExpectTextStep,
)
STEP_KINDS = tuple(step.kind for step in _STEPS)
_STEP_BY_KIND = {step.kind: step for step in _STEPS}


def _unknown_key(step: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'unknown key; did you mean ...? (allowed: ...)' for the model ``loc`` is in."""
    model: type[BaseModel] = step
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "unknown key"
        model = annotation
    allowed = sorted(f.alias or name for name, f in model.model_fields.items())
    hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.5)
    return (
        "unknown key"
        + (f"; did you mean {hint[0]!r}?" if hint else "")
        + f" (allowed: {', '.join(allowed)})"
    )


def _kind(value: Any) -> str | None:
    """The discriminator: a step is a mapping with one key naming its kind."""
    if isinstance(value, _Step):
        return value.kind
    if isinstance(value, dict):
        kinds = [str(key) for key in value if key in STEP_KINDS]
        if len(kinds) == 1:
            return kinds[0]
    return None


def _untagged(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a step, reporting errors at the YAML's own path (``steps.3.fill.value``).

    Pydantic puts the union's tag into each error's location (``fill.fill.value``);
    a mapping with no or several kinds gets one message listing them.
    """
    tag = _kind(value)
    if tag is None:
        if isinstance(value, dict):
            found = [key for key in value if key in STEP_KINDS]
            problem = f"has {' and '.join(found)}: one kind per step" if found else "no step kind"
        else:
            problem = f"a step is a mapping, got {type(value).__name__}"
        raise ValueError(f"{problem}; kinds: {', '.join(STEP_KINDS)}")
    try:
        return handler(value)
    except ValidationError as exc:
        errors: list[Any] = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            loc = loc[1:] if loc[:1] == (tag,) else loc
            entry: dict[str, Any] = {"type": error["type"], "loc": loc, "input": error["input"]}
            if "ctx" in error:
                entry["ctx"] = error["ctx"]
            if error["type"] == "extra_forbidden":
                # The config's message would list the job's options, not this step's keys.
                entry["type"] = "value_error"
                entry["ctx"] = {"error": ValueError(_unknown_key(_STEP_BY_KIND[tag], loc))}
            errors.append(entry)
        try:
            rebuilt = ValidationError.from_exception_data(exc.title, errors)
        except (KeyError, TypeError):  # an error type pydantic cannot rebuild: keep it as is
            raise exc from None
        raise rebuilt from None


Step = Annotated[
    Annotated[GotoStep, Tag("goto")]
    | Annotated[ClickStep, Tag("click")]
    | Annotated[FillStep, Tag("fill")]
    | Annotated[PressStep, Tag("press")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[ExpectUrlStep, Tag("expect_url")]
    | Annotated[ExpectTitleStep, Tag("expect_title")]
    | Annotated[ExpectTextStep, Tag("expect_text")],
    Discriminator(_kind),
    WrapValidator(_untagged),
]


class BrowserStepsOptions(BrowserOptions):
    steps: list[Step] = Field(
        min_length=1,
        description="What to do, in order: goto, click, fill, press, wait_for, expect_url, "
        "expect_title, expect_text. The run stops at the first step that does not pass.",
    )
    step_timeout: Duration = Field(
        default=10.0,
        description="How long one step may wait (for its element, navigation or "
        "expectation); the job's timeout bounds the whole flow.",
    )


class BrowserSteps(Check[BrowserStepsOptions]):
    """Runs scripted steps in a headless browser: log in, click, check what the page shows."""

    Options = BrowserStepsOptions

    slots = BROWSER_PAGES

    @classmethod
    def target_host(cls, options: BrowserStepsOptions) -> str | None:
        """The host of the first page the steps load."""
        gotos = (s.goto for s in options.steps if isinstance(s, GotoStep))
        return next((urlsplit(url).hostname for url in gotos), None)

    def __init__(self, options: BrowserStepsOptions) -> None:
        super().__init__(options)
        # Typed values never leave the run, ${ENV} or not (four characters or
        # longer, as the daemon's own masking: a shorter one would garble text).
        self._masker = SecretMasker()
        self._masker.set(s.fill.value for s in options.steps if isinstance(s, FillStep))

    async def run(self, ctx: RunContext) -> Result:
        result = await run_in_browser(ctx, self.options, self._flow)
        return Result(
            result.status,
            self._masker.mask(result.message),
            self._masker.mask(dict(result.fields)),
        )

    async def _flow(self, run: BrowserRun) -> Result:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        loop = asyncio.get_running_loop()
        steps: list[dict[str, Any]] = []
        outcome: Result | None = None
        unresolved: dict[str, str] = {}  # a goto whose host's name did not resolve
        for number, step in enumerate(self.options.steps, 1):
            label = step.label()
            if outcome is not None:
                steps.append({"step": number, "name": label, "status": "skipped"})
                continue
            left = run.work_deadline - loop.time()
            timeout = min(self.options.step_timeout, max(left, 0.001))
            cut_short = timeout < self.options.step_timeout
            started = time.perf_counter()
            status, problem = Status.OK, None
            try:
                await step.perform(run.page, timeout)
            except StepFailed as exc:
                # An expectation still unmet when the job's time ran out is a timeout.
                status, problem = Status.TIMEOUT if cut_short else Status.FAIL, str(exc)
            except PlaywrightTimeout:
                status, problem = _timed_out(step, timeout, cut_short)
            except PlaywrightError as exc:
                status, problem = _browser_error(step, exc)
                if isinstance(step, GotoStep):
                    unresolved = unresolved_fields(exc, step.goto)
            steps.append(
                {
                    "step": number,
                    "name": label,
                    "status": status.value,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
            if status is not Status.OK:
                outcome = Result(status, f"step {number} {label}: {problem}")
        if outcome is None:
            return Result.ok(f"{len(steps)} steps passed", steps=steps, title=await _title(run))
        return Result(outcome.status, outcome.message, {"steps": steps, **unresolved})


def _timed_out(step: _Step, timeout: float, cut_short: bool) -> tuple[Status, str]:
    waited = format_duration(round(timeout, 3))
    if cut_short:
        return Status.TIMEOUT, f"the job's timeout came before the step finished ({waited} left)"
    if isinstance(step, GotoStep):
        return Status.TIMEOUT, f"page did not load within {waited}"
    target = getattr(step, step.kind).describe()
    return Status.FAIL, f"no element matches {target} within {waited} (step_timeout)"


def _browser_error(step: _Step, exc: BaseException) -> tuple[Status, str]:
    text = short_error(exc)
    if isinstance(step, GotoStep):
        return Status.ERROR, text
    # "strict mode violation: locator('input') resolved to 2 elements", a bad selector.
    return Status.FAIL, text


async def _poll(read: Any, done: Any, timeout: float) -> Any:
    """Call ``read()`` until ``done(value)`` or ``timeout`` seconds; return the last value."""
    from playwright.async_api import Error as PlaywrightError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value: Any = None
    while True:
        try:
            value = await read()
        except PlaywrightError:  # a navigation replaced the document meanwhile
            pass
        else:
            if done(value):
                return value
        if loop.time() + POLL_INTERVAL > deadline:
            return value
        await asyncio.sleep(POLL_INTERVAL)


async def _title(run: BrowserRun) -> str | None:
    from playwright.async_api import Error as PlaywrightError

    try:
        return await run.page.title()
    except PlaywrightError:
        return None


def _collapse(text: str) -> str:
    """Runs of whitespace (non-breaking spaces included) as one space, trimmed."""
    return " ".join(text.split())
