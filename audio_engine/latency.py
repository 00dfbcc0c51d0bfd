"""Per-frame latency measurement and the latency report.

:class:`LatencyMeter` records the processing time of every block into a preallocated ring of
``int64`` nanoseconds, so measuring costs no allocation in the audio callback. At the end of a run
:meth:`LatencyMeter.report` turns the ring into a :class:`LatencyReport`: percentiles of the
processing time in microseconds and as a fraction of the block deadline
(``block_size / sample_rate``), deadline misses, PortAudio xrun counts, each stage's algorithmic
latency and the total. The report prints as a table (:meth:`LatencyReport.to_text`) and saves
as JSON (:meth:`LatencyReport.to_json`); its schema is documented in README.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: Blocks kept for percentiles: 2**18 blocks is 44 minutes of 10 ms blocks. Older blocks still
#: count towards the totals (blocks, misses, max); only percentiles use the most recent window.
DEFAULT_CAPACITY = 1 << 18

#: Percentiles the report gives, as (label, percentile).
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


class LatencyMeter:
    """Preallocated recorder of per-block processing times for one pipeline and its stages.

    Parameters
    ----------
    sample_rate : int
        Hz; with ``block_size`` sets the deadline.
    block_size : int
        Frames per block.
    stage_names : sequence of str
        One timing column per stage, in order (may be empty).
    capacity : int
        Blocks kept for percentiles.

    Notes
    -----
    :meth:`record`, :meth:`record_stage` and :meth:`count_status` are real-time safe: they
    write into preallocated arrays and integer counters only.
    """

    def __init__(
        self, sample_rate: int, block_size: int, stage_names=(), capacity: int = DEFAULT_CAPACITY
    ):
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self.stage_names = tuple(stage_names)
        self.capacity = int(capacity)
        self.deadline_ns = int(round(1e9 * self.block_size / self.sample_rate))
        # np.zeros maps pages lazily; filling them here takes the page faults now, not in the
        # audio callback the first time each page of the ring is written.
        self._times_ns = np.empty(self.capacity, np.int64)
        self._times_ns.fill(0)
        self._stage_ns = np.empty((self.capacity, max(1, len(self.stage_names))), np.int64)
        self._stage_ns.fill(0)
        self._counters = np.zeros(
            6, np.int64
        )  # blocks, misses, max_ns, in_overflow, out_underflow, other
        self.wall_start_s = time.time()

    # -- hot path -----------------------------------------------------------------------------
    def record_stage(self, stage: int, elapsed_ns: int) -> None:
        """Record one stage's time for the block being processed (real-time safe)."""
        self._stage_ns[self._counters[0] % self.capacity, stage] = elapsed_ns

    def record(self, elapsed_ns: int) -> None:
        """Record one block's total processing time and close the block (real-time safe)."""
        c = self._counters
        self._times_ns[c[0] % self.capacity] = elapsed_ns
        c[0] += 1
        if elapsed_ns > self.deadline_ns:
            c[1] += 1
        if elapsed_ns > c[2]:
            c[2] = elapsed_ns

    def count_status(
        self, input_overflow: bool, output_underflow: bool, other: bool = False
    ) -> None:
        """Count PortAudio status flags reported to a callback (real-time safe)."""
        c = self._counters
        if input_overflow:
            c[3] += 1
        if output_underflow:
            c[4] += 1
        if other:
            c[5] += 1

    # -- off the hot path ---------------------------------------------------------------------
    @property
    def blocks(self) -> int:
        """Blocks recorded so far."""
        return int(self._counters[0])

    def block_times_us(self) -> np.ndarray:
        """Processing time of each kept block in µs, oldest first (a copy; not real-time safe)."""
        n = int(self._counters[0])
        k = min(n, self.capacity)
        idx = np.arange(n - k, n) % self.capacity
        return self._times_ns[idx].astype(np.float64) / 1e3

    def recent_percentile_us(self, percentile: float, last_blocks: int = 1000) -> float:
        """A percentile of the last ``last_blocks`` block times in µs (for live status lines)."""
        n = int(self._counters[0])
        if n == 0:
            return 0.0
        k = min(n, last_blocks, self.capacity)
        idx = np.arange(n - k, n) % self.capacity
        return float(np.percentile(self._times_ns[idx], percentile)) / 1e3

    def reset(self) -> None:
        """Forget every recorded block."""
        self._times_ns.fill(0)
        self._stage_ns.fill(0)
        self._counters.fill(0)
        self.wall_start_s = time.time()

    def report(
        self,
        pipeline_name: str,
        stages=(),
        device_latency_s: dict | None = None,
        telemetry: dict | None = None,
    ) -> LatencyReport:
        """Summarise the recorded blocks.

        Parameters
        ----------
        pipeline_name : str
            Name printed in the report (``"headset"``, ``"masking"``...).
        stages : sequence of (name, latency_samples)
            Algorithmic latency of each stage in order.
        device_latency_s : dict, optional
            PortAudio's reported ``input`` / ``output`` latency in seconds, on a device.
        telemetry : dict, optional
            Extra figures to carry (suppressor VAD, SNR; masking levels...).
        """
        n = int(self._counters[0])
        k = min(n, self.capacity)
        times_us = np.sort(self._times_ns[:k]).astype(np.float64) / 1e3 if k else np.zeros(1)
        deadline_us = self.deadline_ns / 1e3
        pct = {label: float(np.percentile(times_us, p)) for label, p in PERCENTILES}
        stage_rows = []
        for i, (name, lat) in enumerate(stages):
            if i < len(self.stage_names) and k:
                col = self._stage_ns[:k, i].astype(np.float64) / 1e3
                p50, p99, mx = np.percentile(col, 50), np.percentile(col, 99), col.max()
            else:
                p50 = p99 = mx = 0.0
            stage_rows.append(
                StageReport(
                    name=name,
                    algorithmic_latency_samples=int(lat),
                    algorithmic_latency_ms=1e3 * lat / self.sample_rate,
                    p50_us=float(p50),
                    p99_us=float(p99),
                    max_us=float(mx),
                )
            )
        algorithmic_ms = sum(s.algorithmic_latency_ms for s in stage_rows)
        buffering_ms = 1e3 * self.block_size / self.sample_rate
        mean_us = float(times_us.mean()) if k else 0.0
        return LatencyReport(
            pipeline=pipeline_name,
            sample_rate=self.sample_rate,
            block_size=self.block_size,
            blocks=n,
            deadline_us=deadline_us,
            p50_us=pct["p50"] if k else 0.0,
            p95_us=pct["p95"] if k else 0.0,
            p99_us=pct["p99"] if k else 0.0,
            p999_us=pct["p999"] if k else 0.0,
            max_us=float(self._counters[2]) / 1e3,
            mean_us=mean_us,
            deadline_misses=int(self._counters[1]),
            realtime_factor=(mean_us / deadline_us) if k else 0.0,
            input_overflows=int(self._counters[3]),
            output_underflows=int(self._counters[4]),
            other_status_flags=int(self._counters[5]),
            stages=stage_rows,
            algorithmic_latency_ms=algorithmic_ms,
            block_buffering_ms=buffering_ms,
            total_latency_ms=algorithmic_ms + buffering_ms,
            device_input_latency_ms=None
            if not device_latency_s
            else 1e3 * device_latency_s.get("input", 0.0),
            device_output_latency_ms=None
            if not device_latency_s
            else 1e3 * device_latency_s.get("output", 0.0),
            telemetry=dict(telemetry or {}),
        )


