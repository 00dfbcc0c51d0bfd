"""pytest-benchmark: one block of the receive path's :class:`HearingProtector` (with dosimeter).

Grid: sample rate (16000, 44100, 48000 Hz) × block size (64 .. 1024) × channels (1 mono
headset, 2 stereo). The input is a caller's speech at 92 dB SPL (a shouting caller) with a
1 kHz squeal at 120 dB SPL, so every stage (level control, anti-startle, limiter, dosimeter)
is working, not idling. Each case reports the deadline figures of ``benchmarks/conftest.py``.

Run (from the repository root, about 40 s on 2 cores)::

    python -m pytest benchmarks/test_bench_hearing.py --benchmark-only \\
        --benchmark-max-time=0.2 --benchmark-min-rounds=50 --benchmark-columns=median,mean,max \\
        --benchmark-sort=name

A subset: ``-k "48000Hz and 480f"``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.conftest import BLOCK_SIZES, SAMPLE_RATES, BlockFeeder

GRID = [
    pytest.param(rate, block, channels, id=f"{rate}Hz-{block}f-{channels}ch")
    for rate in SAMPLE_RATES
    for block in BLOCK_SIZES
    for channels in (1, 2)
]

SENSITIVITY_DB_SPL = 110.0


def receive_input(sample_rate: int, channels: int, seconds: float = 4.0) -> np.ndarray:
    """Shouting caller (92 dB SPL active level) with a 120 dB SPL squeal from 1.0 to 1.5 s."""
    from audio_engine.office.speech import demo_speech

    speech = demo_speech(sample_rate)
    frames = int(seconds * sample_rate)
    x = np.resize(speech, frames).astype(np.float64)
    rms = math.sqrt(float(np.mean(x[np.abs(x) > 1e-3 * np.abs(x).max()] ** 2)))
    x *= 10.0 ** ((92.0 - SENSITIVITY_DB_SPL) / 20.0) / math.sqrt(2.0) / rms
    t = np.arange(frames) / sample_rate
    squeal = (t >= 1.0) & (t < 1.5)
    x[squeal] += 10.0 ** ((120.0 - SENSITIVITY_DB_SPL) / 20.0) * np.sin(
        2 * np.pi * 1000.0 * t[squeal]
    )
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.mark.parametrize(("sample_rate", "block_size", "channels"), GRID)
def test_hearing_protector_block(realtime_benchmark, benchmark, sample_rate, block_size, channels):
    from audio_engine.dsp.hearing import HearingProtector
    from audio_engine.headset_profile import HeadsetProfile

    benchmark.group = f"hearing {sample_rate} Hz"
    protector = HearingProtector(
        sample_rate,
        block_size,
        channels,
        profile=HeadsetProfile("bench", SENSITIVITY_DB_SPL),
    )
    feeder = BlockFeeder(protector, receive_input(sample_rate, channels))
    realtime_benchmark(
        feeder,
        sample_rate=sample_rate,
        block_size=block_size,
        channels=channels,
        algorithmic_latency_ms=1e3 * protector.latency_samples / sample_rate,
    )
    assert np.all(np.isfinite(feeder.out))
    assert np.max(np.abs(feeder.out)) <= protector.limit_amplitude * (1 + 1e-6)
