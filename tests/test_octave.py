"""One-third-octave filterbank against the IEC 61260-1:2014 class 1 mask, streaming and offline."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal

from audio_engine.dsp.bands import G, band_edges_hz, band_index, exact_centre_hz
from audio_engine.dsp.octave import (
    OctaveFilterBank,
    available_bands,
    filterbank_sos,
    normalised_frequency,
    relative_attenuation_db,
    third_octave_levels_db,
)
from audio_engine.errors import ConfigError
from tests import signals

# IEC 61260-1:2014 class 1 acceptance limits for relative attenuation, transcribed from
# /work/shared/standards/standards_tables.json (iec61260_1_2014): breakpoint exponent e ->
# (min, max) in dB inside the band, min outside it.
PASSBAND = [(0.0, -0.4, 0.4), (0.125, -0.4, 0.5), (0.25, -0.4, 0.7), (0.375, -0.4, 1.4),
            (0.5, -0.4, 5.3)]  # fmt: skip
STOPBAND = [(0.5, 1.2), (1.0, 16.6), (2.0, 40.5), (3.0, 60.0), (4.0, 70.0)]
# Table F.1 (b = 3): upper normalised breakpoint frequencies.
TABLE_F1_UPPER = {0.125: 1.02667, 0.25: 1.05575, 0.375: 1.08746, 0.5: 1.12202, 1.0: 1.29437,
                  2.0: 1.88173, 3.0: 3.05365, 4.0: 5.39195}  # fmt: skip


def test_breakpoint_formula_reproduces_table_f1():
    for e, omega in TABLE_F1_UPPER.items():
        assert normalised_frequency(e) == pytest.approx(omega, abs=6e-6)


def _mask_margin_db(omega: np.ndarray, attenuation_db: np.ndarray) -> float:
    """Smallest distance (dB) to the class 1 mask; negative means a violation.

    Between breakpoints the limits are interpolated linearly over log frequency, which is
    stricter than holding each breakpoint's value up to the next one.
    """
    o = np.maximum(omega, 1.0 / omega)
    log_o = np.log(o)
    pass_o = np.log([normalised_frequency(e) for e, _, _ in PASSBAND])
    stop_o = np.log([normalised_frequency(e) for e, _ in STOPBAND])
    inside = log_o <= pass_o[-1]
    upper = np.interp(log_o, pass_o, [hi for _, _, hi in PASSBAND])
    lower = np.interp(log_o, stop_o, [lo for _, lo in STOPBAND])  # 70 dB beyond e = 4
    margins = [
        np.min(upper[inside] - attenuation_db[inside]),
        np.min(attenuation_db[inside] + 0.4),
        np.min(attenuation_db[~inside] - lower[~inside]),
    ]
    return float(min(margins))


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_every_band_meets_class_1_mask(sample_rate):
    nominal = available_bands(sample_rate, 10, 20000)
    assert nominal[0] == 10 and nominal[-1] == (20000 if sample_rate == 48000 else 16000)
    omega = np.geomspace(1 / 6, 6, 6001)
    for f in nominal:
        fm = float(exact_centre_hz(band_index(f)))
        below = fm * omega < 0.5 * sample_rate
        attenuation = relative_attenuation_db(sample_rate, f, fm * omega[below])
        margin = _mask_margin_db(omega[below], attenuation)
        assert margin > 0.3, (f, margin)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_effective_bandwidth_within_class_1(sample_rate):
    """IEC 61260-1:2014 5.12: normalised effective bandwidth deviation within +-0.4 dB."""
    for f in available_bands(sample_rate, 10, 20000):
        x = band_index(f)
        fm = float(exact_centre_hz(x))
        grid_hz = np.linspace(fm / 40, min(fm * 40, 0.5 * sample_rate), 400001)
        power = 10.0 ** (-relative_attenuation_db(sample_rate, f, grid_hz) / 10.0)
        effective_hz = np.trapezoid(power, grid_hz)
        lower, upper = band_edges_hz(x)
        deviation_db = 10.0 * np.log10(effective_hz / float(upper - lower))
        assert -0.4 <= deviation_db <= 0.4, (f, deviation_db)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_measured_tones_meet_class_1(sample_rate):
    """Physics: steady-state RMS of sines at the breakpoints through the streaming bank."""
    seconds, block_size = 1.0, 1024
    top = 16000 if sample_rate == 44100 else 20000
    for nominal in (100, 1000, 8000, top):
        bank = OctaveFilterBank(sample_rate, block_size, 1, low_hz=nominal, high_hz=nominal)
        fm = float(exact_centre_hz(band_index(nominal)))
        cases = [(1.0, -0.4, 0.4)]
        for e, lo, hi in PASSBAND[1:]:
            omega = normalised_frequency(e)
            cases += [(omega, lo, hi), (1.0 / omega, lo, hi)]
        for e, lo in STOPBAND[1:3]:
            omega = normalised_frequency(e)
            cases += [(omega, lo, np.inf), (1.0 / omega, lo, np.inf)]
        for omega, lo, hi in cases:
            if fm * omega >= 0.45 * sample_rate:
                continue
            x = signals.sine(fm * omega, sample_rate, seconds)[:, None]
            y = np.empty_like(x)
            bank.reset()
            for start in range(0, len(x), block_size):
                bank.process(x[start : start + block_size], y[start : start + block_size])
            tail = slice(len(x) // 2, None)
            attenuation = signals.rms_db(x[tail]) - signals.rms_db(y[tail])
            assert lo - 0.05 <= attenuation <= hi, (nominal, omega, attenuation)


def test_white_noise_band_levels_follow_bandwidth():
    """White noise has equal power per Hz, so band level - 10 log10(bandwidth) is flat, and the
    band powers add up to the in-range power."""
    sample_rate = 48000
    x = signals.white(10 * sample_rate, offset=11, rms=0.1)[:, 0]
    nominal, level = third_octave_levels_db(x, sample_rate, 100, 10000, settle_s=0.2)
    lower, upper = band_edges_hz(np.array([band_index(f) for f in nominal]))
    density_db = level - 10.0 * np.log10(upper - lower)
    expected_db = 10.0 * np.log10(0.1**2 / (0.5 * sample_rate))
    # 10 s of noise: the 100 Hz band (23 Hz wide) averages ~230 independent values, so its
    # level scatters by ~0.3 dB; higher bands far less.
    np.testing.assert_allclose(density_db, expected_db, atol=0.45)
    total = 10.0 * np.log10(np.sum(10.0 ** (level / 10.0)))
    in_range = 10.0 * np.log10(0.1**2 * (upper[-1] - lower[0]) / (0.5 * sample_rate))
    assert total == pytest.approx(in_range, abs=0.25)


def test_full_scale_sine_reads_minus_3_db_and_offset_adds():
    sample_rate = 44100
    x = signals.sine(1000.0, sample_rate, 1.0, amplitude=1.0)
    nominal, level = third_octave_levels_db(x, sample_rate, 500, 2000, offset_db=100.0)
    k = list(nominal).index(1000.0)
    assert level[k] == pytest.approx(100.0 - 3.0103, abs=0.02)
    assert np.all(np.delete(level, k) < level[k] - 15.0)


def test_a_weighting_before_the_bands():
    sample_rate = 48000
    x = signals.sine(100.0, sample_rate, 2.0)
    _, flat = third_octave_levels_db(x, sample_rate, 100, 100, settle_s=0.5)
    _, weighted = third_octave_levels_db(x, sample_rate, 100, 100, weighting="A", settle_s=0.5)
    assert weighted[0] - flat[0] == pytest.approx(-19.1, abs=0.3)  # IEC 61672-1 Table 3


@pytest.mark.parametrize("block_size", [1, 64, 65, 8192, 8193])
def test_streaming_matches_offline_for_any_block_size(block_size):
    sample_rate = 48000
    x = signals.white(20000, channels=2, offset=12)
    bank = OctaveFilterBank(sample_rate, block_size, 2, low_hz=100, high_hz=8000)
    y = np.empty((len(x), bank.output_channels), np.float32)
    for start in range(0, len(x), block_size):
        bank.process(x[start : start + block_size], y[start : start + block_size])
    _, sos = filterbank_sos(sample_rate, 100, 8000)
    for c in range(2):
        for k in range(bank.bands):
            reference = scipy.signal.sosfilt(sos[k], x[:, c].astype(np.float64))
            np.testing.assert_allclose(y[:, c * bank.bands + k], reference, atol=2e-7)


def test_process_allocates_nothing_and_survives_bad_samples():
    bank = OctaveFilterBank(44100, 256, 1, low_hz=100, high_hz=8000)
    x = signals.white(256, offset=13)
    y = np.empty((256, bank.output_channels), np.float32)
    bank.process(x, y)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(20):
            bank.process(x, y)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 1024, grown
    x[5, 0], x[6, 0], x[7, 0] = np.nan, -np.inf, 1e30
    bank.process(x, y)
    assert np.all(np.isfinite(y))


def test_bands_above_nyquist_are_dropped():
    assert available_bands(16000, 100, 8000)[-1] == 6300
    assert available_bands(44100, 100, 20000)[-1] == 16000
    assert G == pytest.approx(10**0.3)


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"nominal_hz=1001 is not a one-third-octave"):
        third_octave_levels_db(np.zeros(100), 48000, 1001, 8000)
    with pytest.raises(ConfigError, match=r"low_hz=8000 is above high_hz=100"):
        OctaveFilterBank(48000, 64, 1, low_hz=8000, high_hz=100)
    with pytest.raises(ConfigError, match=r"settle_s=2.0 leaves nothing of a 1.000 s signal"):
        third_octave_levels_db(np.zeros(48000), 48000, settle_s=2.0)
    with pytest.raises(ConfigError, match=r"signal contains NaN or Inf"):
        third_octave_levels_db(np.full(100, np.nan), 48000)
    with pytest.raises(ConfigError, match=r"no band from 12500 to 20000 Hz fits below Nyquist"):
        available_bands(16000, 12500, 20000)