@dataclass
class StageReport:
    """One stage's line in the latency report."""

    name: str
    algorithmic_latency_samples: int
    algorithmic_latency_ms: float
    p50_us: float
    p99_us: float
    max_us: float


@dataclass
class LatencyReport:
    """Per-frame latency of one pipeline run. Times in µs, latencies in ms.

    ``realtime_factor`` is mean processing time / deadline: 0.05 means the pipeline uses 5 % of
    the time it has. ``total_latency_ms`` is algorithmic latency plus one block of buffering;
    on a device, PortAudio's reported input and output latencies come on top.
    """

    pipeline: str
    sample_rate: int
    block_size: int
    blocks: int
    deadline_us: float
    p50_us: float
    p95_us: float
    p99_us: float
    p999_us: float
    max_us: float
    mean_us: float
    deadline_misses: int
    realtime_factor: float
    input_overflows: int
    output_underflows: int
    other_status_flags: int
    stages: list[StageReport] = field(default_factory=list)
    algorithmic_latency_ms: float = 0.0
    block_buffering_ms: float = 0.0
    total_latency_ms: float = 0.0
    device_input_latency_ms: float | None = None
    device_output_latency_ms: float | None = None
    telemetry: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as plain JSON-able data."""
        return asdict(self)

    def to_text(self) -> str:
        """A readable table of the report."""
        d = self.deadline_us

        def frac(us: float) -> str:
            return f"{us:10.1f} µs  {100.0 * us / d:6.2f} %"

        lines = [
            f"Latency report — {self.pipeline}: {self.sample_rate} Hz, block {self.block_size} "
            f"({1e3 * self.block_size / self.sample_rate:.2f} ms deadline = {d:.0f} µs), {self.blocks} blocks",
            "  processing time per block           of deadline",
            f"    p50   {frac(self.p50_us)}",
            f"    p95   {frac(self.p95_us)}",
            f"    p99   {frac(self.p99_us)}",
            f"    p99.9 {frac(self.p999_us)}",
            f"    max   {frac(self.max_us)}",
            f"  deadline misses: {self.deadline_misses}   real-time factor: {self.realtime_factor:.4f}",
            f"  xruns: input overflow {self.input_overflows}, output underflow {self.output_underflows}"
            + (f", other {self.other_status_flags}" if self.other_status_flags else ""),
            "  stage                         latency (samples / ms)   p50 µs    p99 µs    max µs",
        ]
        for s in self.stages:
            lines.append(
                f"    {s.name:<28}{s.algorithmic_latency_samples:8d} / {s.algorithmic_latency_ms:6.2f}"
                f"   {s.p50_us:8.1f}  {s.p99_us:8.1f}  {s.max_us:8.1f}"
            )
        lines.append(
            f"  algorithmic latency {self.algorithmic_latency_ms:.2f} ms + block buffering "
            f"{self.block_buffering_ms:.2f} ms = {self.total_latency_ms:.2f} ms"
        )
        if self.device_input_latency_ms is not None:
            lines.append(
                f"  PortAudio reported latency: input {self.device_input_latency_ms:.2f} ms, "
                f"output {self.device_output_latency_ms:.2f} ms"
            )
        for key, value in self.telemetry.items():
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)


def machine_info() -> dict:
    """The machine and library versions a measurement ran on (for reports and benchmarks)."""
    import numba
    import scipy

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "audio_engine": __import__("audio_engine").__version__,
    }


def write_reports_json(
    path: str | os.PathLike, reports: list[LatencyReport], extra: dict | None = None
) -> None:
    """Write one or more reports to ``path`` as JSON (schema in README.md, "Latency report")."""
    payload = {
        "schema": "audio_engine.latency_report/1",
        "machine": machine_info(),
        "pipelines": {r.pipeline: r.to_dict() for r in reports},
    }
    if reports:
        payload["sample_rate"] = reports[0].sample_rate
        payload["block_size"] = reports[0].block_size
    if extra:
        payload.update(extra)
    Path(path).write_text(json.dumps(payload, indent=2, default=float) + "\n")
