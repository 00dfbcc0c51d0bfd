"""Closed-loop auto-calibration on simulated rooms: convergence, ground truth, background."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.autocal import (
    AutoCalibrator,
    MaskingRenderer,
    ZoneTarget,
    power_mean_db,
    power_subtract_db,
)
from audio_engine.dsp.levels import calibrate_microphone
from audio_engine.errors import CalibrationError
from audio_engine.office.room import SimulatedOffice

# 24 kHz keeps the tests quick; the target curve (100 Hz - 8 kHz) fits below Nyquist.
SAMPLE_RATE = 24000
BANDS_HZ = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000,
                     2500, 3150, 4000, 5000, 6300, 8000], dtype=np.float64)  # fmt: skip
# The example site's default target shape (calibration/masking_target_default.csv).
SHAPE_DB = np.array([-4.0, -2.5, -1.0, 0, 0, 0, 0, 0, -1.7, -3.3, -5.0, -6.7, -8.3, -10.0,
                     -11.7, -13.3, -15.0, -16.7, -18.3, -20.0])  # fmt: skip


def _setup(room: str, zones: int, seed: int, prompts: list[str] | None = None):
    office = SimulatedOffice(room, zones=zones, positions=2, sample_rate=SAMPLE_RATE, seed=seed)
    mic = calibrate_microphone(office.calibrator_recording(), SAMPLE_RATE)
    render = MaskingRenderer(SAMPLE_RATE, BANDS_HZ, SHAPE_DB, zones, seed=seed)
    calibrator = AutoCalibrator(
        SAMPLE_RATE, BANDS_HZ, SHAPE_DB, render, office.record, mic.spl_offset_db,
        positions=2, measure_s=6.0, prompt=(prompts.append if prompts is not None else None),
    )  # fmt: skip
    return office, render, calibrator


def _target(name: str, level_dba: float = 42.0) -> ZoneTarget:
    # Uncalibrated start: the site default offset (90 dB) and a flat EQ.
    return ZoneTarget(name, level_dba, 48.0, 90.0, (0.0,) * len(BANDS_HZ))


def _truth(office, render, calibrator, zone, result):
    """Ground truth at the calibrated setting: the zone alone, no background, no mic."""
    signal = render(zone, result.eq_db, result.target_dba - result.spl_offset_db, 8.0)
    bands = power_mean_db(
        [office.true_band_levels_db(zone, p, signal, 100, 8000) for p in range(2)]
    )
    laeq = float(power_mean_db([office.true_laeq_db(zone, p, signal) for p in range(2)]))
    return bands - result.target_db, laeq


@pytest.mark.parametrize(
    ("room", "zones", "seed"),
    [("open-plan", 1, 1), ("meeting-room", 1, 2), ("hard", 2, 3)],
)
def test_converges_to_target_within_three_iterations(room, zones, seed):
    office, render, calibrator = _setup(room, zones, seed)
    for zone in range(zones):
        result = calibrator.calibrate_zone(zone, _target(f"zone {zone + 1}"))
        assert result.passed, result.reasons
        assert result.iterations <= 3, result.max_deviation_history_db
        # What the loop measured: every band within ±1 dB of the target.
        assert np.nanmax(np.abs(result.deviation_db)) <= 1.0
        # What is really there (the simulation's ground truth): 6 s recordings scatter by
        # ~0.4 dB in the 100 Hz band (4.34 / sqrt(23 Hz * 6 s)), so allow 1.5 dB per band,
        # and the A-weighted level within 1 dB of 42 dBA.
        deviation, laeq = _truth(office, render, calibrator, zone, result)
        assert np.max(np.abs(deviation)) <= 1.5, np.round(deviation, 2)
        assert laeq == pytest.approx(42.0, abs=1.0)
        assert len(result.privacy) == 2 and 0.0 <= result.privacy[0]["sii"] <= 1.0
        if room == "hard":
            # Background and the neighbouring zone would fool a meter that trusted the total:
            # masking + background reads well above the target, and at every position some
            # band is less than 10 dB above its background (the total overstates the masking
            # there by more than 0.4 dB), yet the truth above is on target.
            assert float(power_mean_db(result.final_total_dba)) - 42.0 > 2.0
            for m in result.measurements:
                assert np.nanmin(m.total_db - m.background_db) < 10.0


def test_prompts_the_microphone_moves():
    prompts: list[str] = []
    _, _, calibrator = _setup("open-plan", 1, 4, prompts)
    calibrator.calibrate_zone(0, _target("North desks"))
    assert prompts[0].startswith("place the microphone at position 1 of zone 'North desks'")
    assert any("position 2" in p for p in prompts)
    # The microphone only moves when it has to: never twice in a row to the same position.
    assert all(a != b for a, b in zip(prompts, prompts[1:], strict=False))


def test_a_silent_zone_is_reported_not_calibrated():
    office = SimulatedOffice("open-plan", 1, 1, SAMPLE_RATE, seed=5)
    mic = calibrate_microphone(office.calibrator_recording(), SAMPLE_RATE)

    def dead_amplifier(zone, eq_db, output_dbfs, seconds):
        return np.zeros(int(seconds * SAMPLE_RATE), np.float32)

    calibrator = AutoCalibrator(
        SAMPLE_RATE, BANDS_HZ, SHAPE_DB, dead_amplifier, office.record, mic.spl_offset_db,
        positions=1, measure_s=2.0,
    )  # fmt: skip
    with pytest.raises(CalibrationError, match=r"zone 'x': its masking cannot be heard above"):
        calibrator.calibrate_zone(0, _target("x"))


def test_power_subtraction():
    np.testing.assert_allclose(power_subtract_db(np.array([53.0103]), np.array([50.0])), [50.0],
                               atol=1e-3)  # fmt: skip
    assert np.isnan(power_subtract_db(np.array([52.0]), np.array([50.0]))[0])
    assert float(power_mean_db([40.0, 40.0, np.nan])) == pytest.approx(40.0)


@pytest.mark.parametrize("room", ["open-plan", "meeting-room", "hard"])
def test_calibrator_recovers_the_simulated_microphone(room):
    office = SimulatedOffice(room, 1, 1, SAMPLE_RATE, seed=6)
    mic = calibrate_microphone(office.calibrator_recording(), SAMPLE_RATE)
    assert mic.spl_offset_db == pytest.approx(office.room.mic_spl_offset_db, abs=0.05)


def test_a_neighbour_switching_on_mid_measurement_is_measured_again():
    office = SimulatedOffice("open-plan", 2, 1, SAMPLE_RATE, seed=8)
    mic = calibrate_microphone(office.calibrator_recording(), SAMPLE_RATE)
    render = MaskingRenderer(SAMPLE_RATE, BANDS_HZ, SHAPE_DB, 2, seed=8)
    calls = {"n": 0}

    def record(zone, position, outputs, seconds):
        recording = office.record(zone, position, outputs, seconds)
        calls["n"] += 1
        if calls["n"] == 4:  # the first zone-playing recording after the probe
            # The neighbouring zone starts halfway through at its full level: +6 dB broadband.
            step = np.zeros_like(recording)
            half = len(recording) // 2
            noise = np.random.default_rng(9).standard_normal(len(recording) - half)
            step[half:] = 2.0 * np.std(recording) * noise
            recording = recording + step
        return recording

    progress: list[str] = []
    calibrator = AutoCalibrator(
        SAMPLE_RATE, BANDS_HZ, SHAPE_DB, render, record, mic.spl_offset_db, positions=1,
        measure_s=6.0, progress=progress.append,
    )  # fmt: skip
    result = calibrator.calibrate_zone(0, _target("Desks"))
    assert calibrator.retakes == 1
    assert any("the sound changed by" in p and "measuring again" in p for p in progress)
    assert result.passed, result.reasons
    signal = render(0, result.eq_db, 42.0 - result.spl_offset_db, 8.0)
    assert office.true_laeq_db(0, 0, signal) == pytest.approx(42.0, abs=1.0)
