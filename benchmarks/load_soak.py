"""Deadline and soak measurements of the headset + masking pipelines running together.

Two modes:

* **load** (default): the issue's "0 deadline misses at 10 ms blocks while another process loads
  the second core". This process pins itself to core 0 and spawns a busy-loop process pinned to
  core 1; then the headset pipeline (office mix in) and the 32-zone masking pipeline run in one
  simulated audio callback at real-time pace (:class:`audio_engine.io.sim.SimulatedClock`
  with ``realtime=True``, each block starting at its wall-clock time, as a sound card would
  call it) for ``--minutes`` minutes. It prints each pipeline's latency report, the report of
  the whole callback (both pipelines: the time the callback really holds the thread), the
  blocks that could not start on time, and a verdict.
* **soak** (``--soak-hours H``): H hours of audio as fast as the machine goes (no pacing, no
  load process), checking every simulated minute the resident set size (``VmRSS``), the
  Python heap (``tracemalloc``) and the per-minute p50/p99 block time, and at the end whether
  memory stayed flat and latency did not drift (thresholds: :data:`RSS_GROWTH_LIMIT_MIB`,
  :data:`HEAP_GROWTH_LIMIT_KIB`, :data:`DRIFT_LIMIT`).

Usage::

    python benchmarks/load_soak.py                        # 10 min at 48 kHz / 480, 32 zones
    python benchmarks/load_soak.py --minutes 1 --json soak.json
    python benchmarks/load_soak.py --soak-hours 2

Exit status 0 if the verdict holds, 1 if not. Not a test: it measures the machine it runs on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

#: Soak limits. RSS: allocator arenas and lazily mapped pages settle within the first simulated
#: minutes, so growth is measured from the end of the first minute; 4 MiB over hours is far
#: below a leak of one block per callback (4 KiB × 100 blocks/s = 1.4 GiB/hour at 10 ms blocks).
RSS_GROWTH_LIMIT_MIB = 4.0

#: Python heap growth allowed over the soak (tracemalloc's traced current size), KiB: the
#: latency meters and pipelines are preallocated, so anything growing per block would show.
HEAP_GROWTH_LIMIT_KIB = 256.0

#: Latency drift allowed: median of the last tenth of the per-minute p50s over the median of
#: the first tenth. Above 1.25 something gets slower with time (a growing structure, denormals).
DRIFT_LIMIT = 1.25


def busy_loop(core: int | None) -> None:
    """Spin forever on ``core`` (the load on the second core). Runs in the child process."""
    # Never inherit a real-time policy: a SCHED_FIFO busy loop would starve its core.
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    if core is not None:
        os.sched_setaffinity(0, {core})
    x = 0
    while True:
        x = (x + 1) & 0xFFFF


class LoopSource:
    """Feeds input blocks from ``data`` (frames, channels), wrapping around at its end."""

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.position = 0

    def __call__(self, block: np.ndarray) -> None:
        n = block.shape[0]
        done = 0
        while done < n:
            take = min(n - done, self.data.shape[0] - self.position)
            block[done : done + take] = self.data[self.position : self.position + take]
            done += take
            self.position = (self.position + take) % self.data.shape[0]


class OfficeCallback:
    """One audio callback running the headset and the masking pipeline on every block.

    The headset pipeline gets the input and writes the output block; the masking pipeline is
    fed silence and writes its zones into a preallocated buffer (its amplifier outputs). The
    callback's own time (both pipelines) goes to ``meter``.
    """

    def __init__(self, headset, masking, meter):
        from audio_engine.engine import PipelineCallback

        self.headset = PipelineCallback(headset)
        self.masking = PipelineCallback(masking)
        self.meter = meter
        self.zones_out = np.zeros((masking.block_size, masking.output_channels), np.float32)

    def __call__(self, indata, outdata, frames, time_info, status) -> None:
        clock = time.perf_counter_ns
        start = clock()
        self.headset(indata, outdata, frames, time_info, status)
        middle = clock()
        self.masking(None, self.zones_out[:frames], frames, time_info, status)
        end = clock()
        self.meter.record_stage(0, middle - start)
        self.meter.record_stage(1, end - middle)
        self.meter.record(end - start)


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(args):
    """The two pipelines, the whole-callback meter, the clock and the input source."""
    from audio_engine.bench import office_headset_mix
    from audio_engine.io.sim import SimulatedClock
    from audio_engine.latency import LatencyMeter
    from audio_engine.pipelines import build_headset_pipeline, build_masking_pipeline

    headset = build_headset_pipeline(args.rate, args.block, 1)
    masking = build_masking_pipeline(args.zones, args.rate, args.block)
    meter = LatencyMeter(args.rate, args.block, ("headset", "masking"))
    callback = OfficeCallback(headset, masking, meter)
    # 30 s of office input, looped: long enough to hold speech and pauses, small in memory.
    source = LoopSource(office_headset_mix(30 * args.rate, args.rate, 1, seed=args.seed))
    clock = SimulatedClock(callback, args.rate, args.block, 1, 1, realtime=not args.soak_hours)
    # The meters' rings come from np.zeros, whose pages the kernel maps on first write: left
    # alone, RSS would climb by ~56 bytes a block until the rings wrap (2**18 blocks, 44 min at
    # 10 ms) and every new page would be a page fault inside the callback. reset() writes the
    # rings once, so the soak sees real growth only and the load run no first-touch faults.
    for m in (headset.meter, masking.meter, meter):
        m.reset()
    return headset, masking, meter, clock, source


def whole_report(meter):
    """The whole callback's report. Its two "stages" are the two pipelines, which run side by
    side rather than in series, so their algorithmic latency is left at 0 here: each
    pipeline's own report gives it."""
    return meter.report(
        "headset + masking callback", [("headset pipeline", 0), ("masking pipeline", 0)]
    )


