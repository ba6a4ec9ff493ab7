"""A ${ENV} secret with quotes, a backslash, a space, '%', '<&>' and non-ASCII never
leaves the daemon, in any encoding the daemon produces (issue 12, section 3).

The secret is put where real configs put it (a URL's query and user info, a
header, an expected page title, a plugin option whose value a message repeats
with repr) and a real daemon runs until the job is down and alerted; then
every byte it wrote is searched for the secret and each of its encodings:
stdout, stderr, the history file (with its WAL), and every page of the HTTP
endpoint.
"""

from __future__ import annotations

import html
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
from pydantic import AnyHttpUrl, TypeAdapter

from helpers import RunnerProcess, run_cli, wait_until

WriteConfig = Callable[..., Path]

SECRET = "pw'\"\\ x%z<&>\u00e9-tail"
#: A URL's user info cannot hold a backslash or '%z' (a special URL's path separator,
#: a broken escape): quotes and a space there.
USER_SECRET = "us'er \"pa$$"


def encodings(secret: str) -> dict[str, str]:
    """The secret as each encoder the daemon's path uses would write it, made here
    independently of runner.secret_forms."""
    url = TypeAdapter(AnyHttpUrl)
    query_url = url.validate_python(f"http://h/?t={secret}")
    found = {}
    if "\\" not in secret:  # a backslash is a path separator in user info
        userinfo = str(url.validate_python(f"http://u:{secret}@h/"))
        found["pydantic-userinfo"] = userinfo.split("u:", 1)[1].rsplit("@", 1)[0]
    return found | {
        "raw": secret,
        "url-quote": quote(secret, safe=""),
        "url-quote-path": quote(secret),
        "url-quote-plus": quote_plus(secret),
        "url-quote-lower": quote(secret, safe="").lower(),
        "pydantic-query": str(query_url).split("?t=", 1)[1],
        "httpx-query": str(httpx.URL("http://h/", params={"t": secret})).split("?t=", 1)[1],
        "json": json.dumps(secret)[1:-1],
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json-of-json": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "repr": repr(secret)[1:-1],
        "html": html.escape(secret),
    }


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_every_encoding_of_a_secret_is_kept_out_of_every_output(
    write_config: WriteConfig, http_base: str, testplugins: Path, tmp_path: Path
) -> None:
    port = http_base.rsplit(":", 1)[1]
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0"}}
        history: {{flush_every: 50ms}}
        notifiers:
          - {{name: journal, notifier: log}}
        defaults: {{interval: 1h, timeout: 20s, failure_threshold: 1}}
        jobs:
          - name: query
            plugin: http-status
            notify: [journal]
            options:
              url: "{http_base}/error?token=${{SECRET}}"
              headers: {{X-Token: "t-${{SECRET_ASCII}}"}}
          - name: userinfo
            plugin: http-status
            options: {{url: "http://user:${{USER_SECRET}}@127.0.0.1:{port}/error"}}
          - name: title
            plugin: page-title
            notify: [journal]
            options: {{url: "{http_base}/ok", expect_title: "${{SECRET}}"}}
          - name: says
            plugin: says
            notify: [journal]
            options: {{value: "${{SECRET}}"}}
          - name: raises
            plugin: raises
            options: {{message: "${{SECRET}}"}}
        """,
        name="secrets.yaml",
    )
    env = {"SECRET": SECRET, "SECRET_ASCII": "plain-ascii-token", "USER_SECRET": USER_SECRET}
    pages: list[bytes] = []
    with RunnerProcess("serve", str(config), env=env) as runner:
        base = f"http://127.0.0.1:{runner.wait_for(event='http.started')[0]['port']}"
        for job in ("query", "userinfo", "title", "says", "raises"):
            runner.wait_for(event="job.finished", job=job, timeout=60)
        runner.wait_for(event="alert.down", count=3)

        def stored() -> bool:
            return all(
                json.loads(fetch(f"{base}/api/jobs/{job}/history"))
                for job in ("query", "title", "says")
            )

        wait_until(stored, 10, "stored runs")
        for path in (
            "/",
            "/metrics",
            "/api/status",
            "/api/recent",
            "/badge/query.svg",
            *(f"/api/jobs/{job}/history" for job in ("query", "userinfo", "title", "says")),
        ):
            pages.append(fetch(base + path))
        assert runner.stop() == 0

    history = run_cli("history", str(config), "query", "--json", env=env)
    status = run_cli("status", str(config), "--json", env=env)
    state = tmp_path / "state" / "runner"
    # The history and everything else kept (screenshots of failed page checks
    # included), by content and by name.
    kept = [p for p in state.rglob("*") if p.is_file()]
    stored_bytes = b"".join(p.read_bytes() for p in kept)
    stored_bytes += "\n".join(str(p.relative_to(state)) for p in kept).encode()
    outputs = {
        "stdout": "".join(runner.raw_lines).encode(),
        "stderr": runner.stderr.encode(),
        "history file": stored_bytes,
        "http": b"".join(pages),
        "runner history": history.stdout.encode(),
        "runner status": status.stdout.encode(),
    }
    # The runs happened and were masked, not dropped.
    query = runner.find(event="job.finished", job="query")[0]
    assert query["status"] == "fail" and "token=***" in query["url"], query
    says = runner.find(event="job.finished", job="says")[0]
    assert says["message"] == "got '***'" and says["seen"] == ["***"], says
    title = runner.find(event="job.finished", job="title")[0]
    assert title["status"] == "fail" and "***" in title["message"], title
    assert runner.find(event="alert.down", job="says")

    forms = [*encodings(SECRET).items(), *encodings(USER_SECRET).items()]
    forms.append(("header", "plain-ascii-token"))
    leaks = [
        f"{form} ({value!r}) in {where}"
        for form, value in forms
        for where, data in outputs.items()
        if value.encode() in data
    ]
    assert not leaks
