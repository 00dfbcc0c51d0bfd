"""Compute time of the noise suppressor per 10 ms block through the streaming API.

Run: ``python -m pytest benchmarks/test_bench_suppressor.py --benchmark-only``

Goal (issue 3): <= 20 µs per 10 ms frame at 48 kHz mono. The deadline of a 10 ms block is
10 000 µs; ``extra_info`` carries the fraction of it each case uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp.suppressor import NoiseSuppressor
from audio_engine.office.noise import mix_at_snr
from audio_engine.office.speech import demo_speech
from tests import signals


@pytest.mark.parametrize(
    ("sample_rate", "channels", "hop_ms"),
    [(48000, 1, 2.5), (48000, 1, 5.0), (16000, 1, 2.5), (16000, 1, 5.0), (48000, 2, 2.5)],
)
def test_process_10ms_block(benchmark, sample_rate, channels, hop_ms):
    block = sample_rate // 100
    speech = demo_speech(sample_rate)[: 2 * sample_rate]
    noise = mix_at_snr(speech, signals.office_noise_signal("pink", len(speech), sample_rate), 5.0)
    x = np.repeat((speech + noise)[:, None], channels, axis=1).astype(np.float32)
    ns = NoiseSuppressor(sample_rate, block, channels, hop_ms=hop_ms)
    out = np.zeros((block, channels), np.float32)
    blocks = [np.ascontiguousarray(x[i : i + block]) for i in range(0, len(x) - block, block)]
    for b in blocks[:50]:  # settle the estimators
        ns.process(b, out)
    state = {"i": 0}

    def one_block() -> None:
        ns.process(blocks[state["i"] % len(blocks)], out)
        state["i"] += 1

    benchmark.pedantic(one_block, rounds=2000, iterations=1, warmup_rounds=100)
    mean_us = benchmark.stats.stats.mean * 1e6
    benchmark.extra_info["mean_us_per_10ms"] = mean_us
    benchmark.extra_info["fraction_of_deadline"] = mean_us / 10_000.0
    benchmark.extra_info["goal_us"] = 20.0
