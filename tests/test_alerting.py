"""Alerting that does not flap: down_when / up_when (runner.model.alerting), in the
hub, in the config, across a restart, and end to end with a real daemon."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import Peer, RunnerProcess, wait_until
from runner.config import ConfigError, load_config
from runner.model import JobState, Rule, RunRecord, Thresholds
from runner.plugin import Result
from runner.results import ResultHub

WriteConfig = Callable[..., Path]

FLAP_PROOF = Thresholds(Rule(3, 5), Rule(4, 5))


def records(job: str, pattern: str, start: float = 1000.0) -> list[RunRecord]:
    """One record per letter: ``o`` ok, ``f`` fail; ten seconds apart."""
    return [
        RunRecord.of(
            job,
            "http-status",
            Result.ok() if letter == "o" else Result.fail("status 500"),
            started_at=start + 10 * i,
            duration_ms=5.0,
        )
        for i, letter in enumerate(pattern)
    ]


def transitions(hub: ResultHub, job: str, pattern: str) -> list[tuple[int, str]]:
    """(index of the result, transition) for each transition ``pattern`` makes."""
    states = [hub.publish(r) for r in records(job, pattern)]
    return [(i, s.transition) for i, s in enumerate(states) if s.transition]


# --------------------------------------------------------------------------- the rule


def test_a_rule_is_count_of_the_last_of_and_says_so() -> None:
    assert Rule.in_a_row(3) == Rule(3, 3) and Rule(3, 3).is_streak
    assert Rule(3, 3).describe("failures") == "3 failures in a row"
    assert Rule(3, 5).describe("failures") == "3 failures of the last 5"
    for count, of in ((0, 5), (6, 5), (1, 101)):
        with pytest.raises(ValueError, match="count <= of"):
            Rule(count, of)
    assert Thresholds().window == 0  # 3 and 2 in a row: the streak counts decide
    assert FLAP_PROOF.window == 5
    assert Thresholds(Rule(3, 3), Rule(4, 10)).window == 10


def test_the_window_counts_failures_in_the_last_of_results_whatever_their_order() -> None:
    down = Thresholds(Rule(3, 5), Rule(2, 2))
    assert down.is_down(1, "fofof") and down.is_down(1, "ooffof")
    assert not down.is_down(1, "ffoooof")  # two of the last five
    assert down.is_down(1, "fef") and not down.is_down(2, "ff")  # fewer results than of
    up = Thresholds(Rule(3, 3), Rule(4, 5))
    assert up.has_recovered(1, "ooofo") and not up.has_recovered(2, "fofoo")


# --------------------------------------------------------------------------- the hub


def test_an_alternating_target_is_one_incident_with_down_when_not_one_per_flip() -> None:
    flapping = "of" * 20  # 40 runs

    per_flip = ResultHub()
    per_flip.track("api", "http-status", "check", failure_threshold=1, success_threshold=1)
    assert [t for _, t in transitions(per_flip, "api", flapping)].count("down") == 20

    hub = ResultHub()
    hub.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    # Down on the third failure of five (the sixth result); alternating never
    # makes four passes of five, so it stays down.
    assert transitions(hub, "api", flapping) == [(5, "down")]
    state = hub.state("api")
    assert state.down and (state.consecutive_not_ok, state.failure_threshold) == (1, 3)
    # Back once four of the last five passed: the third pass ("ofooo").
    assert transitions(hub, "api", "ooooo") == [(2, "recovered")]


def test_down_since_is_the_first_failure_of_the_streak_that_completed_the_rule() -> None:
    hub = ResultHub()
    hub.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    states = [hub.publish(r) for r in records("api", "fofof")]
    assert states[-1].transition == "down"
    # The result that completed the rule followed an ok one: down since itself.
    assert states[-1].down_since == states[-1].since == states[-1].last.finished_at  # type: ignore[union-attr]

    hub = ResultHub()
    hub.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    states = [hub.publish(r) for r in records("api", "foff")]
    assert [s.transition for s in states] == [None, None, None, "down"]
    assert states[-1].down_since == states[2].last.finished_at  # type: ignore[union-attr]
    assert states[-1].consecutive_not_ok == 2


def _old_hub_rule(pattern: str, failures: int, successes: int) -> list[tuple[int, str]]:
    """The consecutive logic the hub had inline before down_when, as it was."""
    down, ok_run, bad_run, out = False, 0, 0, []
    for i, letter in enumerate(pattern):
        if letter == "o":
            ok_run, bad_run = ok_run + 1, 0
            if down and ok_run >= successes:
                down = False
                out.append((i, "recovered"))
        else:
            ok_run, bad_run = 0, bad_run + 1
            if not down and bad_run >= failures:
                down = True
                out.append((i, "down"))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_thresholds_in_a_row_decide_exactly_as_the_hub_did_before(seed: int) -> None:
    rng = random.Random(seed)
    for failures, successes in ((1, 1), (3, 2), (5, 4), (2, 7)):
        pattern = "".join(rng.choice("oof") for _ in range(300))
        hub = ResultHub()
        hub.track(
            "api", "http-status", "check", failure_threshold=failures, success_threshold=successes
        )
        assert transitions(hub, "api", pattern) == _old_hub_rule(pattern, failures, successes)
        # down_when {n of n} is the same rule: n failures in a row are exactly
        # n failures among the last n results (the streak count is a shortcut).
        hub = ResultHub()
        hub.track("api", "http-status", "check")
        for r in records("api", pattern):
            state = hub.publish(r)
            last = state.recent_codes[-failures:]
            counted = len(last) == failures and "o" not in last
            assert (state.consecutive_not_ok >= failures) == counted


def test_a_seeded_window_half_full_is_completed_by_the_next_failure() -> None:
    before = ResultHub()
    before.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    for r in records("api", "fof"):
        stored = before.publish(r)
    assert not stored.down

    after = ResultHub()
    after.seed([JobState("api", "http-status", "check", recent_codes=stored.recent_codes)])
    after.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    assert after.publish(records("api", "f", start=2000.0)[0]).transition == "down"

    forgot = ResultHub()  # what a restart without the statuses would do
    forgot.track("api", "http-status", "check", thresholds=FLAP_PROOF)
    assert forgot.publish(records("api", "f", start=2000.0)[0]).transition is None


def test_a_reload_that_changes_the_rule_counts_the_results_since_start() -> None:
    hub = ResultHub()
    hub.track("api", "http-status", "check")  # 3 in a row
    assert transitions(hub, "api", "fof") == []
    hub.track("api", "http-status", "check", thresholds=FLAP_PROOF)  # the reload
    assert (hub.state("api").failure_threshold, hub.state("api").recent_codes) == (3, "fof")
    assert transitions(hub, "api", "f") == [(0, "down")]


def test_a_hub_refuses_a_window_longer_than_the_statuses_it_keeps() -> None:
    with pytest.raises(ValueError, match="last 5 results, but the hub keeps 4"):
        ResultHub(keep_recent=4).track("api", "http-status", "check", thresholds=FLAP_PROOF)


# --------------------------------------------------------------------------- the config


def jobs_of(write_config: WriteConfig, text: str) -> dict[str, tuple[Thresholds, int, int]]:
    config = load_config(write_config(text))
    return {j.name: (j.thresholds, j.failure_threshold, j.success_threshold) for j in config.jobs}


def test_down_when_and_up_when_resolve_per_side_against_the_defaults(
    write_config: WriteConfig,
) -> None:
    got = jobs_of(
        write_config,
        """
        defaults:
          down_when: {failures: 3, of: 5}
          success_threshold: 4
        jobs:
          - {name: plain, plugin: sleep}
          - {name: streak, plugin: sleep, failure_threshold: 2}
          - {name: window, plugin: sleep, up_when: {successes: 4, of: 5}}
          - {name: same, plugin: sleep, down_when: {failures: 2, of: 2}}
        """,
    )
    assert got["plain"] == (Thresholds(Rule(3, 5), Rule(4, 4)), 3, 4)
    assert got["streak"] == (Thresholds(Rule(2, 2), Rule(4, 4)), 2, 4)
    assert got["window"] == (Thresholds(Rule(3, 5), Rule(4, 5)), 3, 4)
    assert got["same"][0] == got["streak"][0]


def test_both_forms_of_one_rule_in_one_place_name_the_line_job_and_field(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        """
        defaults:
          success_threshold: 2
          up_when: {successes: 4, of: 5}
        jobs:
          - name: api
            plugin: sleep
            failure_threshold: 3
            down_when: {failures: 3, of: 5}
          - name: ok
            plugin: sleep
            down_when: {failures: 6, of: 5}
          - name: big
            plugin: sleep
            up_when: {successes: 1, of: 101}
          - name: echo
            plugin: echo-listener
            down_when: {failures: 1, of: 2}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = [p.format(str(path)) for p in info.value.problems]
    assert len(problems) == 5, problems
    name = str(path)
    assert problems[0].startswith(f"{name}:3: defaults: up_when: give success_threshold or up_when")
    assert problems[1].startswith(
        f"{name}:8: jobs[0] 'api': down_when: give failure_threshold or down_when, not both"
    )
    assert "down_when: {failures: n, of: n}" in problems[1]
    assert problems[2] == (
        f"{name}:11: jobs[1] 'ok': down_when: failures (6) is more than of (5): "
        "at most 5 of the last 5 can fail"
    )
    assert problems[3].startswith(f"{name}:14: jobs[2] 'big': up_when.of: ")
    assert "100" in problems[3]
    assert problems[4].startswith(
        f"{name}:17: jobs[3] 'echo': down_when: echo-listener is a service"
    )


