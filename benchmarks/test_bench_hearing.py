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


def test_receive_path_figures():
    """Not a timing: the protection figures docs/hearing.md quotes, printed (run with ``-s``)::

    python -m pytest benchmarks/test_bench_hearing.py -k figures -s -q
    """
    from audio_engine.dsp.dosimeter import T0_S
    from tests import signals
    from tests.test_dosimeter import streamed_lex, tone_at
    from tests.test_hearing import (
        FS,
        active_rms,
        protect,
        speech_at,
        speech_with_burst,
        window_levels_db_spl,
    )
    from tests.test_hearing import level_db_spl as level

    rows = []
    for speech_level in (65.0, 70.0, 75.0, 80.0, 85.0):
        x = speech_at(speech_level)
        y, _ = protect(x)
        rows.append(
            f"speech {speech_level:.0f} dB SPL: SI-SDR {signals.si_sdr_db(x, y):6.1f} dB, "
            f"level change {level(y) - level(x):+.2f} dB"
        )
    ms = FS // 1000
    for tone, speech_level in ((132.0, 70.0), (100.0, 70.0)):
        x, onset, n = speech_with_burst(speech_level, tone)
        y, p = protect(x, level_control=False)
        levels = window_levels_db_spl(y, onset, ms, n // ms)
        peak = 20.0 * math.log10(float(np.max(np.abs(y)))) + SENSITIVITY_DB_SPL
        first_under = int(np.argmax(levels < 93.0))
        rows.append(
            f"1 kHz burst {tone:.0f} dB SPL over {speech_level:.0f} dB SPL speech: output peak "
            f"{peak:.2f} dB SPL (sine-equivalent), loudest 1 ms {levels.max():.1f} dB SPL, "
            f"under 93 dB SPL from {first_under} ms, mean over the burst {levels.mean():.1f}"
        )
    x = speech_at(92.0, repeats=3)
    y, _ = protect(x)
    third = len(x) // 3
    n = FS // 20
    frames = len(x) // n
    ex = np.mean(np.square(x[: frames * n].reshape(frames, n), dtype=np.float64), axis=1)
    ey = np.mean(np.square(y[: frames * n].reshape(frames, n), dtype=np.float64), axis=1)
    active = ex > 1e-3 * ex.max()
    gain_db = 10.0 * np.log10(ey[active] / ex[active])[int(active.sum()) // 3 :]
    out_level = 20 * math.log10(active_rms(y[third:], FS) * math.sqrt(2)) + SENSITIVITY_DB_SPL
    rows.append(
        f"shouting caller 92 dB SPL: output active level {out_level:.1f} dB SPL after the first "
        f"third; gain std {gain_db.std():.2f} dB on active 50 ms frames (range "
        f"{gain_db.min():.1f}..{gain_db.max():.1f} dB)"
    )
    tone = tone_at(94.0, 1000.0, 10.0, 48000)
    d = streamed_lex(tone, 48000)
    expected = 94.0 + 10.0 * math.log10(10.0 / T0_S)
    rows.append(
        f"dosimeter, 94 dB SPL 1 kHz for 10 s: LEX,8h {d.lex_8h_dba:.3f} dB(A), analytic "
        f"{expected:.3f} dB(A)"
    )
    print("\n" + "\n".join(rows))
