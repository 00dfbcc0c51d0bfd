"""Shared fixtures of the pytest-benchmark suites in benchmarks/ (never part of the tests).

Every suite reports a block's cost against its real-time deadline, ``block_size / sample_rate``:
:func:`realtime_benchmark` runs ``benchmark`` and stores in ``benchmark.extra_info`` (so in the
saved JSON and in ``--benchmark-compare`` runs) the deadline and the fractions of it the median
and mean block take, and the share of one core the stage would use running in real time.

The grid of the issue (sample rates × block sizes × channels/zones) is here once, as
:data:`SAMPLE_RATES`, :data:`BLOCK_SIZES` and :data:`WIDTHS`, for every suite to parametrize
over. How to run, save and compare: benchmarks/README.md.
"""

from __future__ import annotations

import numpy as np
import pytest

#: Sample rates of the benchmark grid, Hz: wideband telephony, CD, the office's devices.
SAMPLE_RATES = (16000, 44100, 48000)

#: Block sizes of the grid, frames: 64 (1.3 ms at 48 kHz) .. 1024 (21 ms); 480 is 10 ms at 48 kHz.
BLOCK_SIZES = (64, 128, 256, 480, 1024)

#: Channels (headset microphones) or masking zones of the grid.
WIDTHS = (1, 8, 32)

#: Seconds of input a feeder cycles through: long enough that the suppressor sees speech and
#: pauses, short enough to build in well under a second.
FEED_SECONDS = 4.0


class BlockFeeder:
    """Calls ``processor.process`` on consecutive blocks of ``data``, wrapping at its end.

    One call is one block, as the audio callback would run it; the output goes to a
    preallocated array. The slicing costs well under a microsecond per call and is included
    in every figure alike.
    """

    def __init__(self, processor, data: np.ndarray):
        self.processor = processor
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.block_size = processor.block_size
        self.out = np.zeros((self.block_size, processor.output_channels), np.float32)
        self.position = 0

    def __call__(self) -> None:
        start = self.position
        if start + self.block_size > self.data.shape[0]:
            start = 0
        self.processor.process(self.data[start : start + self.block_size], self.out)
        self.position = start + self.block_size


def office_input(sample_rate: int, channels: int, seconds: float = FEED_SECONDS) -> np.ndarray:
    """The bench's office headset mix (speech over babble, HVAC, keyboard), (frames, channels)."""
    from audio_engine.bench import office_headset_mix

    return office_headset_mix(int(seconds * sample_rate), sample_rate, channels, seed=1)


@pytest.fixture
def realtime_benchmark(benchmark):
    """``run(function, sample_rate=..., block_size=..., **info)``: benchmark one block's work.

    Runs ``benchmark(function)`` and records in ``benchmark.extra_info``: ``sample_rate``,
    ``block_size``, ``deadline_us``, ``median_us``, ``mean_us``, ``median_of_deadline`` and
    ``mean_of_deadline`` (fractions), ``core_percent`` (mean / deadline in %, the share of one
    core used in real time), plus ``info``. With ``--benchmark-disable`` the function runs once
    and only the settings are recorded.
    """

    def run(function, *, sample_rate: int, block_size: int, **info):
        deadline_us = 1e6 * block_size / sample_rate
        benchmark.extra_info.update(
            sample_rate=sample_rate, block_size=block_size, deadline_us=deadline_us, **info
        )
        result = benchmark(function)
        metadata = getattr(benchmark, "stats", None)
        if metadata:  # None or empty when benchmarking is disabled
            median_us = 1e6 * metadata.stats.median
            mean_us = 1e6 * metadata.stats.mean
            benchmark.extra_info.update(
                median_us=median_us,
                mean_us=mean_us,
                median_of_deadline=median_us / deadline_us,
                mean_of_deadline=mean_us / deadline_us,
                core_percent=100.0 * mean_us / deadline_us,
            )
        return result

    return run