def run_load(args) -> tuple[dict, bool]:
    """The load mode; returns the JSON-able result and whether the verdict holds."""
    from audio_engine.latency import machine_info

    cores = sorted(os.sched_getaffinity(0))
    load_core = cores[1] if len(cores) >= 2 else None
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[0]})
    headset, masking, meter, clock, source = build(args)
    loader = None
    if not args.no_load:
        loader = multiprocessing.get_context("spawn").Process(
            target=busy_loop, args=(load_core,), daemon=True
        )
        loader.start()
    policy = "normal scheduling (SCHED_OTHER)"
    if args.fifo_priority:
        # What a real audio thread gets (JACK, PipeWire, PortAudio's ALSA callback thread with
        # rtkit): the scheduler runs it before every normal process when its block is due.
        # Set after the load process started, so the busy loop does not inherit it.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.fifo_priority))
            policy = f"SCHED_FIFO priority {args.fifo_priority}"
        except PermissionError:
            policy = "normal scheduling (SCHED_FIFO refused: needs root or CAP_SYS_NICE)"
    where = (
        f"audio on core {cores[0]}, busy loop on core {load_core}"
        if load_core is not None
        else "one core only: audio and busy loop share it"
    )
    print(
        f"load test: {args.minutes:g} min at {args.rate} Hz / block {args.block} "
        f"({1e3 * args.block / args.rate:.1f} ms), headset + {args.zones} masking zones, "
        f"real-time pace; {where if loader else 'no load process (--no-load)'}; {policy}",
        flush=True,
    )
    frames = int(args.minutes * 60 * args.rate)
    started = time.monotonic()
    next_print = [30 * args.rate]

    def progress(done: int) -> None:
        # Runs between two blocks on the audio thread: only cheap figures (the last 1000
        # blocks), never a full report, which sorts the whole ring.
        if done >= next_print[0]:
            next_print[0] += 30 * args.rate
            print(
                f"  {done / args.rate / 60:5.1f} min: last 1000 callbacks p99 "
                f"{meter.recent_percentile_us(99.0):.0f} µs, max "
                f"{meter.recent_percentile_us(100.0):.0f} µs",
                flush=True,
            )

    try:
        clock.run(frames, source, None, progress)
    finally:
        if loader is not None:
            loader.terminate()
            loader.join(5)
    elapsed_s = time.monotonic() - started
    reports = [headset.report(), masking.report(), whole_report(meter)]
    for r in reports:
        print(r.to_text(), end="\n\n")
    # The whole callback holds the thread for both pipelines: its misses include theirs.
    misses = reports[-1].deadline_misses
    print(
        f"wall time {elapsed_s:.1f} s for {frames / args.rate:.1f} s of audio; callbacks that "
        f"started more than one block late: {clock.late_starts}"
    )
    ok = misses == 0 and clock.late_starts == 0
    print(
        f"verdict: {'PASS' if ok else 'FAIL'} — {misses} deadline misses, "
        f"{clock.late_starts} late starts (goal: 0 and 0)"
    )
    result = {
        "mode": "load",
        "minutes": args.minutes,
        "load_process": loader is not None,
        "scheduling": policy,
        "audio_core": cores[0],
        "load_core": load_core,
        "late_starts": clock.late_starts,
        "wall_time_s": elapsed_s,
        "verdict": ok,
        "machine": machine_info(),
        "reports": {r.pipeline: r.to_dict() for r in reports},
    }
    return result, ok


