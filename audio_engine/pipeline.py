"""A pipeline chains processors, sums their latency and times every stage of every block."""

from __future__ import annotations

import time

import numpy as np

from audio_engine.dsp.base import Processor
from audio_engine.errors import ConfigError
from audio_engine.latency import LatencyMeter, LatencyReport


class Pipeline(Processor):
    """A chain of processors that is itself a processor.

    Parameters
    ----------
    stages : sequence of Processor
        Built for the same ``sample_rate`` and ``block_size``; each stage's ``channels`` must
        equal the previous stage's ``output_channels``.
    name : str
        Name in the latency report.
    meter : LatencyMeter, optional
        Where block and stage times go; one is made if not given.

    Notes
    -----
    :meth:`process` is real-time safe: intermediate blocks live in buffers allocated here, and
    timings go into the meter's preallocated ring. Every call is timed, so every run of every
    pipeline has a latency report (:meth:`report`).
    """

    def __init__(self, stages, name: str = "pipeline", meter: LatencyMeter | None = None):
        stages = list(stages)
        if not stages:
            raise ConfigError("a pipeline needs at least one stage, got none")
        first = stages[0]
        for i, stage in enumerate(stages):
            if not isinstance(stage, Processor):
                raise ConfigError(f"stage {i} is {type(stage).__name__}, not a Processor")
            if stage.sample_rate != first.sample_rate or stage.block_size != first.block_size:
                raise ConfigError(
                    f"stage {i} ({stage.name}) is built for {stage.sample_rate} Hz / block "
                    f"{stage.block_size}, the pipeline for {first.sample_rate} Hz / block {first.block_size}"
                )
            if i and stage.channels != stages[i - 1].output_channels:
                raise ConfigError(
                    f"stage {i} ({stage.name}) takes {stage.channels} channels but stage {i - 1} "
                    f"({stages[i - 1].name}) gives {stages[i - 1].output_channels}"
                )
        self.sample_rates = (first.sample_rate,)
        super().__init__(first.sample_rate, first.block_size, first.channels)
        self.output_channels = stages[-1].output_channels
        self.stages = stages
        self.pipeline_name = name
        self.meter = meter or LatencyMeter(
            self.sample_rate, self.block_size, [s.name for s in stages]
        )
        # One scratch buffer per stage boundary, so each stage writes somewhere it may.
        self._buffers = [
            np.zeros((self.block_size, s.output_channels), np.float32) for s in stages[:-1]
        ]

    @property
    def name(self) -> str:
        return self.pipeline_name

    @property
    def latency_samples(self) -> int:
        return sum(s.latency_samples for s in self.stages)

    def reset(self) -> None:
        for s in self.stages:
            s.reset()

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        frames = block.shape[0]
        meter = self.meter
        clock = time.perf_counter_ns
        start = clock()
        src = block
        last = len(self.stages) - 1
        t0 = start
        for i, stage in enumerate(self.stages):
            dst = out if i == last else self._buffers[i][:frames]
            stage.process(src, dst)
            t1 = clock()
            meter.record_stage(i, t1 - t0)
            t0 = t1
            src = dst
        meter.record(t0 - start)

    def report(
        self, device_latency_s: dict | None = None, telemetry: dict | None = None
    ) -> LatencyReport:
        """The latency report of everything this pipeline has processed so far."""
        stages = [(s.name, s.latency_samples) for s in self.stages]
        merged = {}
        for s in self.stages:
            t = getattr(s, "telemetry_summary", None)
            if callable(t):
                merged.update(t())
        merged.update(telemetry or {})
        return self.meter.report(self.pipeline_name, stages, device_latency_s, merged)
