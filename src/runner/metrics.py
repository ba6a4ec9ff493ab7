"""Prometheus metrics of the daemon, computed from the jobs' states at each scrape
(read through a :class:`runner.status.StatusView`, which the daemon provides).

prometheus_client builds and formats every family (no hand-written exposition
format). What is added here is a cache: the text of a job's samples is kept
while the job's ``JobState`` is the same object (the hub replaces it on every
change), so a scrape formats only the jobs that changed since the last one.
At 10,000 jobs formatting is most of a scrape's cost (about 5 us a sample,
9 samples a job); with most jobs on long intervals, most of it is skipped.
The cached text is prometheus_client's own output for that job, cut at its
family headers and joined under one header per family: byte for byte what
``generate_latest`` writes for all jobs at once (a test compares them).
When more than half of the jobs changed since the last scrape (short
intervals), one ``generate_latest`` over all of them is cheaper, and is used.
A scraper that asks for OpenMetrics (Prometheus does, in its ``Accept``
header) gets it, with a cache of its own: prometheus_client's
``choose_encoder`` picks the format.

Measured (10,000 jobs, thread CPU per scrape, 2-core VM): 1,000 changed
since the last scrape 77 ms, against 448 ms for one ``generate_latest`` of
everything; all changed, the same as it (about 0.5 s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from runner import __version__
from runner.model import Health, JobState
from runner.plugin import ResultMetric, Status
from runner.registry import PluginError, Registry
from runner.status import StatusView

__all__ = [
    "DaemonCollector",
    "Declared",
    "Exposition",
    "JobCollector",
    "PluginMetrics",
    "job_families",
]


@dataclass(frozen=True)
class Declared:
    """The result metrics that some plugins declare (``Check.result_metrics``).

    Attributes:
        families: ``(name, help)`` of each family, sorted by name; the first
            plugin (by name) that declares a name gives its help.
        fields: by plugin name, ``(result field, index in families)`` pairs.
    """

    families: tuple[tuple[str, str], ...] = ()
    fields: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, by_plugin: Mapping[str, Iterable[ResultMetric]]) -> Declared:
        """What ``by_plugin`` (plugin name -> its declarations) adds up to."""
        helps: dict[str, str] = {}
        for plugin in sorted(by_plugin):
            for metric in by_plugin[plugin]:
                helps.setdefault(metric.full_name, metric.help)
        families = tuple(sorted(helps.items()))
        index = {name: i for i, (name, _) in enumerate(families)}
        fields = {
            plugin: tuple((m.field, index[m.full_name]) for m in metrics)
            for plugin, metrics in by_plugin.items()
        }
        return cls(families, {plugin: pairs for plugin, pairs in fields.items() if pairs})


class PluginMetrics:
    """The result metrics each plugin declares, by plugin name: read from its
    class (through the registry, as the daemon loads it) once per name."""

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._known: dict[str, tuple[ResultMetric, ...]] = {}

    def declared(self, plugins: Iterable[str]) -> Declared:
        """The metrics declared by the plugins named in ``plugins``."""
        return Declared.of({plugin: self._of(plugin) for plugin in set(plugins)})

    def _of(self, plugin: str) -> tuple[ResultMetric, ...]:
        known = self._known.get(plugin)
        if known is None:
            if self._registry is None:
                self._registry = Registry.discover()
            try:
                declared = getattr(self._registry.load(plugin), "result_metrics", ())
            except PluginError:  # its jobs say why; it has no metrics
                declared = ()
            known = self._known[plugin] = tuple(declared)
        return known


def job_families(states: Iterable[JobState], declared: Declared | None = None) -> list[Metric]:
    """The per-job families, in order, with a sample for each of ``states``: the
    daemon's, then those the plugins declare (see :class:`Declared`)."""
    declared = declared or Declared()
    labels = ["name", "plugin"]
    states = list(states)
    # A member with --location says where its results were made: runner_job_up
    # then carries the location, one series per location across the cluster.
    located = any(s.last is not None and s.last.location is not None for s in states)
    up = GaugeMetricFamily(
        "runner_job_up",
        "1 if the job's last result was ok (or the service is up), else 0",
        labels=[*labels, "location"] if located else labels,
    )
    down = GaugeMetricFamily(
        "runner_job_down",
        "1 while the job is down (past its failure_threshold)",
        labels=labels,
    )
    duration = GaugeMetricFamily(
        "runner_job_last_duration_seconds", "Duration of the job's last run", labels=labels
    )
    runs = CounterMetricFamily(
        "runner_job_runs", "Finished runs by status", labels=[*labels, "status"]
    )
    changes = CounterMetricFamily(
        "runner_job_state_changes",
        "Times the job's state changed: out of unknown (its first result), "
        "from ok to failing, or back",
        labels=labels,
    )
    last_run = GaugeMetricFamily(
        "runner_job_last_run_timestamp_seconds",
        "When the job's last run finished, in Unix seconds",
        labels=labels,
    )
    state_since = GaugeMetricFamily(
        "runner_job_state_since_timestamp_seconds",
        "Since when the job has been in its state (ok or failing; up or not, for "
        "a service), in Unix seconds",
        labels=labels,
    )
    attempts = GaugeMetricFamily(
        "runner_job_last_attempts",
        "Attempts the job's last run took (with retries)",
        labels=labels,
    )
    results = [
        GaugeMetricFamily(name, help_text, labels=labels) for name, help_text in declared.families
    ]
    for state in states:
        values = [state.job, state.plugin]
        up_values = values
        if located:
            where = state.last.location if state.last is not None else None
            up_values = [*values, where or ""]
        if state.since is not None:
            state_since.add_metric(values, state.since)
        if state.kind == "service":
            up.add_metric(up_values, 1.0 if state.ready else 0.0)
            continue
        if state.state is not Health.UNKNOWN:
            up.add_metric(up_values, 1.0 if state.state is Health.OK else 0.0)
        down.add_metric(values, 1.0 if state.down else 0.0)
        for status in Status:
            runs.add_metric([*values, status.value], float(state.counts.get(status.value, 0)))
        changes.add_metric(values, float(state.state_changes))
        if state.last is not None:
            last_run.add_metric(values, state.last.finished_at)
            duration.add_metric(values, state.last.duration_ms / 1000)
            attempts.add_metric(values, float(state.last.attempts))
            fields = state.last.fields
            for name, index in declared.fields.get(state.plugin, ()):
                value = fields.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    results[index].add_metric(values, float(value))
    return [up, down, duration, attempts, runs, changes, last_run, state_since, *results]


