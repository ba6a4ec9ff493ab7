"""Heartbeats: the daemon is told by pings over its HTTP endpoint (a real httpx
client against ``runner serve`` on 127.0.0.1), and ``runner ping``."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import RunnerProcess, run_cli
from runner.config import ConfigError, load_config
from runner.model import Job
from runner.pings import MAX_WAITING, Ping, PingKind
from runner.schedules import Deadline
from runner.schedules.deadline import CronDeadline

WriteConfig = Callable[..., Path]
KEY = "k3y-for-the-backup-job-0123456789"
TOKEN = "a-token-that-is-long-enough"


class Daemon:
    """``runner serve`` of a config and an httpx client for its endpoint."""

    def __init__(self, runner: RunnerProcess) -> None:
        self.runner = runner
        started = runner.wait_for(event="http.started")[0]
        self.port = started["port"]
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base, trust_env=False, timeout=30)

    def ping(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(f"/ping/{path}", **kwargs)

    def results(self, job: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        return self.runner.wait_for(timeout=timeout, count=count, event="job.finished", job=job)


@pytest.fixture
def serve(write_config: WriteConfig) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(text: str, env: dict[str, str] | None = None, prefix: Sequence[str] = ()) -> Daemon:
        config = write_config(text)
        runner = RunnerProcess("serve", str(config), env=env, prefix=prefix)
        daemon = Daemon(runner)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.client.close()
        daemon.runner.kill()


CONFIG = """
    http: {listen: "127.0.0.1:0"}
    history: {enabled: false}
    jobs:
      - {name: backup, plugin: heartbeat, options: {period: 1h, grace: 5m}}
    """


def test_on_time_start_then_success_fail_and_exit_status(serve: Callable[..., Daemon]) -> None:
    daemon = serve(CONFIG)
    assert daemon.ping("backup/start").text == "OK"
    time.sleep(0.05)  # so that the run takes measurable time
    answer = daemon.client.get("/ping/backup", params={"x": 1})  # GET works as POST does
    assert (answer.status_code, answer.text) == (200, "OK")
    first = daemon.results("backup")[0]
    assert first["status"] == "ok" and first["run_ms"] >= 50
    assert "exit_status" not in first and "body" not in first

    assert daemon.ping("backup/fail", content=b"disk full\n").status_code == 200
    failed = daemon.results("backup", count=2)[1]
    assert failed["status"] == "fail" and failed["message"] == "fail ping"
    assert failed["body"] == "disk full\n" and "run_ms" not in failed

    assert daemon.ping("backup/3").status_code == 200
    three = daemon.results("backup", count=3)[2]
    assert (three["status"], three["message"], three["exit_status"]) == ("fail", "exit status 3", 3)
    assert daemon.ping("backup/0").status_code == 200
    zero = daemon.results("backup", count=4)[3]
    assert (zero["status"], zero["exit_status"]) == ("ok", 0)

    assert daemon.ping("backup/256").status_code == 400
    assert daemon.ping("backup/99999999999999999999").status_code == 400
    assert daemon.ping("backup/other").status_code == 404
    assert daemon.ping("nope").status_code == 404
    assert daemon.client.put("/ping/backup").status_code == 405
    assert daemon.runner.stop() == 0
    assert len(daemon.runner.find(event="job.finished")) == 4  # one result per ping, no more


def test_late_a_miss_each_period_and_a_restart_gets_a_whole_period(
    serve: Callable[..., Daemon],
) -> None:
    daemon = serve(
        """
        http: {listen: "127.0.0.1:0"}
        history: {enabled: false}
        jobs:
          - {name: beat, plugin: heartbeat, options: {period: 1s, grace: 1s}}
        """
    )
    miss = daemon.results("beat")[0]
    # Not before a whole period plus grace after the start (the daemon's own
    # clock: its log lines' times): no ping can be late sooner.
    starting = daemon.runner.find(event="daemon.starting")[0]
    assert _at(miss) >= _at(starting) + 2.0 - 0.01
    assert miss["status"] == "fail"
    since = re.fullmatch(
        r"no ping since (\d\d:\d\d:\d\d) UTC \(the start\); expected every 1s, grace 1s",
        miss["message"],
    )
    assert since is not None
    # The job's start: between the daemon's starting and started lines.
    bounds = [daemon.runner.find(event=e)[0] for e in ("daemon.starting", "daemon.started")]
    assert since.group(1) in {time.strftime("%H:%M:%S", time.gmtime(_at(e))) for e in bounds}
    pinged = time.time()
    assert daemon.ping("beat").status_code == 200
    ok = daemon.results("beat", count=2)[1]
    assert ok["status"] == "ok"
    # The ping restarted the schedule: the next miss is period + grace after it.
    again = daemon.results("beat", count=3)[2]
    assert again["status"] == "fail" and _at(again) >= pinged + 2.0 - 0.1
    stamp = time.strftime("%H:%M:%S", time.gmtime(_at(ok)))
    assert again["message"].startswith(f"no ping since {stamp} UTC; expected every 1s")
    # And on with a miss each period + grace while no ping comes.
    fourth = daemon.results("beat", count=4)[3]
    assert fourth["status"] == "fail" and _at(fourth) - _at(again) >= 2.0 - 0.1
    assert daemon.runner.stop() == 0


def test_a_reload_keeps_an_unchanged_heartbeat_and_pings_reach_new_ones(
    serve: Callable[..., Daemon],
) -> None:
    import signal

    daemon = serve(CONFIG)
    assert daemon.ping("new").status_code == 404
    config = Path(daemon.runner.find(event="daemon.starting")[0]["config"])
    config.write_text(
        config.read_text()
        + "  - {name: new, plugin: heartbeat, options: {period: 1h, ping_key: "
        + KEY
        + "}}\n"
    )
    daemon.runner.proc.send_signal(signal.SIGHUP)
    reloaded = daemon.runner.wait_for(event="daemon.reloaded")[0]
    assert reloaded["kept"] == ["backup"] and reloaded["added"] == ["new"]
    assert daemon.ping(KEY).status_code == 200
    assert daemon.ping("new").status_code == 404  # it has a key now
    assert daemon.ping("backup").status_code == 200
    assert daemon.results("new")[0]["status"] == "ok"
    assert daemon.results("backup")[0]["status"] == "ok"
    assert daemon.runner.stop() == 0


def test_ping_key_right_wrong_and_by_name(serve: Callable[..., Daemon]) -> None:
    daemon = serve(
        """
        http: {listen: "127.0.0.1:0", auth: {token: "${TOKEN}"}}
        history: {enabled: false}
        jobs:
          - {name: backup, plugin: heartbeat, options: {period: 1h, ping_key: "${KEY}"}}
          - {name: local, plugin: heartbeat, options: {period: 1h}}
        """,
        {"KEY": KEY, "TOKEN": TOKEN},
    )
    # The key is the credential: no token needed, and the job's name does not work.
    assert daemon.ping(KEY).status_code == 200
    assert daemon.ping(f"{KEY}/fail").status_code == 200
    assert daemon.ping("backup").status_code == 404
    assert daemon.ping("backup", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    assert daemon.ping(KEY[:-1] + "x").status_code == 404
    assert daemon.ping(KEY[:-1]).status_code == 404
    # A job without a key is pinged by name, with the endpoint's token.
    assert daemon.ping("local").status_code == 401
    assert (
        daemon.ping("local", headers={"Authorization": "Bearer wrong-wrong-wrong"}).status_code
        == 401
    )
    assert daemon.ping("local", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # The rest of the endpoint still needs the token.
    assert daemon.client.get("/api/status").status_code == 401
    results = daemon.results("backup", count=2)
    assert [r["status"] for r in results] == ["ok", "fail"]
    assert daemon.results("local")[0]["status"] == "ok"
    assert daemon.runner.stop() == 0
    logged = "".join(daemon.runner.raw_lines) + daemon.runner.stderr
    assert KEY not in logged


class Receiver:
    """A PingReceiver with one job by name (``open``) and one by key."""

    def __init__(self) -> None:
        self.pings: list[tuple[str, Ping]] = []

    def ping_target(self, target: str) -> tuple[str, bool] | None:
        return {"open": ("open", False), KEY: ("keyed", True)}.get(target)

    def ping(self, job: str, ping: Ping) -> bool:
        self.pings.append((job, ping))
        return True


async def test_a_ping_by_name_on_a_public_endpoint_is_refused_a_key_is_not() -> None:
    from contextlib import AsyncExitStack

    from runner.config import HttpSpec
    from runner.web import WebEndpoint

    receiver = Receiver()
    # Served on loopback, but told it is not: no test listens beyond 127.0.0.1.
    endpoint = WebEndpoint(None, HttpSpec(listen="127.0.0.1:0"), pings=receiver)  # type: ignore[arg-type]
    endpoint.loopback = False
    async with AsyncExitStack() as stack:
        await endpoint.start(stack)
        base = f"http://127.0.0.1:{endpoint.port}"
        async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
            refused = await client.post("/ping/open")
            assert refused.status_code == 403 and "ping_key" in refused.text
            assert (await client.get(f"/ping/{KEY}/start")).status_code == 200
            assert (await client.post(f"/ping/{KEY}/17", content=b"out")).status_code == 200
    assert [(job, p.kind, p.exit_status, p.body) for job, p in receiver.pings] == [
        ("keyed", PingKind.START, None, b""),
        ("keyed", PingKind.FAIL, 17, b"out"),
    ]


def test_a_10_mb_body_is_cut_at_10_kb_and_the_daemon_is_unaffected(
    serve: Callable[..., Daemon],
) -> None:
    daemon = serve(CONFIG)
    pid = daemon.runner.proc.pid
    peak_before = _peak_rss_kb(pid)
    body = b"x" * (10 * 1024 * 1024)
    answer = daemon.ping("backup", content=body)
    assert (answer.status_code, answer.text) == (200, "OK")
    result = daemon.results("backup")[0]
    assert result["status"] == "ok" and result["body_truncated"] is True
    assert result["body"] == "x" * 10240
    # Never buffered whole: the peak memory did not grow by anything like the body.
    assert _peak_rss_kb(pid) - peak_before < 4096
    # And the daemon goes on: another ping, on a fresh connection, and /healthz.
    with httpx.Client(base_url=daemon.base, trust_env=False) as other:
        assert other.post("/ping/backup/fail", content=b"short").status_code == 200
        assert other.get("/healthz").status_code == 200
    assert daemon.results("backup", count=2)[1]["body"] == "short"
    assert daemon.runner.stop() == 0


def test_runner_ping_wraps_a_command_and_exits_with_its_status(
    write_config: WriteConfig,
) -> None:
    port = _free_port()
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:{port}"}}
        history: {{enabled: false}}
        jobs:
          - {{name: backup, plugin: heartbeat, options: {{period: 1h, ping_key: "${{KEY}}"}}}}
          - {{name: nap, plugin: sleep, interval: 1h}}
        """
    )
    env = {"KEY": KEY}
    with RunnerProcess("serve", str(config), env=env) as runner:
        runner.wait_for(event="http.started")
        done = run_cli(
            "ping", str(config), "backup", "--", "sh", "-c", "sleep 0.1; exit 3", env=env
        )
        assert done.returncode == 3, done.stderr
        result = runner.wait_for(event="job.finished", job="backup")[0]
        assert (result["status"], result["exit_status"]) == ("fail", 3)
        assert result["run_ms"] >= 100
        assert run_cli("ping", str(config), "backup", env=env).returncode == 0
        assert runner.wait_for(event="job.finished", job="backup", count=2)[1]["status"] == "ok"
        assert run_cli("ping", str(config), "backup", "--exit", "4", env=env).returncode == 0
        four = runner.wait_for(event="job.finished", job="backup", count=3)[2]
        assert four["exit_status"] == 4
        assert runner.stop() == 0
    # Usage errors are 2; a daemon that is not there is 1, and the command still runs.
    not_one = run_cli("ping", str(config), "nap", env=env)
    assert not_one.returncode == 2 and "not a heartbeat" in not_one.stderr
    assert run_cli("ping", str(config), "nope", env=env).returncode == 2
    down = run_cli("ping", str(config), "backup", "--", "sh", "-c", "exit 5", env=env)
    assert down.returncode == 5 and "not delivered" in down.stderr
    assert run_cli("ping", str(config), "backup", env=env).returncode == 1


