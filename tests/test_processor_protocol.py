"""The processor protocol and the pipeline: block-size invariance, latency accounting, checks."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp.base import Delay, Gain, Processor, check_block_size, check_sample_rate
from audio_engine.engine import run_array
from audio_engine.errors import ConfigError
from audio_engine.pipeline import Pipeline
from tests import signals

BLOCK_SIZES = (1, 63, 64, 65, 480, 4097)


def chain(block_size: int, channels: int = 2) -> Pipeline:
    return Pipeline(
        [
            Gain(48000, block_size, channels, gain_db=-6.0),
            Delay(48000, block_size, channels, delay_samples=37),
            Gain(48000, block_size, channels, gain_db=3.0),
        ],
        name="test",
    )


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_block_size_sweep_matches_one_call(block_size):
    x = signals.white(20000, channels=2, rms=0.2)
    one_call = np.zeros_like(x)
    reference = chain(len(x))
    reference.process(x, one_call)
    streamed = run_array(chain(block_size), x)
    np.testing.assert_array_equal(streamed, one_call)


def test_pipeline_sums_latency_and_delay_is_measured_by_xcorr():
    p = chain(480, channels=1)
    assert p.latency_samples == 37
    x = signals.white(48000, channels=1, rms=0.2)
    y = run_array(p, x)
    lag = signals.delay_by_xcorr(x[:, 0], y[:, 0], max_lag=200)
    assert lag == p.latency_samples


def test_compensated_run_is_aligned_and_same_length():
    x = signals.white(10000, channels=1, rms=0.2)
    y = run_array(chain(256, channels=1), x, compensate_latency=True)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x * 10 ** (-3.0 / 20.0), atol=1e-6)


def test_every_block_is_timed_per_stage():
    p = chain(480, channels=1)
    run_array(p, signals.white(48000, channels=1))
    report = p.report()
    assert report.blocks == 100
    assert [s.name for s in report.stages] == ["Gain", "Delay", "Gain"]
    assert report.algorithmic_latency_ms == pytest.approx(1e3 * 37 / 48000)
    assert report.total_latency_ms == pytest.approx(report.algorithmic_latency_ms + 10.0)
    assert 0 < report.p50_us <= report.p99_us <= report.max_us


def test_process_allocates_nothing_after_warm_up():
    import tracemalloc

    p = chain(4096, channels=2)
    x = signals.white(4096, channels=2)
    out = np.zeros_like(x)
    p.process(x, out)  # warm-up
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(50):
        p.process(x, out)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    # A float32 block here is 32 KiB; anything near that means a buffer was allocated per call.
    assert grown < 2048, f"process() left {grown} bytes allocated"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 12345}, r"sample_rate=12345 is not supported; allowed: \[8000, 16000"),
        ({"sample_rate": "48k"}, r"sample_rate='48k' is not a number"),
        ({"block_size": 0}, r"block_size=0 is not an integer in 1\.\.65536"),
        ({"block_size": 2.5}, r"block_size=2\.5 is not an integer"),
        ({"channels": 0}, r"channels=0 is not an integer in 1\.\.64"),
    ],
)
def test_bad_construction_names_the_value(kwargs, match):
    args = {"sample_rate": 48000, "block_size": 64, "channels": 1} | kwargs
    with pytest.raises(ConfigError, match=match):
        Gain(**args)


def test_check_helpers_accept_valid_values():
    assert check_sample_rate(44100) == 44100
    assert check_block_size(np.int64(480)) == 480


def test_pipeline_rejects_mismatched_stages():
    with pytest.raises(ConfigError, match=r"stage 1 \(Gain\) is built for 16000 Hz"):
        Pipeline([Gain(48000, 64, 1), Gain(16000, 64, 1)])
    with pytest.raises(
        ConfigError, match=r"stage 1 \(Gain\) takes 2 channels but stage 0 \(Gain\) gives 1"
    ):
        Pipeline([Gain(48000, 64, 1), Gain(48000, 64, 2)])
    with pytest.raises(ConfigError, match="at least one stage"):
        Pipeline([])


def test_check_io_names_dtype_and_shape():
    g = Gain(48000, 64, 2)
    good = np.zeros((64, 2), np.float32)
    g.check_io(good, good)
    with pytest.raises(ConfigError, match=r"block\.dtype=float64 is not float32"):
        g.check_io(np.zeros((64, 2)), good)
    with pytest.raises(ConfigError, match=r"out\.shape=\(64, 1\) is not \(frames, 2\)"):
        g.check_io(good, np.zeros((64, 1), np.float32))
    with pytest.raises(ConfigError, match=r"block has 65 frames; allowed 1\.\.block_size=64"):
        g.check_io(np.zeros((65, 2), np.float32), np.zeros((65, 2), np.float32))


def test_reset_clears_state():
    d = Delay(48000, 64, 1, delay_samples=10)
    x = np.ones((64, 1), np.float32)
    out = np.zeros_like(x)
    d.process(x, out)
    d.reset()
    d.process(np.zeros_like(x), out)
    assert not out.any()


def test_base_processor_is_abstract():
    class Nothing(Processor):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Nothing(48000, 64, 1)
