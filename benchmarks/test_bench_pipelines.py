"""pytest-benchmark: one block of the full headset and masking pipelines over the issue's grid.

Grid: sample rate (16000, 44100, 48000 Hz) × block size (64, 128, 256, 480, 1024) × width
(headset microphone channels or masking zones: 1, 8, 32), 45 cases per pipeline. Each case
times ``Pipeline.process`` on one block of realistic input (the office mix for the headset,
silence for the masking generator, which ignores its input) and reports the deadline figures
of ``benchmarks/conftest.py`` in ``extra_info``.

Run (from the repository root; the whole grid, about 4 minutes on 2 cores)::

    python -m pytest benchmarks/test_bench_pipelines.py --benchmark-only \\
        --benchmark-max-time=0.25 --benchmark-min-rounds=50 --benchmark-columns=median,mean,max \\
        --benchmark-sort=name --benchmark-save=pipelines

A subset: ``-k "headset and 48000Hz and 480f"``. Comparing with a saved baseline:
benchmarks/README.md.
"""

from __future__ import annotations

import numpy as np
import pytest

# benchmarks/ is not a package: pytest puts it on sys.path and imports its conftest as `conftest`.
from conftest import BLOCK_SIZES, SAMPLE_RATES, WIDTHS, BlockFeeder, office_input

GRID = [
    pytest.param(rate, block, width, id=f"{rate}Hz-{block}f-{width}ch")
    for rate in SAMPLE_RATES
    for block in BLOCK_SIZES
    for width in WIDTHS
]


@pytest.mark.parametrize(("sample_rate", "block_size", "channels"), GRID)
def test_headset_pipeline_block(realtime_benchmark, benchmark, sample_rate, block_size, channels):
    from audio_engine.pipelines import build_headset_pipeline

    benchmark.group = f"headset {sample_rate} Hz"
    pipeline = build_headset_pipeline(sample_rate, block_size, channels)
    feeder = BlockFeeder(pipeline, office_input(sample_rate, channels))
    realtime_benchmark(
        feeder,
        sample_rate=sample_rate,
        block_size=block_size,
        channels=channels,
        algorithmic_latency_ms=pipeline.report().algorithmic_latency_ms,
    )
    assert np.all(np.isfinite(feeder.out))


@pytest.mark.parametrize(("sample_rate", "block_size", "zones"), GRID)
def test_masking_pipeline_block(realtime_benchmark, benchmark, sample_rate, block_size, zones):
    from audio_engine.pipelines import build_masking_pipeline

    benchmark.group = f"masking {sample_rate} Hz"
    pipeline = build_masking_pipeline(zones, sample_rate, block_size)
    silence = np.zeros((block_size, 1), np.float32)
    feeder = BlockFeeder(pipeline, silence)
    realtime_benchmark(
        feeder,
        sample_rate=sample_rate,
        block_size=block_size,
        zones=zones,
        algorithmic_latency_ms=pipeline.report().algorithmic_latency_ms,
    )
    assert np.all(np.isfinite(feeder.out))