def test_a_reload_that_writes_the_same_rule_the_other_way_leaves_the_job_alone(
    write_config: WriteConfig,
) -> None:
    def job(keys: str) -> tuple[object, ...]:
        text = f"jobs:\n  - {{name: a, plugin: sleep, {keys}}}\n"
        return load_config(write_config(text)).jobs[0].fingerprint()

    assert job("failure_threshold: 3") == job("down_when: {failures: 3, of: 3}")
    assert job("failure_threshold: 3") != job("down_when: {failures: 3, of: 5}")
    assert job("up_when: {successes: 4, of: 5}") != job("up_when: {successes: 4, of: 6}")


# --------------------------------------------------------------------------- a real daemon


def flapping_config(write_config: WriteConfig, target: Peer, receiver: Peer, interval: str) -> Path:
    return write_config(
        f"""
        history: {{flush_every: 50ms}}
        notifiers:
          - {{name: ops, notifier: webhook, options: {{url: "{receiver.url}/hook", retries: 0}}}}
        defaults: {{interval: {interval}}}
        jobs:
          - name: api
            plugin: http-status
            notify: [ops]
            options: {{url: "{target.url}/"}}
            down_when: {{failures: 3, of: 5}}
            up_when: {{successes: 4, of: 5}}
        """
    )