def test_runner_run_leaves_heartbeats_out(write_config: WriteConfig) -> None:
    config = write_config(
        """
        history: {enabled: false}
        jobs:
          - {name: beat, plugin: heartbeat, options: {period: 1h}}
          - {name: nap, plugin: sleep, options: {seconds: 0}}
        """
    )
    done = run_cli("run", str(config), "--log-format", "json")
    assert done.returncode == 0, done.stderr
    assert '"job":"nap"' in done.stdout and '"job":"beat"' not in done.stdout
    named = run_cli("run", str(config), "--job", "beat")
    assert named.returncode == 2 and "pinged while `runner serve` runs" in named.stderr


def test_config_errors(write_config: WriteConfig) -> None:
    def problems(jobs: str) -> str:
        config = write_config(f"jobs:\n{jobs}")
        with pytest.raises(ConfigError) as caught:
            load_config(config, environ={})
        return str(caught.value)

    text = problems("  - {name: b, plugin: heartbeat, interval: 1m, options: {period: 1h}}\n")
    assert ":2: jobs[0] 'b': interval: heartbeat is told by pings: it takes no interval" in text
    assert "give period" in problems("  - {name: b, plugin: heartbeat}\n")
    both = "  - {name: b, plugin: heartbeat, options: {period: 1h, cron: '0 3 * * *'}}\n"
    assert "give period" in problems(both)
    zone = "  - {name: b, plugin: heartbeat, options: {period: 1h, timezone: UTC}}\n"
    assert "timezone is for cron" in problems(zone)
    short = "  - {name: b, plugin: heartbeat, options: {period: 1h, ping_key: short}}\n"
    assert "ping_key" in problems(short)
    same = (
        f"  - {{name: a, plugin: heartbeat, options: {{period: 1h, ping_key: {KEY}}}}}\n"
        f"  - {{name: b, plugin: heartbeat, options: {{period: 2h, ping_key: {KEY}}}}}\n"
    )
    assert "the same ping_key as job 'a'" in problems(same)


