"""Sound level meter: Leq, time weighting (IEC 61672-1 tone bursts, decay), L10/L90, mic cal."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from audio_engine.dsp.levels import (
    LevelMeter,
    calibrate_microphone,
    leq_db,
    percentile_levels_db,
    time_weighted_level_db,
)
from audio_engine.errors import CalibrationError, ConfigError
from tests import signals

SAMPLE_RATE = 48000


def _stream(meter: LevelMeter, x: np.ndarray, block_size: int) -> None:
    out = np.empty_like(x)
    for start in range(0, len(x), block_size):
        meter.process(x[start : start + block_size], out[start : start + block_size])
    np.testing.assert_array_equal(out, x)  # a meter is a transparent tap


def test_leq_of_a_sine_and_the_spl_offset():
    x = signals.sine(1000.0, SAMPLE_RATE, 2.0, amplitude=1.0)
    assert leq_db(x, SAMPLE_RATE, "A") == pytest.approx(-3.0103, abs=0.01)
    assert leq_db(x, SAMPLE_RATE, "A", offset_db=97.0) == pytest.approx(93.99, abs=0.01)
    # A-weighting at 100 Hz is -19.1 dB (IEC 61672-1 Table 3).
    low = signals.sine(100.0, SAMPLE_RATE, 2.0, amplitude=1.0)
    assert leq_db(low, SAMPLE_RATE, "A") - leq_db(low, SAMPLE_RATE, "Z") == pytest.approx(
        -19.1, abs=0.15
    )


@pytest.mark.parametrize("burst_ms", [1000, 200, 50, 10, 2])
def test_fast_tone_burst_response(burst_ms):
    """IEC 61672-1:2013 5.9.3: the LAFmax of a 4 kHz burst of duration T_b, relative to the
    steady level, is 10 lg(1 - exp(-T_b / tau)); class 1 allows +-0.5 dB down to 10 ms and
    +1/-1.5 dB below (Table 4)."""
    tone = signals.sine(4000.0, SAMPLE_RATE, 2.0, amplitude=0.5)
    steady = LevelMeter(SAMPLE_RATE, 480, weighting="A", time_weighting="F")
    _stream(steady, tone[:, None], 480)
    burst = np.zeros(2 * SAMPLE_RATE, np.float32)
    n = int(SAMPLE_RATE * burst_ms / 1000)
    burst[1000 : 1000 + n] = tone[1000 : 1000 + n]
    meter = LevelMeter(SAMPLE_RATE, 480, weighting="A", time_weighting="F")
    _stream(meter, burst[:, None], 480)
    expected = 10.0 * math.log10(1.0 - math.exp(-burst_ms / 1000 / 0.125))
    tolerance = (0.5, 0.5) if burst_ms >= 10 else (1.0, 1.5)
    got = meter.max_db - steady.level_db
    assert -tolerance[1] <= got - expected <= tolerance[0], (got, expected)


@pytest.mark.parametrize(("time_weighting", "decay_db_per_s"), [("F", 34.7), ("S", 4.3)])
def test_decay_rate(time_weighting, decay_db_per_s):
    """After a tone stops the level falls at 10 lg(e) / tau dB/s (IEC 61672-1 5.8.2)."""
    x = np.zeros(3 * SAMPLE_RATE, np.float32)
    x[: 2 * SAMPLE_RATE] = signals.sine(1000.0, SAMPLE_RATE, 2.0)
    laf = time_weighted_level_db(x, SAMPLE_RATE, "A", time_weighting)  # every 10 ms
    a, b = laf[210], laf[260]  # 0.1 s .. 0.6 s after the stop
    assert (a - b) / 0.5 == pytest.approx(decay_db_per_s, abs=0.2)


def _two_level_noise() -> np.ndarray:
    """4 s quiet, 1 s loud (+20 dB) repeated: loud 20 % of the time, long enough that the top
    10 % of L_F lies in the loud plateau, not its 0.125 s rise."""
    quiet = signals.white(4 * SAMPLE_RATE, offset=21, rms=0.01)[:, 0]
    loud = signals.white(SAMPLE_RATE, offset=22, rms=0.1)[:, 0]
    return np.concatenate([quiet, loud] * 4)


def test_l10_and_l90_of_a_two_level_signal():
    x = _two_level_noise()
    quiet_db = leq_db(x[: 4 * SAMPLE_RATE], SAMPLE_RATE)
    loud_db = leq_db(x[4 * SAMPLE_RATE : 5 * SAMPLE_RATE], SAMPLE_RATE)
    stats = percentile_levels_db(x, SAMPLE_RATE, (10.0, 90.0))
    assert stats[90.0] == pytest.approx(quiet_db, abs=0.5)
    assert stats[10.0] == pytest.approx(loud_db, abs=0.5)


def test_streaming_meter_matches_offline():
    x = _two_level_noise()
    meter = LevelMeter(SAMPLE_RATE, 1024, offset_db=90.0)
    _stream(meter, x[:, None], 1000)
    assert meter.leq_db == pytest.approx(leq_db(x, SAMPLE_RATE, offset_db=90.0), abs=0.01)
    offline = percentile_levels_db(x, SAMPLE_RATE, (10.0, 90.0), offset_db=90.0, settle_s=0.0)
    assert meter.percentile_db(10) == pytest.approx(offline[10.0], abs=0.2)
    assert meter.percentile_db(90) == pytest.approx(offline[90.0], abs=0.2)
    laf = time_weighted_level_db(x, SAMPLE_RATE, offset_db=90.0)
    assert meter.level_db == pytest.approx(laf[-1], abs=0.01)
    assert meter.max_db == pytest.approx(np.max(laf), abs=0.2)
    meter.reset()
    assert meter.leq_db == -300.0 and meter.percentile_db(50) == -300.0


def test_meter_allocates_nothing_and_survives_bad_samples():
    meter = LevelMeter(SAMPLE_RATE, 512)
    x = signals.white(512, offset=23)
    y = np.empty_like(x)
    meter.process(x, y)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(50):
            meter.process(x, y)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 1024, grown
    x[3, 0], x[4, 0] = np.nan, np.inf
    meter.process(x, y)
    assert all(np.isfinite([meter.leq_db, meter.level_db, meter.max_db]))


def _calibrator(level_dbfs: float, seconds: float = 3.0, noise_rms: float = 1e-4) -> np.ndarray:
    amplitude = math.sqrt(2.0) * 10.0 ** (level_dbfs / 20.0)
    tone = signals.sine(1000.0, SAMPLE_RATE, seconds, amplitude=amplitude)
    return tone + signals.white(len(tone), offset=24, rms=noise_rms)[:, 0]


def test_calibrator_tone_gives_the_spl_offset():
    cal = calibrate_microphone(_calibrator(-30.0), SAMPLE_RATE)
    assert cal.spl_offset_db == pytest.approx(124.0, abs=0.05)
    assert cal.sensitivity_dbfs_per_pa == pytest.approx(93.98 - 124.0, abs=0.05)
    # The same mic then reads a 94 dB tone as 94 dB, and a quieter one 20 dB lower.
    assert leq_db(_calibrator(-50.0), SAMPLE_RATE, offset_db=cal.spl_offset_db) == (
        pytest.approx(74.0, abs=0.05)
    )
    loud = calibrate_microphone(_calibrator(-30.0), SAMPLE_RATE, calibrator_db_spl=114.0)
    assert loud.spl_offset_db == pytest.approx(144.0, abs=0.05)


def test_bad_calibrator_recordings_are_refused():
    with pytest.raises(CalibrationError, match=r"no dominant 1 kHz calibrator tone"):
        calibrate_microphone(signals.white(3 * SAMPLE_RATE, offset=25)[:, 0], SAMPLE_RATE)
    with pytest.raises(CalibrationError, match=r"calibrator recording is 1.00 s; at least 1.5"):
        calibrate_microphone(_calibrator(-30.0, seconds=1.0), SAMPLE_RATE)
    with pytest.raises(CalibrationError, match=r"clips \(peak 1.0"):
        calibrate_microphone(np.clip(_calibrator(0.0), -1, 1), SAMPLE_RATE)
    unsteady = _calibrator(-30.0)
    unsteady[2 * SAMPLE_RATE :] *= 0.5
    with pytest.raises(CalibrationError, match=r"calibrator level varies by 6.0\d dB"):
        calibrate_microphone(unsteady, SAMPLE_RATE)


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"time_weighting='I' is not one of \['F', 'S'\]"):
        LevelMeter(SAMPLE_RATE, 64, time_weighting="I")
    with pytest.raises(ConfigError, match=r"channels=2: a LevelMeter measures 1 channel"):
        LevelMeter(SAMPLE_RATE, 64, channels=2)
    with pytest.raises(ConfigError, match=r"calibrator_db_spl=200 is not in 60..140"):
        calibrate_microphone(np.zeros(100), SAMPLE_RATE, calibrator_db_spl=200)
    with pytest.raises(ConfigError, match=r"percent=150 is not in 0..100"):
        LevelMeter(SAMPLE_RATE, 64).percentile_db(150)