class JobCollector(Collector):
    """The per-job families of every tracked job."""

    def __init__(self, view: StatusView) -> None:
        self.view = view
        self.plugin_metrics = PluginMetrics()

    def collect(self) -> Iterator[Metric]:
        states = list(self.view.states().values())
        declared = self.plugin_metrics.declared(state.plugin for state in states)
        yield from job_families(states, declared)


class DaemonCollector(Collector):
    """The daemon-wide families: up, loop lag, job counts, notifiers, history, build."""

    def __init__(self, view: StatusView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view
        states = list(view.states().values())

        yield GaugeMetricFamily("runner_up", "1 while the daemon runs", value=1.0)
        yield GaugeMetricFamily(
            "runner_loop_lag_seconds",
            "How long the event loop has kept the blocked-loop watcher's probe waiting",
            value=view.loop_lag(),
        )
        jobs = GaugeMetricFamily("runner_jobs", "Jobs in the config, by kind", labels=["kind"])
        for kind in ("check", "service"):
            jobs.add_metric([kind], float(sum(s.kind == kind for s in states)))
        yield jobs
        notifiers = view.notifier_counts()
        if notifiers is not None:
            failures = CounterMetricFamily(
                "runner_notifier_failures",
                "Alerts a notifier could not deliver",
                labels=["notifier"],
            )
            sent = CounterMetricFamily(
                "runner_notifier_sent", "Alerts a notifier delivered", labels=["notifier"]
            )
            for name, stats in notifiers.items():
                failures.add_metric([name], float(stats["failed"]))
                sent.add_metric([name], float(stats["sent"]))
            yield failures
            yield sent
        history = view.history_counts()
        if history is not None:
            yield CounterMetricFamily(
                "runner_history_written",
                "Results stored in the history",
                value=float(history.written),
            )
            yield CounterMetricFamily(
                "runner_history_dropped",
                "Results given up because the store could not take them",
                value=float(history.dropped),
            )
            yield GaugeMetricFamily(
                "runner_history_queued",
                "Results waiting to be written",
                value=float(history.queued),
            )
            yield GaugeMetricFamily(
                "runner_history_lag_seconds",
                "Age of the oldest result waiting to be written",
                value=history.lag,
            )
        cluster = view.cluster_counts()
        if cluster is not None:
            yield GaugeMetricFamily(
                "runner_cluster_members",
                "Live members of this daemon's cluster, as its last renewal saw them",
                value=float(cluster.members),
            )
            yield GaugeMetricFamily(
                "runner_cluster_owned_jobs",
                "Checks this member runs",
                value=float(cluster.owned),
            )
            yield GaugeMetricFamily(
                "runner_cluster_store_up",
                "1 when this member's last renewal reached the cluster's database",
                value=float(cluster.store_up),
            )
        yield InfoMetricFamily("runner_build", "runner's version", value={"version": __version__})


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _by_family(text: str) -> list[str]:
    """prometheus_client's text cut at each family: the lines after each ``# HELP``
    and ``# TYPE`` pair, one string per family."""
    blocks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("# HELP "):
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return ["".join(block) for block in blocks]


def _samples_only(block: str) -> str:
    return "".join(line for line in block.splitlines(keepends=True) if not line.startswith("# "))


#: The end of an OpenMetrics exposition; the text format has none.
_EOF = "# EOF\n"
#: Formats (content types) whose cache is kept; past this the oldest goes.
_MAX_FORMATS = 4

Encoder = Callable[[Collector], bytes]


class _Format:
    """One format's cache: each job's samples as that encoder writes them."""

    def __init__(self, encode: Encoder) -> None:
        self.encode = encode
        #: The plugins' metrics the headers and the cache were made for.
        self.declared = Declared()
        # Each family's "# HELP" and "# TYPE" lines, as the encoder writes them.
        self.headers = self.family_headers(self.declared)
        self.cache: dict[str, tuple[JobState, tuple[str, ...]]] = {}
        #: Each job's state at the previous scrape: how many changed since.
        self.seen: dict[str, JobState] = {}

    def text(self, collector: Collector) -> str:
        """The encoder's text without OpenMetrics' ``# EOF`` (more follows)."""
        return self.encode(collector).decode().removesuffix(_EOF)

    def family_headers(self, declared: Declared) -> list[str]:
        return _by_family(self.text(_Families(job_families((), declared))))

    def render(self, states: list[JobState], declared: Declared, daemon: Collector) -> bytes:
        if declared != self.declared:
            # A plugin with metrics of its own came or went: other families, other columns.
            self.declared, self.headers = declared, self.family_headers(declared)
            self.cache = {}
        seen, self.seen = self.seen, {st.job: st for st in states}
        changed = sum(1 for st in states if seen.get(st.job) is not st)
        if changed > len(states) // 2:
            # Most jobs changed (short intervals): one pass over all of them is
            # cheaper than one per job. The cache is kept for when they settle.
            families = job_families(states, declared)
            return self.text(_Families(families)).encode() + self.encode(daemon)
        columns: list[list[str]] = [[header] for header in self.headers]
        fresh: dict[str, tuple[JobState, tuple[str, ...]]] = {}
        for state in states:
            known = self.cache.get(state.job)
            if known is None or known[0] is not state:
                text = self.text(_Families(job_families((state,), declared)))
                known = (state, tuple(_samples_only(b) for b in _by_family(text)))
            fresh[state.job] = known
            for column, samples in zip(columns, known[1], strict=True):
                column.append(samples)
        # Replaced, not updated: removed jobs leave, and two scrapes at once
        # (threads) each keep a whole cache.
        self.cache = fresh
        jobs = "".join("".join(column) for column in columns)
        return jobs.encode() + self.encode(daemon)


class Exposition:
    """The /metrics text, formatted by prometheus_client, a changed job at a time,
    in the format the scraper asks for (its ``Accept`` header: the Prometheus
    text format, or OpenMetrics), as prometheus_client's ``choose_encoder``
    picks it."""

    def __init__(self, view: StatusView) -> None:
        self.view = view
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(view))
        self.plugin_metrics = PluginMetrics()
        self._formats: dict[str, _Format] = {}

    @staticmethod
    def content_type(accept: str = "") -> str:
        """The content type of :meth:`render`'s answer to ``accept``."""
        return choose_encoder(accept)[1]

    def render(self, accept: str = "") -> bytes:
        """The whole exposition in the format ``accept`` asks for (the text
        format by default): every job's families, then the daemon's."""
        encode, content_type = choose_encoder(accept)
        form = self._formats.get(content_type)
        if form is None:
            # The oldest go first; list() is one step, safe with a scrape on another thread.
            known = list(self._formats)
            for stale in known[: max(0, len(known) - _MAX_FORMATS + 1)]:
                self._formats.pop(stale, None)
            form = self._formats[content_type] = _Format(encode)
        states = list(self.view.states().values())
        declared = self.plugin_metrics.declared(st.plugin for st in states)
        return form.render(states, declared, self.registry)
