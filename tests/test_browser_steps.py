"""browser-steps in a real headless Chromium against a small login app on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import pytest
from pydantic import ValidationError

from runner.builtins.browser.steps import BrowserSteps, BrowserStepsOptions
from runner.plugin import Status
from runner.resources import Resources
from runner.testing import run_check
from test_page_title import read_png

EMAIL = "ada@example.test"
PASSWORD = "correct horse battery"
#: What the secret test types: the app echoes it into the page and the console.
SECRET = "s3cr3t-Hunter-42"
SESSION = "session-7f3a"


class _LoginApp(BaseHTTPRequestHandler):
    """A form, a cookie, a redirect to a dashboard. A failed login echoes the
    typed password into the page and the console, as careless apps do."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/login":
            error = parse_qs(query).get("error", [""])[0]
            self._html(
                "Sign in",
                f"<h1>{'Wrong password' if error else 'Sign in'}</h1>"
                '<form method="post" action="/login">'
                '<label>Email <input id="email" name="email"></label>'
                '<label>Password <input id="password" name="password" type="password"></label>'
                '<button type="submit">Sign in</button></form>',
            )
        elif path == "/dashboard":
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            if "session" in cookie and cookie["session"].value == SESSION:
                self._html("Dashboard", "<h1>Welcome, Ada</h1><p>3 new messages</p>")
            else:
                self._redirect("/login")
        elif path == "/echo":
            typed = parse_qs(query).get("p", [""])[0]
            self._html(
                "Echo",
                f"<h1>You typed {typed}</h1><script>console.error('typed: {typed}')</script>",
            )
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        email, password = form.get("email", [""])[0], form.get("password", [""])[0]
        if (email, password) == (EMAIL, PASSWORD):
            self._redirect("/dashboard", cookie=f"session={SESSION}; Path=/; HttpOnly")
        elif password == SECRET:
            self._redirect(f"/echo?p={password}")
        else:
            self._redirect("/login?error=1")

    def _redirect(self, location: str, cookie: str | None = None) -> None:
        self.send_response(303)
        self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _html(self, title: str, body: str) -> None:
        data = f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginApp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="login-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    res = Resources()
    try:
        yield res
    finally:
        await res.aclose()


def login_steps(app: str, password: str) -> list[dict[str, Any]]:
    return [
        {"goto": f"{app}/login"},
        {"fill": {"selector": "#email", "value": EMAIL}},
        {"fill": {"label": "Password", "value": password}},
        {"click": {"role": "button", "name": "Sign in"}},
        {"expect_url": {"regex": "/dashboard$"}},
        {"expect_text": {"selector": "h1", "text": "Welcome"}},
        {"expect_title": "Dashboard"},
    ]


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


async def test_login_flow_passes_and_reports_each_step(app: str, resources: Resources) -> None:
    result = await run_check(
        BrowserSteps, {"steps": login_steps(app, PASSWORD)}, timeout=20, resources=resources
    )
    assert result.status is Status.OK, result.message
    assert result.message == "7 steps passed"
    steps = result.fields["steps"]
    assert [s["name"] for s in steps] == [
        f"goto {app}/login",
        "fill #email",
        'fill label "Password"',
        'click button "Sign in"',
        "expect_url /dashboard$",
        'expect_text h1 "Welcome"',
        'expect_title "Dashboard"',
    ]
    assert [s["step"] for s in steps] == list(range(1, 8))
    assert all(s["status"] == "ok" and s["duration_ms"] >= 0 for s in steps), steps
    fields = result.fields
    assert (fields["url"], fields["title"], fields["http_status"]) == (
        f"{app}/dashboard",
        "Dashboard",
        200,
    )
    assert "screenshot" not in fields
    # Page metrics, of the page the flow ended on.
    metrics = fields["metrics"]
    assert 0 < metrics["ttfb_ms"] <= metrics["load_ms"]
    assert metrics["requests"] == 1