def test_a_heartbeat_job_takes_its_schedule_and_thresholds_from_the_plugin(
    write_config: WriteConfig,
) -> None:
    config = load_config(
        write_config(
            """
            defaults: {failure_threshold: 5, success_threshold: 4, retries: 2}
            jobs:
              - {name: a, plugin: heartbeat, options: {period: 1h, grace: 5m}}
              - {name: b, plugin: heartbeat, failure_threshold: 2, options: {period: 1d}}
            """
        ),
        environ={},
    )
    a, b = config.jobs
    assert a.schedule == Deadline(3600, 300) and b.schedule == Deadline(86400, 300)
    assert (a.failure_threshold, a.success_threshold) == (1, 1)
    assert (b.failure_threshold, b.success_threshold) == (2, 1)
    assert a.retry.retries == 0
    assert a.schedule.describe() == "ping every 1h, grace 5m"
    # Never due at start: a whole period plus grace after it.
    assert a.schedule.first_after(100.0) == 100.0 + 3900


def test_the_cron_form(write_config: WriteConfig) -> None:
    config = load_config(
        write_config(
            """
            jobs:
              - {name: c, plugin: heartbeat, options: {cron: "0 * * * *", grace: 5m}}
              - name: berlin
                plugin: heartbeat
                options: {cron: "30 2 * * *", timezone: Europe/Berlin, grace: 1m}
            """
        ),
        environ={},
    )
    schedule = config.jobs[0].schedule
    assert isinstance(schedule, CronDeadline) and schedule.wall_clock
    assert schedule.next_after(3 * 3600 + 2) == 4 * 3600 + 300
    assert schedule.describe() == "ping at cron 0 * * * * (UTC), grace 5m"
    # 2027-03-28 02:30 does not exist in Berlin: that slot runs at 03:00 CEST
    # (01:00 UTC), the grace after it.
    spring = datetime(2027, 3, 28, 0, 0, tzinfo=UTC).timestamp()
    assert config.jobs[1].schedule is not None
    due = config.jobs[1].schedule.next_after(spring)
    assert datetime.fromtimestamp(due, UTC) == datetime(2027, 3, 28, 1, 1, tzinfo=UTC)
    check = config.jobs[0].plugin(config.jobs[0].options)
    late = asyncio.run(check.run(None))  # type: ignore[attr-defined]
    assert re.fullmatch(
        r"no ping since \d\d:\d\d:\d\d UTC \(the start\); expected at '0 \* \* \* \*' \(UTC\), "
        r"grace 5m",
        late.message,
    )
    bad = write_config('jobs:\n  - {name: c, plugin: heartbeat, options: {cron: "0 3 * *"}}\n')
    with pytest.raises(ConfigError, match="invalid cron line"):
        load_config(bad, environ={})


