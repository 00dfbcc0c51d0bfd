"""The per-frame latency report: figures against a processor with a known cost."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from audio_engine.dsp.base import Delay, Processor
from audio_engine.engine import run_array
from audio_engine.latency import LatencyMeter, write_reports_json
from audio_engine.pipeline import Pipeline
from tests import signals

SLEEP_S = 0.002


class Sleeper(Processor):
    """Copies its input and sleeps a known time: a stage of known cost."""

    def _process(self, block, out):
        out[:] = block
        time.sleep(SLEEP_S)


def test_report_sees_a_known_sleep_and_counts_misses():
    # 64 frames at 48 kHz is a 1333 µs deadline; a 2 ms sleep misses every one of them.
    p = Pipeline([Sleeper(48000, 64, 1), Delay(48000, 64, 1, delay_samples=48)], name="sleepy")
    run_array(p, None, frames=64 * 25)
    r = p.report()
    assert r.blocks == 25
    assert r.deadline_us == pytest.approx(1e6 * 64 / 48000)
    # time.sleep never returns early, so every percentile is at least the sleep.
    assert r.p50_us >= 1e6 * SLEEP_S
    assert r.p50_us <= r.p95_us <= r.p99_us <= r.p999_us <= r.max_us
    assert r.deadline_misses == 25
    assert r.realtime_factor > 1.0
    sleeper, delay = r.stages
    assert sleeper.p50_us >= 1e6 * SLEEP_S
    assert delay.p50_us < sleeper.p50_us
    assert delay.algorithmic_latency_ms == pytest.approx(1.0)
    text = r.to_text()
    assert "deadline misses: 25" in text
    assert "Sleeper" in text and "Delay" in text


def test_fast_stage_misses_no_deadline():
    p = Pipeline([Delay(48000, 480, 1, delay_samples=5)], name="fast")
    run_array(p, signals.white(48000, 1))
    assert p.report().deadline_misses == 0


def test_meter_ring_keeps_totals_beyond_capacity():
    m = LatencyMeter(48000, 480, ["a"], capacity=16)
    for i in range(100):
        m.record(1000 * (i + 1))
    r = m.report("ring", [("a", 0)])
    assert r.blocks == 100
    assert r.max_us == pytest.approx(100.0)
    # percentiles cover the last 16 blocks only: 85..100 µs
    assert r.p50_us == pytest.approx(np.percentile(np.arange(85, 101), 50))


def test_status_flags_are_counted():
    m = LatencyMeter(48000, 480)
    m.count_status(True, False)
    m.count_status(False, True)
    m.count_status(True, True)
    r = m.report("flags")
    assert (r.input_overflows, r.output_underflows) == (2, 2)


def test_report_json_schema(tmp_path):
    p = Pipeline([Delay(16000, 160, 1, delay_samples=16)], name="headset")
    run_array(p, signals.white(16000, 1))
    path = tmp_path / "r.json"
    write_reports_json(path, [p.report()])
    data = json.loads(path.read_text())
    assert data["sample_rate"] == 16000 and data["block_size"] == 160
    h = data["pipelines"]["headset"]
    for key in (
        "p50_us",
        "p95_us",
        "p99_us",
        "p999_us",
        "max_us",
        "deadline_misses",
        "realtime_factor",
        "algorithmic_latency_ms",
        "total_latency_ms",
        "stages",
    ):
        assert key in h
    assert h["algorithmic_latency_ms"] == pytest.approx(1.0)
    assert "numpy" in data["machine"]


def test_block_times_are_oldest_first_after_wrapping():
    m = LatencyMeter(48000, 480, capacity=8)
    for i in range(20):
        m.record(1000 * i)
    np.testing.assert_array_equal(m.block_times_us(), np.arange(12, 20, dtype=np.float64))