async def test_wrong_password_fails_at_the_url_step_with_a_screenshot(
    app: str, resources: Resources
) -> None:
    result = await run_check(
        BrowserSteps,
        # The expectation waits up to step_timeout for the URL to change.
        {"steps": login_steps(app, "wrong password"), "step_timeout": "1500ms"},
        timeout=20,
        resources=resources,
    )
    assert result.status is Status.FAIL
    assert result.message == f"step 5 expect_url /dashboard$: got {app}/login?error=1"
    statuses = [s["status"] for s in result.fields["steps"]]
    assert statuses == ["ok"] * 4 + ["fail"] + ["skipped"] * 2
    width, height, pixels = read_png(_read(result.fields["screenshot"]))
    assert width == 1280 and height >= 720
    assert len(set(pixels)) > 2, "a blank screenshot"
    assert "wrong password" not in json.dumps(result.fields)


async def test_missing_selector_names_the_step_and_the_selector(
    app: str, resources: Resources
) -> None:
    steps = [
        {"goto": f"{app}/login"},
        {"click": {"selector": "#no-such-button"}, "name": "press the big button"},
    ]
    result = await run_check(
        BrowserSteps, {"steps": steps, "step_timeout": "1s"}, timeout=20, resources=resources
    )
    assert result.status is Status.FAIL
    assert result.message == (
        "step 2 press the big button: no element matches #no-such-button within 1s (step_timeout)"
    )
    assert [s["status"] for s in result.fields["steps"]] == ["ok", "fail"]
    assert _read(result.fields["screenshot"])[:4] == b"\x89PNG"


async def test_ambiguous_target_fails_and_the_job_timeout_cuts_an_expectation_short(
    app: str, resources: Resources
) -> None:
    ambiguous = await run_check(
        BrowserSteps,
        {"steps": [{"goto": f"{app}/login"}, {"fill": {"selector": "input", "value": "x"}}]},
        timeout=20,
        resources=resources,
    )
    assert ambiguous.status is Status.FAIL
    assert (ambiguous.message or "").startswith("step 2 fill input: strict mode violation")

    # step_timeout is 10 s, the job's 6 s: the job's timeout ends the wait
    # (6 s, not less: the first step must load the page on a busy machine too).
    cut = await run_check(
        BrowserSteps,
        {"steps": [{"goto": f"{app}/login"}, {"expect_title": "Nope"}]},
        timeout=6,
        resources=resources,
    )
    assert cut.status is Status.TIMEOUT
    assert cut.message == "step 2 expect_title \"Nope\": title is 'Sign in'"
    assert [s["status"] for s in cut.fields["steps"]] == ["ok", "timeout"]
    assert _read(cut.fields["screenshot"])[:4] == b"\x89PNG"


