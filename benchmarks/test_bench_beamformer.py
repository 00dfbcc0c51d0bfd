"""pytest-benchmark: one block of the array path with 2, 4 and 8 microphones.

Grid: sample rate (16000, 48000 Hz) × block size (128, 480) × microphones (2, 4, 8) ×
beamformer (delay-and-sum, MVDR), plus the whole array pipeline (capture, MVDR, suppressor)
at 4 and 8 microphones. Arrays are circles of radius 4 cm (2 mics: a 8 cm pair) with the
mouth 0.4 m in front; the input is a speaking target in free field plus independent noise on
every capsule, so the MVDR both tracks its covariance and solves for new weights. The MVDR
works once per STFT hop (half of a 32 ms frame), so its block times are lumpy: compare the
mean with the deadline for the load and the max for the worst block. Each case reports the
deadline figures of ``benchmarks/conftest.py``.

Run (from the repository root, about a minute on 2 cores)::

    python -m pytest benchmarks/test_bench_beamformer.py --benchmark-only \\
        --benchmark-max-time=0.2 --benchmark-min-rounds=50 \\
        --benchmark-columns=median,mean,max --benchmark-sort=name
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from audio_engine.array_config import parse_array
from benchmarks.conftest import BlockFeeder

MICS = (2, 4, 8)
RATES = (16000, 48000)
BLOCKS = (128, 480)


@functools.lru_cache(maxsize=4)
def circle_array(mics: int):
    """``mics`` capsules on a 4 cm-radius circle on the desk, mouth 0.4 m ahead, 0.3 m up."""
    angles = 2 * np.pi * np.arange(mics) / mics
    return parse_array(
        {
            "name": f"circle-{mics}",
            "mouth_m": [0.0, 0.4, 0.3],
            "mics": [
                {"position_m": [0.04 * np.cos(a), 0.04 * np.sin(a), 0.0], "channel": i + 1}
                for i, a in enumerate(angles)
            ],
        },
        f"circle-{mics}",
    )


@functools.lru_cache(maxsize=8)
def array_input(sample_rate: int, mics: int, seconds: float = 2.0) -> np.ndarray:
    from tests import signals

    config = circle_array(mics)
    frames = int(seconds * sample_rate)
    talk = np.resize(signals.speech("en", sample_rate), frames)
    x = signals.free_field_array(talk, config.positions_m, config.mouth_m, sample_rate)
    return x + signals.white(frames, mics, 21, rms=0.01)


GRID = [
    pytest.param(kind, rate, block, mics, id=f"{kind}-{rate}Hz-{block}f-{mics}mic")
    for kind in ("delay-and-sum", "mvdr")
    for rate in RATES
    for block in BLOCKS
    for mics in MICS
]


@pytest.mark.parametrize(("kind", "sample_rate", "block_size", "mics"), GRID)
def test_beamformer_block(realtime_benchmark, benchmark, kind, sample_rate, block_size, mics):
    from audio_engine.dsp.beamformer import build_beamformer

    benchmark.group = f"beamformer {kind} {sample_rate} Hz"
    beam = build_beamformer(kind, sample_rate, block_size, circle_array(mics))
    feeder = BlockFeeder(beam, array_input(sample_rate, mics))
    realtime_benchmark(
        feeder,
        sample_rate=sample_rate,
        block_size=block_size,
        mics=mics,
        algorithmic_latency_ms=1e3 * beam.latency_samples / sample_rate,
    )
    assert np.all(np.isfinite(feeder.out))


@pytest.mark.parametrize("mics", (4, 8))
@pytest.mark.parametrize("sample_rate", RATES)
def test_array_pipeline_block(realtime_benchmark, benchmark, sample_rate, mics):
    from audio_engine.dsp.beamformer import build_array_pipeline

    benchmark.group = f"array pipeline {sample_rate} Hz"
    block_size = sample_rate // 100
    pipeline = build_array_pipeline(circle_array(mics), sample_rate, block_size, 25.0)
    feeder = BlockFeeder(pipeline, array_input(sample_rate, mics))
    realtime_benchmark(
        feeder,
        sample_rate=sample_rate,
        block_size=block_size,
        mics=mics,
        algorithmic_latency_ms=1e3 * pipeline.latency_samples / sample_rate,
    )
    assert np.all(np.isfinite(feeder.out))