def test_deadline_schedules() -> None:
    every = Deadline(60, 5)
    assert every.next_after(1000) == 1065 and every.first_after(1000) == 1065
    assert every.spread() == 0 and not every.wall_clock

    class Hourly(Deadline):  # a stand-in wall-clock schedule: on the hour
        def next_after(self, t: float) -> float:
            return (t // 3600 + 1) * 3600

    cron = CronDeadline(Hourly(0, 0), 300)
    assert cron.wall_clock
    # A ping at 03:00:02 covers the 03:00 slot: late at 04:05 next.
    assert cron.next_after(3 * 3600 + 2) == 4 * 3600 + 300
    assert cron.first_after(3 * 3600 - 60) == 3 * 3600 + 300


def test_waiting_pings_one_run_each_and_bounded() -> None:
    from runner.builtins.heartbeat import Heartbeat, HeartbeatOptions

    check = Heartbeat(HeartbeatOptions(period=60))
    assert not check.receive(Ping(PingKind.START, 1.0))
    assert not check.pending
    assert check.receive(Ping(PingKind.SUCCESS, 2.5))
    assert check.receive(Ping.exit(3, 3.0))
    assert check.pending
    taken = check.take()
    assert taken is not None and taken[1] is not None and taken[1].at == 1.0
    taken = check.take()
    assert taken is not None and taken[0].exit_status == 3 and taken[1] is None
    assert check.take() is None and not check.pending
    for i in range(MAX_WAITING + 10):
        check.receive(Ping(PingKind.SUCCESS, float(i)))
    assert check.dropped == 10
    assert sum(1 for _ in iter(check.take, None)) == MAX_WAITING
    with pytest.raises(ValueError):
        Ping.exit(256, 0.0)


def heartbeat_job(name: str = "beat", period: float = 3600) -> Job:
    from runner.builtins.heartbeat import Heartbeat, HeartbeatOptions

    options = HeartbeatOptions(period=period, grace=1)
    return Job(
        name=name,
        plugin_name="heartbeat",
        plugin=Heartbeat,
        options=options,
        schedule=Heartbeat.schedule_for(options),
        timeout=10,
        line=1,
    )


@pytest.mark.parametrize("burst", [1, 2, 3, 50], ids=lambda n: f"{n}-per-turn")
async def test_every_ping_is_one_run_however_they_bunch(burst: int) -> None:
    """Pings that come while a run waits to start or is going each get a run
    of their own, in order, whatever the turns of the loop they land in."""
    from test_scheduler import Collect, scheduler_for

    sink = Collect()
    scheduler = scheduler_for([sink])
    scheduler.start(heartbeat_job())
    await asyncio.sleep(0)
    for i in range(300):
        assert scheduler.ping("beat", Ping.exit(i % 2, float(i)))
        if i % burst == 0:
            await asyncio.sleep(0)
    await sink.wait_for(300, timeout=10)
    await asyncio.sleep(0.05)  # and no more than one each
    assert [r.fields["exit_status"] for _, r in sink.results] == [i % 2 for i in range(300)]
    assert not scheduler.ping("nope", Ping(PingKind.SUCCESS, 0.0))
    await scheduler.stop_all()


#: ``runner serve`` with the daemon's blocked-loop watcher set to LAG_THRESHOLD
#: seconds instead of its 0.5 s (RunnerProcess's prefix: it is handed
#: ``python -m runner serve CONFIG``).
LAG_DRIVER = """
import os, sys
import runner.daemon
from runner.cli import main
from runner.loop_monitor import LoopMonitor
threshold = float(os.environ["LAG_THRESHOLD"])
runner.daemon.LoopMonitor = lambda _default: LoopMonitor(threshold)
sys.exit(main(sys.argv[sys.argv.index("runner") + 1 :]))
"""


@pytest.mark.slow
def test_a_thousand_pings_a_second_and_the_loop_never_lags_50_ms(
    serve: Callable[..., Daemon], tmp_path: Path
) -> None:
    """The requirement as the daemon itself measures it: its blocked-loop
    watcher, set to 50 ms, never reports the loop late for 10 s of 1,000
    pings a second. Wall-clock: it needs a machine with a core to spare (on a
    2-core machine at a load of 13 it once saw 60 ms with the loop in no
    Python frame at all, i.e. not running: the machine, not the pings)."""
    driver = tmp_path / "lag_driver.py"
    driver.write_text(LAG_DRIVER)
    _thousand_pings_a_second(
        serve, 10.0, env={"LAG_THRESHOLD": "0.05"}, prefix=[sys.executable, str(driver)]
    )


def test_a_thousand_pings_a_second_each_answered(serve: Callable[..., Daemon]) -> None:
    _thousand_pings_a_second(serve, 3.0)


def _thousand_pings_a_second(
    serve: Callable[..., Daemon],
    seconds: float,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> None:
    """Each ping answered with a run and a result; the loop never blocked
    (the daemon's watcher, 0.5 s unless the prefix sets it lower); its lag
    gauge, sampled through /metrics, under 50 ms (a sample, so this catches a
    loop that falls behind, not a single late turn); and the CPU a ping costs
    well under the millisecond at which 1,000 a second would saturate the
    loop: a cost, not a time, so it holds on a busy machine. History is on
    (the default), and every result is logged."""
    daemon = serve(
        """
        http: {listen: "127.0.0.1:0"}
        jobs:
          - {name: beat, plugin: heartbeat, options: {period: 1h}}
        """,
        env,
        prefix,
    )
    pid = daemon.runner.proc.pid
    lags: list[float] = []

    async def sample_lag(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=daemon.base, trust_env=False) as client:
            while not stop.is_set():
                text = (await client.get("/metrics")).text
                found = re.search(r"^runner_loop_lag_seconds (\S+)$", text, re.MULTILINE)
                assert found is not None
                lags.append(float(found.group(1)))
                await asyncio.sleep(0.05)

    async def load() -> tuple[Counter[int], float, list[float]]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_lag(stop))
        try:
            return await _paced_pings(daemon.port, "/ping/beat", 1000, seconds)
        finally:
            stop.set()
            await sampler

    cpu_before = _cpu_seconds(pid)
    statuses, took, waits = asyncio.run(load())
    cpu = _cpu_seconds(pid) - cpu_before
    total = int(1000 * seconds)
    assert statuses == {200: total}
    daemon.results("beat", count=total, timeout=30)  # each ping a run and a result
    assert not daemon.runner.find(event="loop.blocked"), daemon.runner.find(event="loop.blocked")
    assert lags and max(lags) < 0.05, max(lags)
    per_ping_ms = cpu / total * 1000
    p99, worst = waits[int(len(waits) * 0.99)] * 1000, waits[-1] * 1000
    print(
        f"{total} pings in {took:.2f}s; daemon CPU {per_ping_ms:.3f} ms a ping; answers "
        f"p99 {p99:.1f} ms, max {worst:.1f} ms (the client's view, machine load included); "
        f"loop lag samples: {len(lags)}, max {max(lags) * 1000:.1f} ms"
    )
    assert per_ping_ms < 1.0
    assert daemon.runner.stop() == 0


async def _paced_pings(
    port: int, path: str, rate: float, seconds: float
) -> tuple[Counter[int], float, list[float]]:
    """POST ``path`` ``rate`` times a second for ``seconds``, each at its time
    (open loop), over 16 keep-alive connections: a bare HTTP/1.1 client, since
    a full one costs the test more CPU than the daemon it measures. Returns
    the statuses answered, how long it took, and each answer's time (sorted)."""
    total = int(rate * seconds)
    statuses: Counter[int] = Counter()
    waits: list[float] = []
    loop = asyncio.get_running_loop()
    connections = 16
    start = loop.time() + 0.05
    request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()

    async def worker(first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(first, total, connections):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = loop.time()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length is not None
                await reader.readexactly(int(length.group(1)))
                statuses[int(head.split(b" ", 2)[1])] += 1
                waits.append(loop.time() - sent)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return statuses, loop.time() - start, sorted(waits)


def _at(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def _cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