def test_a_typed_secret_never_appears_in_any_output(app: str, tmp_path: Path) -> None:
    # Through the real daemon, with the password from the environment: the
    # app echoes it into its page, title and console, and a step fails on it.
    config = tmp_path / "secret.yaml"
    config.write_text(
        "jobs:\n"
        "  - name: login-flow\n"
        "    plugin: browser-steps\n"
        "    timeout: 20s\n"
        "    options:\n"
        "      trace: on-failure\n"
        "      step_timeout: 1500ms\n"
        "      steps:\n"
        f"        - goto: {app}/login\n"
        f"        - fill: {{selector: '#email', value: {EMAIL}}}\n"
        "        - fill: {selector: '#password', value: '${LOGIN_PASSWORD}'}\n"
        "        - press: {selector: '#password', key: Enter}\n"
        "        - expect_text: {selector: h1, text: Welcome}\n"
    )
    state = tmp_path / "state"
    env = {**os.environ, "LOGIN_PASSWORD": SECRET, "XDG_STATE_HOME": str(state)}
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    finished = [json.loads(line) for line in proc.stdout.splitlines()]
    (result,) = [e for e in finished if e.get("event") == "job.finished"]
    assert result["status"] == "fail"
    assert result["message"] == "step 5 expect_text h1 \"Welcome\": text is 'You typed ***'"
    assert result["console_error_examples"] == ["typed: ***"]
    assert Path(result["screenshot"]).is_file() and Path(result["trace"]).is_file()

    history = subprocess.run(
        [sys.executable, "-m", "runner", "history", str(config), "login-flow", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert history.returncode == 0, history.stderr
    assert "You typed ***" in history.stdout
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, "history": history.stdout}
    for name, text in outputs.items():
        assert SECRET not in text, name
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files)
    assert any(p.name.endswith(".sqlite3") for p in files)
    for path in files:
        assert SECRET not in str(path.relative_to(state))
        if path.suffix != ".zip":  # the trace records what was typed: documented
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        pytest.param({"clik": {"selector": "a"}}, "no step kind; kinds: goto, click", id="typo"),
        pytest.param(
            {"click": {"selector": "a"}, "fill": {"selector": "a", "value": "x"}},
            "has click and fill: one kind per step",
            id="two-kinds",
        ),
        pytest.param({"fill": {"selector": "a"}}, "steps.0.fill.value", id="missing-value"),
        pytest.param(
            {"click": {"name": "Sign in"}}, "exactly one of selector, role", id="no-target"
        ),
        pytest.param({"click": {"role": "buton"}}, "steps.0.click.role", id="unknown-role"),
        pytest.param({"expect_url": {"regex": "(x"}}, "not a valid regular", id="bad-regex"),
        pytest.param({"goto": "ftp://x/"}, "http:// or https://", id="not-http"),
        pytest.param(
            {"fill": {"selector": "a", "valeu": "x"}},
            r"unknown key; did you mean 'value'\? \(allowed: exact, label, name, role, selector",
            id="unknown-key",
        ),
    ],
)
def test_steps_are_validated(step: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        BrowserStepsOptions.model_validate({"steps": [step]})


def test_runner_check_names_file_line_job_and_field(tmp_path: Path) -> None:
    config = tmp_path / "flows.yaml"
    config.write_text(
        "jobs:\n"
        "  - name: login-flow\n"
        "    plugin: browser-steps\n"
        "    options:\n"
        "      steps:\n"
        "        - goto: https://app.example/login\n"
        "        - fill: {selector: '#password'}\n"
        "        - clik: {role: button}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert (
        f"{config}:7: jobs[0] 'login-flow': options.steps[1].fill.value: required field is missing"
        in proc.stderr
    )
    assert f"{config}:8: jobs[0] 'login-flow': options.steps[2]: no step kind" in proc.stderr


def test_schema_lets_an_editor_complete_the_steps() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "schema"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    # Each plugin's options schema is selected by the value of `plugin` (if/then).
    (selected,) = [
        c["then"]
        for c in schema["properties"]["jobs"]["items"]["allOf"]
        if c["if"]["properties"]["plugin"]["const"] == "browser-steps"
    ]
    options = schema["$defs"][selected["properties"]["options"]["$ref"].rpartition("/")[2]]
    variants = options["properties"]["steps"]["items"]["oneOf"]
    kinds = set()
    for variant in variants:
        definition = schema["$defs"][variant["$ref"].rpartition("/")[2]]
        kinds |= set(definition["required"])
    assert kinds == {
        "goto",
        "click",
        "fill",
        "press",
        "wait_for",
        "expect_url",
        "expect_title",
        "expect_text",
    }
    # The issue's own example is valid for an editor; a typo in a step is not.
    config: dict[str, Any] = {
        "jobs": [
            {
                "name": "login-flow",
                "plugin": "browser-steps",
                "timeout": "30s",
                "options": {"steps": login_steps("https://app.example", "${LOGIN_PASSWORD}")},
            }
        ]
    }
    jsonschema.validate(config, schema)
    config["jobs"][0]["options"]["steps"].append({"clik": {"role": "button"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)
