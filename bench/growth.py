"""How the daemon grows with its job count: one line per doubling of N.

    .venv/bin/python bench/growth.py [--start 1000] [--max 32000] [--seconds 20] [--trials 1]

``runner serve`` with N ``sleep`` jobs (``seconds: 0``) every 1 s, history
off, result lines written to a file: bench/scheduler.py's ``runner`` variant,
measured the same way (CPU of the process tree per run over the window, RSS,
start lateness and per-job gap p99, runs missing from N x window). N starts at
``--start`` and doubles up to ``--max``; once start lateness p99 has been over
10 ms at two sizes in a row the doubling stops: the step before the first of
them is the ceiling of one daemon on this machine. With ``--trials`` above 1
each size is measured that many times in a row; the table shows the median
(min-max), and the stop uses the best trial's p99: on a shared machine the
least disturbed trial is the closest to the daemon's own limit (each row
shows the rest of the machine's load, ``others' load``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Trials, arguments, describe, machine, write_results
from scheduler import base_loop, measure, runner_variant

#: Start lateness p99 past this is over the ceiling (the issue's bound).
LATE_P99_LIMIT_MS = 10.0
#: Stop doubling after this many sizes in a row over the limit.
OVER_IN_A_ROW = 2

MEASURES = [
    ("cpu_per_1000", "CPU ms / run"),
    ("cores", "cores busy"),
    ("rss_mib", "RSS MiB"),
    ("late_p50_ms", "late p50 ms"),
    ("late_p99_ms", "late p99 ms"),
    ("gap_p99_ms", "gap-1s p99 ms"),
    ("missing", "missing runs"),
    ("others_cores", "others' load, cores"),
]


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], trials=1)
    parser.add_argument("--start", type=int, default=1000, help="the first size, doubled after")
    parser.add_argument("--max", type=int, default=32000, help="the largest size")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after ready")
    args = parser.parse_args()
    if args.smoke:
        args.start, args.max, args.seconds, args.warmup = 200, 400, 3.0, 1.2
    args.seconds = float(round(args.seconds))
    info = machine()
    print(describe(info), flush=True)
    variant = runner_variant("runner", loop=base_loop())
    trials = Trials(args.trials)
    over = 0
    jobs = args.start
    measured: list[int] = []
    while jobs <= args.max:
        print(f"{jobs} jobs x 1 s, {args.seconds:g} s window", flush=True)

        def step(jobs: int = jobs) -> dict[str, float]:
            result = measure(variant, jobs, args.seconds, args.warmup)
            result["cores"] = result["cpu_s"] / result["window_s"]
            return result

        trials.run({f"{jobs:,}": step})
        measured.append(jobs)
        best = min(trials.values(f"{jobs:,}", "late_p99_ms"))
        over = over + 1 if best > LATE_P99_LIMIT_MS else 0
        if over >= OVER_IN_A_ROW:
            break
        jobs *= 2
    table = trials.table(
        f"runner serve, N sleep jobs x 1 s, history off ({args.seconds:g} s windows)",
        MEASURES,
    )
    ceiling: int | None = None
    if over >= OVER_IN_A_ROW:
        first_over = measured[-OVER_IN_A_ROW]
        ceiling = first_over // 2 if first_over > args.start else None
        verdict = (
            f"start lateness p99 over {LATE_P99_LIMIT_MS:g} ms from {first_over:,} jobs on"
            + (f": the ceiling is {ceiling:,} jobs" if ceiling else " (the first size)")
        )
    else:
        within = measured[:-1] if over else measured
        verdict = (
            f"start lateness p99 within {LATE_P99_LIMIT_MS:g} ms up to {within[-1]:,} jobs"
            if within
            else f"start lateness p99 over {LATE_P99_LIMIT_MS:g} ms at {measured[0]:,} jobs"
        )
        if over and within:
            verdict += f"; over it at {measured[-1]:,}, the largest size measured"
    print(verdict, flush=True)
    data: dict[str, Any] = {
        "sizes": measured,
        "ceiling_jobs": ceiling,
        "verdict": verdict,
        "summary": trials.summary(),
        "samples": trials.samples,
        "table": table,
    }
    write_results("growth", args, info, data)


if __name__ == "__main__":
    main()
