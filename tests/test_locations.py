"""Checks from several places, decided by quorum (runner.cluster.quorum).

Members are real subprocesses sharing a real PostgreSQL on 127.0.0.1; a
"location" is the members started with one ``--location``. Each location
sees its own target: the check's URL is ``${TARGET}/``, and each location's
members get the address of a local HTTP server of its own, so a test makes
one location's view fail by making its server answer 500.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Peer, run_cli, wait_until
from members import Members, assert_no_slot_twice, started_at
from runner.cluster.quorum import decide, summary
from runner.cluster.store import LocationRow
from runner.config import load_config
from runner.model import Health

LEASE = 2.0
PLACES = ("eu", "us", "ap")


# ---------------------------------------------------------------- the rule (pure)


def located_job(tmp_path: Path, locations: str, quorum: str = "") -> Any:
    config = tmp_path / "c.yaml"
    config.write_text(
        "cluster: {}\nhistory: {url: 'postgresql://runner@127.0.0.1/runner'}\n"
        f"jobs:\n  - {{name: web, plugin: sleep, locations: {locations}{quorum}}}\n"
    )
    return load_config(config).checks[0]


def row(place: str, status: str = "ok", *, down: bool = False, message: str = "") -> LocationRow:
    return LocationRow(
        place, f"{place}1", status, message or None, 100.0, 12.0, 90.0, down, None, 0, 0, ""
    )


def test_down_takes_a_quorum_of_locations_down_and_unknown_counts_for_neither(
    tmp_path: Path,
) -> None:
    job = located_job(tmp_path, "[eu, us, ap]")  # quorum: more than half, 2
    live = set(PLACES)
    one = {"eu": row("eu", "fail", down=True), "us": row("us"), "ap": row("ap")}
    verdict = decide(job, one, live, PLACES, down=False)
    assert (verdict.quorum, verdict.health, verdict.transition) == (2, Health.OK, None)
    two = {**one, "us": row("us", "fail", down=True, message="cannot connect")}
    two["eu"] = row("eu", "fail", down=True, message="cannot connect")
    verdict = decide(job, two, live, PLACES, down=False)
    assert (verdict.health, verdict.transition, verdict.down_at) == (
        Health.FAILING,
        "down",
        ("eu", "us"),
    )
    assert summary(verdict, two) == "down from eu, us: cannot connect; ok from ap"
    # us loses its only member: unknown. Still down (it could still make a quorum)...
    verdict = decide(job, two, live - {"us"}, PLACES, down=True)
    assert (verdict.transition, verdict.down, verdict.unknown) == (None, True, ("us",))
    # ... and never down for losing locations while up.
    verdict = decide(job, one, {"eu"}, PLACES, down=False)
    assert (verdict.transition, verdict.down) == (None, False)
    # eu recovers while us is unknown: 0 down + 1 unknown < 2, recovered.
    verdict = decide(job, {**two, "eu": row("eu")}, live - {"us"}, PLACES, down=True)
    assert verdict.transition == "recovered"


def test_all_locations_are_those_the_members_have_and_quorum_can_be_given(
    tmp_path: Path,
) -> None:
    job = located_job(tmp_path, "all", ", quorum: 1")
    rows = {"eu": row("eu", "fail", down=True)}
    verdict = decide(job, rows, {"eu", "us"}, ["us", "eu"], down=False)
    assert verdict.listed == ("eu", "us")
    assert verdict.unknown == ("us",)  # a member, but no result yet
    assert (verdict.quorum, verdict.transition) == (1, "down")


# ---------------------------------------------------------------- config and CLI


def test_runner_check_says_where_each_check_runs_from(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        "cluster: {}\nhistory: {url: 'postgresql://runner@127.0.0.1/runner'}\n"
        "jobs:\n"
        "  - {name: a, plugin: sleep, interval: 1s, locations: [eu, us, ap], quorum: 2}\n"
        "  - {name: b, plugin: sleep, interval: 1s, locations: all}\n"
    )
    result = run_cli("check", str(config))
    assert result.returncode == 0, result.stderr
    assert "a  [sleep]  every 1s (on the cluster's clock), from eu, us, ap (quorum 2)" in (
        result.stdout
    )
    assert "from every location (quorum: more than half)" in result.stdout


def test_bad_locations_name_the_file_line_job_and_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "jobs:\n"
        "  - {name: a, plugin: sleep, locations: [eu, us]}\n"
        "  - {name: b, plugin: sleep, quorum: 2}\n"
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert f"{config}:2: jobs[0] 'a': locations: locations need a cluster" in result.stderr
    assert f"{config}:3: jobs[1] 'b': quorum: quorum counts locations" in result.stderr
    config.write_text(
        "cluster: {}\nhistory: {url: 'postgresql://runner@127.0.0.1/runner'}\n"
        "jobs:\n"
        "  - {name: a, plugin: sleep, locations: [eu, eu]}\n"
        "  - {name: b, plugin: sleep, locations: [eu, us], quorum: 3}\n"
        "  - {name: c, plugin: sleep, locations: ['eu west']}\n"
        "  - {name: d, plugin: echo-listener, locations: [eu]}\n"
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert "'a': locations: a location is listed twice" in result.stderr
    assert "'b': quorum: quorum 3 is more than the 2 locations listed" in result.stderr
    assert "'c': locations: 'eu west' is not a location name" in result.stderr
    assert "'d': locations: echo-listener is a service" in result.stderr


def test_serve_refuses_a_bad_location(tmp_path: Path, postgres_url: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cluster: {{}}\nhistory: {{url: '{postgres_url}'}}\n"
        "jobs:\n  - {name: a, plugin: sleep}\n"
    )
    result = run_cli("serve", str(config), "--location", "eu west")
    assert result.returncode == 2
    assert "--location: 'eu west' is not a location name" in result.stderr
    plain = tmp_path / "plain.yaml"
    plain.write_text("jobs:\n  - {name: a, plugin: sleep}\n")
    result = run_cli("serve", str(plain), "--location", "eu")
    assert result.returncode == 2
    assert "has no cluster: section" in result.stderr


# ---------------------------------------------------------------- members


class Places:
    """One target server per location, and the members of each."""

    def __init__(self, tmp_path: Path, url: str, places: tuple[str, ...], job: str) -> None:
        self.alerts = Peer()
        self.targets = {place: Peer() for place in places}
        config = tmp_path / "site.yaml"
        config.write_text(
            f"cluster: {{name: places, lease: {LEASE}s}}\n"
            f"history: {{url: '{url}', flush_every: 0.2s}}\n"
            "http: {listen: '127.0.0.1:0'}\n"
            "notifiers:\n"
            f"  - {{name: hook, notifier: webhook, options: {{url: '{self.alerts.url}/hook'}}}}\n"
            f"jobs:\n{job}"
        )
        self.group = Members(config)

    def runs(self, place: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [
            e
            for e in self.group.runs()
            if e.get("location") == place and e["job"] == "web" and started_at(e) > since
        ]

    def wait_runs(self, place: str, count: int, since: float, status: str | None = None) -> None:
        def enough() -> bool:
            found = self.runs(place, since)
            return len([e for e in found if status is None or e["status"] == status]) >= count

        wait_until(enough, 20, f"{count} runs from {place}")

    def api_row(self, member: str) -> dict[str, Any]:
        port = self.group.running[member].find(event="http.started")[0]["port"]
        (found,) = [r for r in httpx.get(f"http://127.0.0.1:{port}/api/status").json()]
        return dict(found)

    def env(self, place: str) -> dict[str, str]:
        """The environment of ``place``'s members (and the CLI: the config says ${TARGET})."""
        return {"TARGET": self.targets[place].url}

    def start(self, member: str, place: str) -> None:
        self.group.start(member, location=place, env=self.env(place))

    def cluster(self) -> subprocess.CompletedProcess[str]:
        """``runner cluster CONFIG --json`` (exit 0: the live members agree)."""
        place = next(iter(self.targets))
        result = run_cli("cluster", str(self.group.config), "--json", env=self.env(place))
        assert result.returncode == 0, result.stderr
        return result

    def close(self) -> None:
        self.group.close()
        self.alerts.close()
        for target in self.targets.values():
            target.close()