def finished(runner: RunnerProcess) -> list[str]:
    return [e["status"] for e in runner.find(event="job.finished", job="api")]


def test_a_daemon_sends_one_down_alert_for_a_target_alternating_for_40_runs(
    write_config: WriteConfig, peer: Peer
) -> None:
    peer.statuses = [200, 500] * 20
    config = flapping_config(write_config, peer, peer, "100ms")
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(timeout=30, count=45, event="job.finished", job="api")
        wait_until(lambda: peer.events("recovered"), 10, "the recovery once it stops flapping")
        assert runner.stop() == 0
    assert finished(runner)[:40] == ["ok", "fail"] * 20
    assert [r["event"] for r in peer.received] == ["down", "recovered"]
    down = peer.received[0]
    assert down["consecutive"] == 1  # true: the failure that completed 3 of 5 followed an ok
    assert down["last"]["status"] == "fail"
    # The alert names the rule that was met, not "1 in a row".
    assert down["rule"] == "3 failures of the last 5"
    assert "(3 failures of the last 5)" in down["text"] and "in a row" not in down["text"]
    recovered = peer.received[1]
    assert recovered["rule"] == "4 successes of the last 5"


def test_a_window_half_full_at_a_stop_is_completed_by_the_first_failure_after_a_start(
    write_config: WriteConfig, peer: Peer
) -> None:
    peer.statuses = [500, 200, 500]
    peer.status = 200
    config = flapping_config(write_config, peer, peer, "300ms")
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(count=3, event="job.finished", job="api")
        assert runner.stop() == 0
    # At most one run past the third (a stop takes far less than an interval):
    # at least two failures of the last four either way.
    before = finished(runner)
    assert before[:3] == ["fail", "ok", "fail"] and len(before) <= 4
    assert peer.received == []

    peer.status = 500
    with RunnerProcess("serve", str(config)) as again:
        wait_until(lambda: peer.events("down"), 10, "the down alert")
        first = again.wait_for(event="job.finished", job="api")[0]
        assert again.stop() == 0
    down = peer.events("down")
    assert len(down) == 1
    # The first failure after the start completed the rule: the alert names it.
    assert down[0]["last"]["duration_ms"] == first["duration_ms"]
    # Its streak goes on from the stored one: the failures that ended the first run, plus it.
    streak = len(before) - len("".join(s[0] for s in before).rstrip("eft"))
    assert down[0]["consecutive"] == streak + 1