def run_soak(args) -> tuple[dict, bool]:
    """The soak mode; returns the JSON-able result and whether the verdict holds."""
    from audio_engine.latency import machine_info

    headset, masking, meter, clock, source = build(args)
    minute_frames = 60 * args.rate
    minute_blocks = -(-minute_frames // args.block)
    minutes = max(1, int(round(args.soak_hours * 60)))
    print(
        f"soak: {args.soak_hours:g} h of audio ({minutes} simulated minutes) as fast as possible "
        f"at {args.rate} Hz / block {args.block}, headset + {args.zones} masking zones",
        flush=True,
    )
    # One preallocated row per simulated minute, so the monitoring itself adds nothing to the
    # heap tracemalloc watches.
    columns = ("rss_mib", "heap_kib", "p50_us", "p99_us", "wall_s")
    table = np.zeros((minutes, len(columns)))
    tracemalloc.start()
    started = time.monotonic()
    for minute in range(minutes):
        clock.run(minute_frames, source)
        row = table[minute]
        row[0] = rss_mib()
        row[1] = tracemalloc.get_traced_memory()[0] / 1024.0
        row[2] = meter.recent_percentile_us(50.0, minute_blocks)
        row[3] = meter.recent_percentile_us(99.0, minute_blocks)
        row[4] = time.monotonic() - started
        if minute == 0 or (minute + 1) % 10 == 0 or minute + 1 == minutes:
            print(
                f"  minute {minute + 1:5d}: RSS {row[0]:7.1f} MiB, heap {row[1]:8.1f} KiB, "
                f"p50 {row[2]:7.1f} µs, p99 {row[3]:7.1f} µs (wall {row[4]:.0f} s)",
                flush=True,
            )
    tracemalloc.stop()
    rows = [
        {"minute": i + 1, **dict(zip(columns, map(float, table[i]), strict=True))}
        for i in range(minutes)
    ]
    reports = [headset.report(), masking.report(), whole_report(meter)]
    for r in reports:
        print(r.to_text(), end="\n\n")
    rss_growth = rows[-1]["rss_mib"] - rows[0]["rss_mib"]
    heap_growth = rows[-1]["heap_kib"] - rows[0]["heap_kib"]
    tenth = max(1, len(rows) // 10)
    first = float(np.median([r["p50_us"] for r in rows[:tenth]]))
    last = float(np.median([r["p50_us"] for r in rows[-tenth:]]))
    drift = last / max(first, 1e-9)
    checks = {
        "rss_growth_mib": (rss_growth, rss_growth <= RSS_GROWTH_LIMIT_MIB, RSS_GROWTH_LIMIT_MIB),
        "heap_growth_kib": (
            heap_growth,
            heap_growth <= HEAP_GROWTH_LIMIT_KIB,
            HEAP_GROWTH_LIMIT_KIB,
        ),
        "p50_drift": (drift, drift <= DRIFT_LIMIT, DRIFT_LIMIT),
    }
    for name, (value, good, limit) in checks.items():
        print(f"  {name}: {value:.3f} (limit {limit}) {'ok' if good else 'FAIL'}")
    ok = all(good for _, good, _ in checks.values())
    print(
        f"verdict: {'PASS' if ok else 'FAIL'} (memory flat and no latency drift since minute 1; "
        "deadline misses above are not judged here: blocks run back to back, unpaced)"
    )
    result = {
        "mode": "soak",
        "hours": args.soak_hours,
        "verdict": ok,
        "checks": {k: {"value": v, "ok": g, "limit": lim} for k, (v, g, lim) in checks.items()},
        "minutes": rows,
        "machine": machine_info(),
        "reports": {r.pipeline: r.to_dict() for r in reports},
    }
    return result, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="load mode: minutes of real-time audio (default: 10)",
    )
    parser.add_argument(
        "--soak-hours",
        type=float,
        default=None,
        help="soak mode: hours of audio, run faster than real time",
    )
    parser.add_argument("--rate", type=int, default=48000, help="sample rate, Hz (default: 48000)")
    parser.add_argument("--block", type=int, default=480, help="block size (default: 480 = 10 ms)")
    parser.add_argument("--zones", type=int, default=32, help="masking zones (default: 32)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the office input")
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="load mode without the busy-loop process (the baseline)",
    )
    parser.add_argument(
        "--fifo-priority",
        type=int,
        default=0,
        metavar="N",
        help="load mode: run the audio loop as SCHED_FIFO priority N (1..99), as "
        "a real audio thread runs (default: 0 = normal scheduling)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON")
    args = parser.parse_args(argv)
    from audio_engine.bench import check_settings
    from audio_engine.errors import ConfigError

    try:
        check_settings(max(args.minutes * 60, 0.1), args.rate, args.block, args.zones)
        if not 0 <= args.fifo_priority <= 99:
            raise ConfigError(f"--fifo-priority={args.fifo_priority} is not in 0..99")
        if not args.minutes > 0 or (args.soak_hours is not None and not 0 < args.soak_hours <= 240):
            raise ConfigError(
                f"--minutes={args.minutes} must be > 0 and --soak-hours={args.soak_hours} in 0..240"
            )
    except ConfigError as exc:
        print(f"load_soak: error: {exc}", file=sys.stderr)
        return 2
    result, ok = run_soak(args) if args.soak_hours else run_load(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