async def page_locations(url: str) -> list[dict[str, str]]:
    """The locations the status page shows on the one card, in a real Chromium."""
    from playwright.async_api import async_playwright

    from runner.builtins.browser.page_title import CHROMIUM_ARGS, find_chromium

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_chromium(), args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for_selector(".job .location")
            found: list[dict[str, str]] = await page.eval_on_selector_all(
                ".job .location",
                """items => items.map(i => ({where: i.querySelector('.where').textContent,
                    word: i.querySelector('.word').textContent, text: i.textContent}))""",
            )
            return found
        finally:
            await browser.close()


WEB = (
    "  - {name: web, plugin: http-status, interval: 1s, timeout: 2s, notify: [hook], "
    "locations: [eu, us, ap], quorum: 2, failure_threshold: 2, success_threshold: 2, "
    "options: {url: '${TARGET}/'}}\n"
)


@pytest.fixture
def places(tmp_path: Path, postgres_url: str) -> Iterator[Places]:
    found = Places(tmp_path, postgres_url, PLACES, WEB)
    try:
        yield found
    finally:
        found.close()


def test_three_locations_quorum_two_one_down_alert_naming_both_then_one_recovered(
    places: Places,
) -> None:
    for place in PLACES:
        places.start(f"{place}1", place)
    t0 = time.time()
    for place in PLACES:
        places.wait_runs(place, 1, t0)
    # One location sees the target fail: that location's results fail, the job stays up.
    places.targets["eu"].status = 500
    t1 = time.time()
    places.wait_runs("eu", 3, t1, status="fail")
    places.wait_runs("us", 3, t1)
    row = places.api_row("us1")
    assert (row["state"], row["down"]) == ("ok", False)
    by_place = {p["location"]: p for p in row["locations"]}
    assert by_place["eu"]["state"] == "down"  # by the job's rule, from there
    assert by_place["us"]["state"] == by_place["ap"]["state"] == "ok"
    assert by_place["us"]["latency_ms"] > 0 and by_place["us"]["member"] == "us1"
    # The same from runner status (it reads the database), the page and /metrics.
    status = run_cli("status", str(places.group.config), "--json", env=places.env("eu"))
    (shown,) = json.loads(status.stdout)
    assert {p["location"]: p["state"] for p in shown["locations"]}["eu"] == "down"
    assert (status.returncode, shown["state"]) == (0, "ok")
    port = places.group.running["us1"].find(event="http.started")[0]["port"]
    cards = asyncio.run(page_locations(f"http://127.0.0.1:{port}/"))
    assert [(c["where"], c["word"]) for c in cards] == [("eu", "down"), ("us", "ok"), ("ap", "ok")]
    assert "status 500" in cards[0]["text"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'runner_job_up{location="us",name="web",plugin="http-status"} 1.0' in metrics
    assert not places.alerts.received
    # A second location fails: one down alert, naming both.
    places.targets["us"].status = 500
    wait_until(lambda: places.alerts.events("down"), 20, "the down alert")
    (down,) = places.alerts.events("down")
    assert "down from eu, us: status 500, expected 2xx/3xx; ok from ap" in down["text"]
    assert "ok from ap" in down["locations"]
    wait_until(lambda: places.api_row("ap1")["down"], 10, "ap1's /api/status to say down")
    # One recovers: one recovered alert.
    places.targets["eu"].status = 200
    wait_until(lambda: places.alerts.events("recovered"), 20, "the recovered alert")
    t2 = time.time()
    for place in PLACES:
        places.wait_runs(place, 3, t2)  # three more results everywhere: nothing more is sent
    assert len(places.alerts.events("down")) == 1
    assert len(places.alerts.events("recovered")) == 1
    assert_no_slot_twice(places.runs("eu"))


def test_losing_a_location_is_no_alert_and_the_others_decide(places: Places) -> None:
    for place in PLACES:
        places.start(f"{place}1", place)
    places.targets["eu"].status = places.targets["us"].status = 500
    wait_until(lambda: places.alerts.events("down"), 20, "the down alert")
    # us's only member dies: us is unknown once its lease is over.
    places.group.running["us1"].proc.kill()
    killed = time.time()

    def us_unknown() -> bool:
        places_now = {p["location"]: p["state"] for p in places.api_row("ap1")["locations"]}
        return places_now["us"] == "unknown"

    wait_until(us_unknown, 10, "us to be unknown")
    assert places.api_row("ap1")["locations_reporting"] == 2
    places.wait_runs("eu", 3, killed + LEASE)
    row = places.api_row("ap1")
    assert row["down"] is True  # eu down, us unknown: a quorum is still possible
    assert not places.alerts.events("recovered")
    # eu recovers: with us unknown, no quorum of failures is possible any more.
    places.targets["eu"].status = 200
    wait_until(lambda: places.alerts.events("recovered"), 20, "the recovered alert")
    recovered = places.alerts.events("recovered")[0]
    assert "no result from us" in recovered["locations"]
    assert len(places.alerts.events("down")) == 1


def test_two_members_of_one_location_share_its_runs_and_fail_over(
    tmp_path: Path, postgres_url: str
) -> None:
    job = WEB.replace("[eu, us, ap], quorum: 2", "[eu, us]")
    found = Places(tmp_path, postgres_url, ("eu", "us"), job)
    try:
        found.start("eu1", "eu")
        found.start("eu2", "eu")
        found.start("us1", "us")
        t0 = time.time()
        found.wait_runs("eu", 4, t0)
        found.wait_runs("us", 4, t0)
        runner_of_eu = {e["member"] for e in found.runs("eu", t0 + 1)}
        assert len(runner_of_eu) == 1, runner_of_eu  # one member of eu runs it
        (first,) = runner_of_eu
        found.group.running[first].proc.kill()
        killed = time.time()
        found.wait_runs("eu", 3, killed)
        after = {e["member"] for e in found.runs("eu", killed + LEASE + 1.5)}
        assert after == {"eu2" if first == "eu1" else "eu1"}
        assert_no_slot_twice(found.runs("eu"))
        assert_no_slot_twice(found.runs("us"))
        # runner cluster shows where each member is.
        result = found.cluster()
        members = [json.loads(line) for line in result.stdout.splitlines()]
        assert {(m["member"], m["location"]) for m in members} == {
            ("eu1", "eu"),
            ("eu2", "eu"),
            ("us1", "us"),
        }
    finally:
        found.close()


def test_runner_cluster_lists_locations_no_member_has(tmp_path: Path, postgres_url: str) -> None:
    found = Places(tmp_path, postgres_url, ("eu",), WEB)
    try:
        found.start("eu1", "eu")
        result = found.cluster()
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert {"location": "ap", "state": "unknown", "members": 0} in lines
        assert {"location": "us", "state": "unknown", "members": 0} in lines
        row = found.api_row("eu1")
        assert {p["location"]: p["state"] for p in row["locations"]}["ap"] == "unknown"
    finally:
        found.close()


async def test_of_many_members_seeing_one_change_exactly_one_makes_it(postgres_url: str) -> None:
    """The conditional UPDATE that makes one alert of many members' verdicts."""
    from runner.cluster.store import ClusterStore, Incident

    stores = [ClusterStore(postgres_url, "race", f"m{i}", f"i{i}") for i in range(8)]
    try:
        await asyncio.gather(*(store.open(10) for store in stores))
        won = await asyncio.gather(
            *(store.claim("web", True, 100.0 + i) for i, store in enumerate(stores))
        )
        assert len([w for w in won if w is not None]) == 1
        (winner,) = [i for i, w in enumerate(won) if w is not None]
        _, incidents = await stores[0].read_locations(["web"])
        assert incidents["web"] == Incident(True, 100.0 + winner)
        # Down again is no change; recovered is made once, and says since when it was down.
        assert await stores[1].claim("web", True, 200.0) is None
        back = await asyncio.gather(*(store.claim("web", False, None) for store in stores))
        assert [b for b in back if b is not None] == [Incident(True, 100.0 + winner)]
    finally:
        for store in stores:
            await store.close()


async def test_a_result_in_a_maintenance_window_decides_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """The quorum's decision on a real database, for one member of location eu
    (the member itself is a stand-in: its store, and where the live members are)."""
    from types import SimpleNamespace

    from runner.cluster.quorum import QuorumSink
    from runner.cluster.store import ClusterStore
    from runner.model import JobState, RunRecord
    from runner.plugin import Status

    job = located_job(tmp_path, "[eu, us]", ", quorum: 1")
    store = ClusterStore(postgres_url, "held", "eu1", "i1", "eu")
    await store.open(10)
    try:
        member = SimpleNamespace(
            store=store,
            live_locations=frozenset({"eu", "us"}),
            known_locations=frozenset({"eu", "us"}),
            stopping=False,
        )
        sink = QuorumSink(member, [job], alerts=None)  # type: ignore[arg-type]
        failed = RunRecord(
            "web", "sleep", Status.FAIL, "kaput", {}, 99.0, 100.0, 1.0, member="eu1", location="eu"
        )
        state = JobState("web", "sleep", "check", Health.FAILING, since=100.0, down=True)
        await sink._decide({"web": (replace(failed, maintenance="deploy"), state)})
        latest, incidents = await store.read_locations(["web"])
        assert latest["web"]["eu"].down and "web" not in incidents  # stored, not decided
        await sink._decide({"web": (replace(failed, finished_at=101.0), state)})
        _, incidents = await store.read_locations(["web"])
        assert incidents["web"].down
    finally:
        await store.close()
