"""Alerts end to end: a real daemon, a local target switched between 200 and 500,
and a local webhook receiver that records what it is sent."""

from __future__ import annotations

import hashlib
import hmac
import re
import signal
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from helpers import Peer, RunnerProcess, closed_port, run_cli, serve_until, wait_until
from runner.model import RunRecord
from runner.notifier import Alert, AlertEvent
from runner.plugin import Result
from runner.testing import running_daemon

WriteConfig = Callable[..., Path]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def alert_config(write_config: WriteConfig, target: Peer, receiver: Peer, extra: str = "") -> Path:
    return write_config(
        f"""
        history: {{flush_every: 50ms}}
        notifiers:
          - name: ops
            notifier: webhook
            options: {{url: "{receiver.url}/hook", secret: "${{HOOK_SECRET}}", retries: 0}}
            {extra}
        defaults: {{interval: 100ms, failure_threshold: 3, success_threshold: 2}}
        jobs:
          - {{name: api, plugin: http-status, notify: [ops], options: {{url: "{target.url}/"}}}}
        """
    )


SECRET = "hmac-secret-value-4711"


def test_one_down_one_recovered_per_episode_and_none_again_after_a_restart(
    write_config: WriteConfig, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    config = alert_config(write_config, peer, peer)
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", job="api", status="ok", count=3)
        assert peer.received == []
        peer.status = 500
        wait_until(lambda: peer.events("down"), 10, "a down alert")
        failures = runner.find(event="job.finished", status="fail")
        runner.wait_for(event="job.finished", status="fail", count=len(failures) + 4)
        assert len(peer.events("down")) == 1  # once per episode, not per failure
        down = peer.events("down")[0]
        fails = runner.find(event="job.finished", status="fail")
        # Sent after the third failure in a row, saying so, and since the first one.
        assert down["consecutive"] == 3
        assert down["last"]["status"] == "fail" and down["last"]["message"].startswith("status 500")
        assert down["last"]["duration_ms"] == fails[2]["duration_ms"]
        assert abs(epoch(down["since"]) - epoch(fails[0]["timestamp"])) < 0.05
        assert (down["job"], down["plugin"], down["title"]) == ("api", "http-status", "api is DOWN")
        # The receiver can check who sent it.
        expected = hmac.new(SECRET.encode(), down["raw"], hashlib.sha256).hexdigest()
        assert down["headers"]["X-Runner-Signature"] == f"sha256={expected}"

        peer.status = 200
        wait_until(lambda: peer.events("recovered"), 10, "a recovered alert")
        oks = runner.find(event="job.finished", status="ok")
        runner.wait_for(event="job.finished", status="ok", count=len(oks) + 4)
        assert len(peer.events("recovered")) == 1
        recovered = peer.events("recovered")[0]
        assert recovered["consecutive"] == 2
        # It says how long the job was down: from its first failure to its first ok.
        assert recovered["down_since"] == down["since"]
        assert recovered["down_for"] == pytest.approx(
            epoch(recovered["since"]) - epoch(down["since"]), abs=1e-3
        )
        assert recovered["body"].startswith("down for ")
        # The title once: text is the title, then a body that does not repeat it.
        for alert in (down, recovered):
            assert alert["text"] == f"{alert['title']}\n{alert['body']}"
            assert alert["title"] not in alert["body"]

        # Down again, then a restart in the middle of the outage.
        peer.status = 500
        wait_until(lambda: len(peer.events("down")) == 2, 10, "the second down alert")
        assert runner.stop() == 0
    assert SECRET not in "".join(runner.raw_lines) + runner.stderr

    with RunnerProcess("serve", str(config)) as again:
        again.wait_for(event="job.finished", status="fail", count=5)
        assert len(peer.events("down")) == 2  # the restart did not page again
        peer.status = 200
        wait_until(lambda: len(peer.events("recovered")) == 2, 10, "the second recovery")
        assert again.stop() == 0
    assert [r["event"] for r in peer.received] == ["down", "recovered", "down", "recovered"]
    # The second incident spanned the restart: its recovery still knows when it began.
    assert peer.received[3]["down_since"] == peer.received[2]["since"]


def test_an_alert_being_sent_at_stop_is_finished_and_not_sent_again_after_a_restart(
    write_config: WriteConfig, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    peer.status = 500
    peer.modes = ["slow"]  # the down alert arrives, and its answer waits
    config = alert_config(write_config, peer, peer)
    with RunnerProcess("serve", str(config)) as runner:
        wait_until(lambda: peer.events("down"), 10, "the down alert on its way")
        runner.proc.send_signal(signal.SIGTERM)
        runner.wait_for(event="daemon.stopping")
        # The receiver answers only once the daemon is stopping: the alert in
        # flight is finished, and the ledger says it was sent.
        peer.release.set()
        assert runner.stop() == 0
        assert runner.find(event="alert.sent", alert="down")
    with RunnerProcess("serve", str(config)) as again:
        again.wait_for(event="job.finished", status="fail", count=5)
        assert again.stop() == 0
    assert [r["event"] for r in peer.received] == ["down"]


def test_a_down_alert_that_was_never_delivered_is_sent_after_a_restart(
    write_config: WriteConfig, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    peer.mode = "error"  # the receiver is broken during the first run
    peer.status = 500
    config = alert_config(write_config, peer, peer)
    serve_until(config, event="alert.failed", timeout=10)
    peer.mode = "ok"
    delivered_before = len(peer.received)
    serve_until(config, event="alert.sent", timeout=10)
    new = peer.received[delivered_before:]
    assert [r["event"] for r in new] == ["down"]


def test_reminders_come_every_repeat_every_while_down(
    write_config: WriteConfig, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    peer.status = 500
    config = alert_config(write_config, peer, peer, extra="repeat_every: 400ms")
    with RunnerProcess("serve", str(config)) as runner:
        wait_until(lambda: len(peer.events("reminder")) >= 3, 15, "three reminders")
        assert runner.stop() == 0
    alerts = [r for r in peer.received if r["event"] in ("down", "reminder")]
    assert peer.received[0]["event"] == "down"
    # Reminders ride on results (every 100 ms): due every 400 ms, late by about
    # one interval. Timed by the result each alert carries (when the daemon
    # decided), not by when the receiver got it: a delivery's own latency
    # varies by more than 0.1 s on a loaded machine (the first one also
    # creates the HTTP client), and a late delivery followed by a prompt one
    # would look like a reminder sent early.
    # (A result's finished_at precedes the decision by the hub's microseconds:
    # 20 ms of slack for a process the kernel kept waiting in between.)
    decided = [
        datetime.fromisoformat(r["last"]["finished_at"].replace("Z", "+00:00")).timestamp()
        for r in alerts
    ]
    gaps = [b - a for a, b in pairwise(decided)]
    assert all(0.38 <= gap <= 0.4 + 0.1 + 0.4 for gap in gaps), gaps


def test_broken_receivers_never_delay_checks_and_fail_once_per_episode(
    write_config: WriteConfig, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = Peer()
    hang.mode = "hang"
    monkeypatch.setenv("HOOK_TOKEN", "bearer-token-never-logged")
    try:
        config = write_config(
            f"""
            notifiers:
              - name: refused
                notifier: webhook
                repeat_every: 200ms
                options: {{url: "http://127.0.0.1:{closed_port()}/", retries: 1, retry_delay: 10ms}}
              - name: error
                notifier: webhook
                repeat_every: 200ms
                options:
                  url: "{peer.url}/hook"
                  retries: 0
                  headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}
              - name: hang
                notifier: webhook
                options: {{url: "{hang.url}/hook", timeout: 30s, retries: 0}}
            defaults: {{interval: 100ms, failure_threshold: 1}}
            jobs:
              - name: down
                plugin: http-status
                notify: [refused, error, hang]
                options: {{url: "http://127.0.0.1:{closed_port()}/"}}
              - {{name: tick, plugin: sleep, options: {{seconds: 0}}}}
            """
        )
        peer.mode = "error"
        with RunnerProcess("serve", str(config)) as runner:
            runner.wait_for(event="job.finished", job="tick", count=25, timeout=20)
            wait_until(lambda: len(peer.received) >= 3, 10, "three tries at the 500 receiver")
            assert runner.stop(timeout=15) == 0
    finally:
        hang.close()
    for job in ("down", "tick"):
        times = [epoch(e["timestamp"]) for e in runner.find(event="job.finished", job=job)]
        gaps = [b - a for a, b in pairwise(times)]
        # Every 100 ms, whatever the receivers do: the hanging one holds a send
        # for 30 s, so a check that waited for a delivery (or a loop blocked by
        # one) would show a gap of 30 s. The bound is far from both: on a
        # loaded 2-core machine a 100 ms job's runs come up to a few hundred
        # ms late, and a bound of 0.35 s failed there with nothing wrong.
        assert max(gaps) < 3.0, (job, max(gaps))
    failed = runner.find(event="alert.failed")
    assert sorted(e["notifier"] for e in failed) == ["error", "refused"]  # once each
    assert "answered 500" in next(e for e in failed if e["notifier"] == "error")["error"]
    output = "".join(runner.raw_lines) + runner.stderr
    assert "bearer-token-never-logged" not in output
    assert peer.received[0]["headers"]["Authorization"] == "Bearer bearer-token-never-logged"


def test_alert_texts_say_each_thing_once() -> None:
    began = datetime(2026, 12, 7, 21, 13, 7, tzinfo=UTC).timestamp()
    failed = RunRecord.of(
        "api", "http-status", Result.fail("status 500"), started_at=began + 20, duration_ms=40
    )
    down = Alert("api", "http-status", AlertEvent.DOWN, began, failed, 3, down_since=began)
    assert down.title == "api is DOWN"
    assert down.body == (
        "last result: fail: status 500\ndown since 2026-12-07 21:13:07 UTC (3 in a row)"
    )
    assert down.text == f"{down.title}\n{down.body}"
    reminder = replace(
        down,
        event=AlertEvent.REMINDER,
        last=replace(failed, finished_at=began + 3725),
        consecutive=40,
    )
    assert reminder.body.splitlines()[0] == "down for 1h 2m so far"
    ok = RunRecord.of("api", "http-status", Result.ok(), started_at=began + 750, duration_ms=1)
    recovered = Alert(
        "api",
        "http-status",
        AlertEvent.RECOVERED,
        began + 750,
        ok,
        2,
        status_page="https://status.example/#api",
        down_since=began,
    )
    assert recovered.title == "api recovered"
    assert recovered.down_for == 750
    assert recovered.body == (
        "down for 12m 30s, since 2026-12-07 21:13:07 UTC\n"
        "last result: ok\n"
        "up since 2026-12-07 21:25:37 UTC (2 in a row)\n"
        "https://status.example/#api"
    )
    assert recovered.to_json()["down_for"] == 750
    # Recovered without knowing when it went down: no guess.
    assert replace(recovered, down_since=None).body.startswith("last result: ok")
    test = Alert("runner", "", AlertEvent.TEST, None, None, 0)
    assert (test.title, test.body) == (
        "test alert from runner",
        "This is a test, sent by runner notify-test. No job is down.",
    )
    assert test.to_json()["down_for"] is None


def test_notify_test_sends_one_test_alert_and_says_if_it_arrived(
    write_config: WriteConfig, peer: Peer
) -> None:
    config = write_config(
        f"""
        notifiers:
          - {{name: ops, notifier: webhook, options: {{url: "{peer.url}/hook"}}}}
          - name: nobody
            notifier: webhook
            options: {{url: "http://127.0.0.1:{closed_port()}/", retries: 0}}
        jobs:
          - {{name: nap, plugin: sleep}}
        """
    )
    ok = run_cli("notify-test", str(config), "ops")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ops: test alert delivered" in ok.stdout
    assert [r["event"] for r in peer.received] == ["test"]
    (sent,) = peer.received
    assert sent["body"] == "This is a test, sent by runner notify-test. No job is down."
    assert (sent["since"], sent["last"], sent["consecutive"]) == (None, None, 0)
    failed = run_cli("notify-test", str(config), "nobody")
    assert failed.returncode == 1
    assert "nobody: not delivered: POST http://127.0.0.1:" in failed.stdout
    unknown = run_cli("notify-test", str(config), "opps")
    assert unknown.returncode == 2
    assert "no notifier named 'opps'" in unknown.stderr and "ops, nobody" in unknown.stderr


def test_notifier_config_errors_name_the_line_and_field(write_config: WriteConfig) -> None:
    config = write_config(
        """
        notifiers:
          - {name: ops, notifier: webhok, options: {url: "http://127.0.0.1:1/"}}
          - {name: chat, notifier: log}
        jobs:
          - {name: api, plugin: sleep, notify: [chta]}
          - {name: echo, plugin: echo-listener, notify: [chat]}
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    err = result.stderr
    assert f"{config}:2: notifiers[0] 'ops': notifier: unknown notifier 'webhok'" in err
    assert "installed notifiers: apprise, log, webhook" in err
    assert (
        f"{config}:5: jobs[0] 'api': notify[0]: unknown notifier 'chta'; did you mean 'chat'?"
        in err
    )
    assert "echo-listener is a service: it runs continuously, so it takes no notify" in err


async def test_the_log_notifier_logs_alerts(write_config: WriteConfig) -> None:
    config = write_config(
        f"""
        notifiers:
          - {{name: journal, notifier: log}}
        jobs:
          - name: api
            plugin: http-status
            interval: 50ms
            failure_threshold: 2
            notify: [journal]
            options: {{url: "http://127.0.0.1:{closed_port()}/"}}
        """
    )
    with capture_logs() as logs:
        async with running_daemon(config) as daemon:
            await daemon.wait_for_results("api", count=4)
            state = daemon.daemon.hub.state("api")
            assert state.down and state.consecutive_not_ok >= 2
            deadline = time.monotonic() + 5
            while not any(e["event"] == "alert.down" for e in logs):
                assert time.monotonic() < deadline, "no alert.down logged"
                await daemon.wait_for_results("api", count=len(daemon.results_for("api")) + 1)
    downs = [e for e in logs if e["event"] == "alert.down"]
    assert len(downs) == 1
    assert downs[0]["job"] == "api" and downs[0]["notifier"] == "journal"
    assert downs[0]["consecutive"] == 2
    assert downs[0]["down_for"] >= 0  # from the first failure to the second


def test_apprise_delivers_to_a_local_receiver_and_says_why_not(
    write_config: WriteConfig, peer: Peer
) -> None:
    # Apprise's json:// schema POSTs {"title", "message", "type", ...} to http://host:port/path.
    port = peer.url.rsplit(":", 1)[1]
    config = write_config(
        f"""
        notifiers:
          - {{name: chat, notifier: apprise, options: {{urls: ["json://127.0.0.1:{port}/apprise"]}}}}
          - name: refused
            notifier: apprise
            options: {{urls: ["json://127.0.0.1:{closed_port()}/hook-secret-token"]}}
        jobs:
          - {{name: nap, plugin: sleep}}
        """
    )
    ok = run_cli("notify-test", str(config), "chat")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (got,) = peer.received
    # A test says it is a test, and nothing else (no "down since", no streak).
    assert got["title"] == "test alert from runner"
    assert got["message"] == "This is a test, sent by runner notify-test. No job is down."
    assert got["type"] == "info"

    # The receiver answers 500, then nobody listens: each time Apprise's cause.
    peer.mode = "error"
    answered = run_cli("notify-test", str(config), "chat")
    assert answered.returncode == 1
    assert "chat: not delivered: Apprise could not deliver to every URL (json://...): " in (
        answered.stdout
    )
    assert "500" in answered.stdout, answered.stdout  # Apprise's words for the 500
    refused = run_cli("notify-test", str(config), "refused")
    assert refused.returncode == 1
    assert "A Connection error occurred sending JSON notification to 127.0.0.1" in refused.stdout
    assert "hook-secret-token" not in refused.stdout + refused.stderr


def test_apprise_alerts_show_the_title_once_and_the_recovery_how_long(
    write_config: WriteConfig, peer: Peer
) -> None:
    # One peer is the target (GET, switched 200/500) and the receiver (POST).
    port = peer.url.rsplit(":", 1)[1]
    config = write_config(
        f"""
        history: {{enabled: false}}
        notifiers:
          - {{name: chat, notifier: apprise, options: {{urls: ["json://127.0.0.1:{port}/chat"]}}}}
        defaults: {{interval: 100ms, failure_threshold: 2, success_threshold: 1}}
        jobs:
          - {{name: api, plugin: http-status, notify: [chat], options: {{url: "{peer.url}/"}}}}
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", job="api", status="ok")
        peer.status = 500
        wait_until(lambda: len(peer.received) == 1, 10, "the down alert")
        peer.status = 200
        wait_until(lambda: len(peer.received) == 2, 10, "the recovered alert")
        assert runner.stop() == 0
    down, recovered = peer.received
    assert (down["title"], down["type"]) == ("api is DOWN", "failure")
    assert (recovered["title"], recovered["type"]) == ("api recovered", "success")
    for alert in (down, recovered):
        assert alert["title"] not in alert["message"]  # a chat shows the title once
    assert down["message"].startswith("last result: fail: status 500")
    assert re.match(
        r"down for \d+s, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", recovered["message"]
    )


def test_an_apprise_url_apprise_cannot_parse_is_a_config_error(
    write_config: WriteConfig, peer: Peer
) -> None:
    port = peer.url.rsplit(":", 1)[1]
    good = f"""
        notifiers:
          - name: chat
            notifier: apprise
            options:
              urls:
                - "json://127.0.0.1:{port}/apprise"
        defaults: {{interval: 100ms}}
        jobs:
          - {{name: nap, plugin: sleep, notify: [chat], options: {{seconds: 0}}}}
        """
    config = write_config(
        good.replace(
            '- "json://127.0.0.1',
            '- "jsn://user:s3cr3t-t0ken@127.0.0.1:1/x"\n                - "slack://abcdef"\n'
            '                - "json://127.0.0.1',
        ),
        name="runner.yaml",
    )
    check = run_cli("check", str(config))
    assert check.returncode == 2
    err = check.stderr
    assert (
        f"{config}:6: notifiers[0] 'chat': options.urls[0]: no Apprise service takes "
        "jsn:// URLs; did you mean json://?"
    ) in err
    assert f"{config}:7: notifiers[0] 'chat': options.urls[1]: this slack:// URL cannot" in err
    assert "urls[2]" not in err  # the good one
    assert "s3cr3t-t0ken" not in check.stdout + err and "abcdef" not in check.stdout + err

    # The same on reload: refused, saying where, and the daemon runs on.
    config.write_text(textwrap.dedent(good).lstrip("\n"))
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", job="nap")
        config.write_text(
            textwrap.dedent(good).lstrip("\n").replace("json://127.0.0.1", "jsn://127.0.0.1")
        )
        runner.proc.send_signal(signal.SIGHUP)
        (refused,) = runner.wait_for(event="reload.refused")
        assert refused["problems"] == [
            f"{config}:6: notifiers[0] 'chat': options.urls[0]: no Apprise service takes "
            "jsn:// URLs; did you mean json://?"
        ]
        count = len(runner.find(event="job.finished", job="nap"))
        runner.wait_for(event="job.finished", job="nap", count=count + 2)
        assert runner.stop() == 0


def test_a_broken_notifier_is_named_and_never_stops_the_checks(
    write_config: WriteConfig, testplugins: Path
) -> None:
    config = write_config(
        """
        notifiers:
          - {name: pager, notifier: broken-notifier}
        defaults: {interval: 100ms, failure_threshold: 1}
        jobs:
          - {name: boom, plugin: raises, notify: [pager]}
        """
    )
    check = run_cli("check", str(config))
    assert check.returncode == 2
    assert "notifier 'broken-notifier'" in check.stderr
    assert "module 'runner_testplugins_not_installed' is not installed" in check.stderr
    with RunnerProcess("serve", str(config)) as runner:
        failed = runner.wait_for(event="alert.failed")[0]
        runner.wait_for(event="job.finished", job="boom", count=5)
        assert runner.stop() == 0
    loaded = runner.find(event="plugin.load_failed")
    assert [e["job"] for e in loaded] == ["notifier pager"]
    assert "is not installed" in failed["error"]


def test_plugins_lists_notifiers_and_alerts_link_to_the_status_page(
    write_config: WriteConfig, peer: Peer
) -> None:
    listing = run_cli("plugins").stdout
    for name in ("webhook", "apprise", "log"):
        assert f"{name}  (runner-daemon " in listing and "notifier" in listing
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0", external_url: "https://status.example/"}}
        notifiers:
          - {{name: ops, notifier: webhook, options: {{url: "{peer.url}/hook"}}}}
        defaults: {{interval: 100ms, failure_threshold: 1}}
        jobs:
          - name: "api v2"
            plugin: http-status
            notify: [ops]
            options: {{url: "http://127.0.0.1:{closed_port()}/"}}
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        wait_until(lambda: peer.events("down"), 10, "a down alert")
        assert runner.stop() == 0
    assert peer.events("down")[0]["status_page"] == "https://status.example/#api%20v2"
