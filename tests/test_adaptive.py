"""Adaptive masking level on simulated office days, faster than real time.

Days are simulated at control rate (a 10 s step) with band-free A-weighted levels: the true
ambient at each microphone follows a scripted day with seeded fluctuations and transient bursts,
and each microphone hears that ambient plus the masking the rule itself chose (through the
site's coupling), exactly the loop the live system closes through the room.
"""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp.adaptive import (
    AdaptiveLevelController,
    AdaptiveRule,
    AmbientEstimator,
    MicLevelTap,
    SiteAdaptive,
    power_sum_db,
)
from audio_engine.errors import ConfigError
from audio_engine.pipelines import EXAMPLE_SITE
from audio_engine.site import load_site_config
from tests import signals

STEP_S = 10.0
SITE = load_site_config(EXAMPLE_SITE)

#: (hour, ambient dBA) key points of the scripted days; linear in between.
QUIET_MORNING = [(6, 33), (8, 35), (8.5, 36), (9, 40)]
MONDAY_RUSH = [(9.25, 52), (11.5, 52), (12, 44), (13, 44), (13.5, 47), (16.5, 47)]
EVENING = [(17, 45), (19, 36), (22, 33)]
DAY = QUIET_MORNING + MONDAY_RUSH + EVENING


def scripted_ambient(points, hours: np.ndarray, offset: int = 0) -> np.ndarray:
    """Ambient dBA at each time: the key points, ±1.5 dB seeded fluctuation, and 15-30 s
    bursts +8..15 dB (a laugh, a door, a trolley) about twice an hour."""
    h, level = np.array(points, dtype=float).T
    base = np.interp(hours, h, level)
    g = signals.rng(300 + offset)
    base += g.normal(0.0, 1.5, hours.shape)
    bursts = g.random(hours.shape) < 2.0 * STEP_S / 3600.0
    for i in np.flatnonzero(bursts):
        base[i : i + g.integers(2, 4)] += g.uniform(8.0, 15.0)
    return base


def rules_from_site(site=SITE, **changes):
    a = site.adaptive
    settings = dict(
        rise_db_per_min=a.rise_db_per_min,
        fall_db_per_min=a.fall_db_per_min,
        hysteresis_db=a.hysteresis_db,
        slope_db_per_db=a.slope_db_per_db,
        reference_ambient_dba=a.reference_ambient_dba,
        averaging_s=a.averaging_s,
    )
    settings.update(changes)
    return [
        AdaptiveRule(level_dba=z.level_dba, min_dba=z.min_dba, max_dba=z.max_dba, **settings)
        for z in site.zones
    ]


def simulate_day(points, hours_from=6.0, hours_to=22.0, coupling_db=None, **changes):
    """Run the example site's adaptive rule over a scripted day; return times (h), the true
    ambient (steps, mics), output levels, continuous levels and ambient estimates (steps, zones)."""
    hours = np.arange(hours_from, hours_to, STEP_S / 3600.0)
    ambient = np.stack([scripted_ambient(points, hours, m) - 2.0 * m for m in range(2)], axis=1)
    coupling = (
        np.array([z.mic_coupling_db for z in SITE.zones]) if coupling_db is None else coupling_db
    )
    site = SiteAdaptive(rules_from_site(**changes), [z.microphones for z in SITE.zones], coupling)
    levels = np.array([z.level_dba for z in SITE.zones], dtype=float)
    out = np.empty((hours.shape[0], len(SITE.zones)))
    continuous = np.empty_like(out)
    estimate = np.empty_like(out)
    # The microphones hear the room plus the masking actually playing (the true coupling).
    true_coupling = np.array([z.mic_coupling_db for z in SITE.zones])
    for i in range(hours.shape[0]):
        own = power_sum_db(levels[:, None] + true_coupling, axis=0)
        measured = power_sum_db(np.stack([ambient[i], own]), axis=0)
        levels = site.update(measured, levels, STEP_S)
        out[i] = levels
        continuous[i] = [c.level_dba for c in site.controllers]
        estimate[i] = [e.estimate_db for e in site.estimators]
    return hours, ambient, out, continuous, estimate


@pytest.fixture(scope="module")
def monday():
    return simulate_day(DAY)


def test_levels_stay_in_each_zones_range_and_steps(monday):
    _, _, out, _, _ = monday
    for z, zone in enumerate(SITE.zones):
        assert out[:, z].min() >= zone.min_dba and out[:, z].max() <= zone.max_dba
    np.testing.assert_array_equal(out * 2, np.round(out * 2))  # 0.5 dB steps


def test_rate_is_bounded_and_falls_slower_than_it_rises(monday):
    _, _, _, continuous, _ = monday
    per_min = np.diff(continuous, axis=0) * 60.0 / STEP_S
    assert per_min.max() <= 0.5 + 1e-9  # rise_db_per_min
    assert per_min.min() >= -0.25 - 1e-9  # fall_db_per_min
    # Both limits are actually reached on this day, so the asymmetry is exercised.
    assert per_min.max() == pytest.approx(0.5) and per_min.min() == pytest.approx(-0.25)


def test_quiet_morning_monday_rush_and_evening(monday):
    hours, _, out, _, _ = monday
    zone = 0  # North desks: 40..46 dBA around 42
    at = {h: out[np.argmin(np.abs(hours - h)), zone] for h in (8.0, 11.25, 12.75, 21.5)}
    assert at[8.0] == 40.0  # quiet morning: at the zone's minimum
    # The rush (52 dBA ambient) asks for 42 + 0.5 * (52 - 45) = 45.5 dBA.
    assert at[11.25] == pytest.approx(45.5, abs=0.5)
    assert at[12.75] < at[11.25] - 2.0  # lunch: back down, slowly
    # Evening: back to the minimum, within the hysteresis (the goal moves only by > 1 dB).
    assert at[21.5] <= 40.0 + SITE.adaptive.hysteresis_db


def test_ambient_estimate_excludes_the_masking(monday):
    """In steady periods the estimate is the room's level, not room + masking."""
    hours, ambient, _, _, estimate = monday
    steady = (hours > 10.0) & (hours < 11.4)
    # Zone 0 listens to microphone 0; compare with the 2-minute dB mean of the true ambient.
    truth = np.mean(ambient[steady, 0])
    assert np.mean(estimate[steady, 0]) == pytest.approx(truth, abs=1.0)


def test_without_exclusion_the_masking_would_hear_itself():
    """Control: telling the rule the masking does not reach the microphones (coupling -300 dB)
    biases the estimate upwards and the level with it, which is what step 2 prevents."""
    points = [(6, 42), (22, 42)]
    honest = simulate_day(points, 6.0, 10.0, hysteresis_db=0.0)
    blind = simulate_day(points, 6.0, 10.0, coupling_db=np.full((4, 2), -300.0), hysteresis_db=0.0)
    zone = 0
    assert np.mean(honest[4][-100:, zone]) == pytest.approx(np.mean(honest[1][:, 0]), abs=1.0)
    assert np.mean(blind[4][-100:, zone]) > np.mean(honest[4][-100:, zone]) + 1.0
    assert blind[2][-1, zone] > honest[2][-1, zone]


def test_hysteresis_ignores_small_fluctuations():
    rule = AdaptiveRule(level_dba=43.0, min_dba=40.0, max_dba=46.0, reference_ambient_dba=45.0)
    ctl = AdaptiveLevelController(rule)
    t = np.arange(0, 4 * 3600, STEP_S)
    ambient = 45.0 + 1.6 * np.sin(2 * np.pi * t / 1200.0)  # desired level 43 ± 0.8 dB
    out = [ctl.update(a, STEP_S) for a in ambient]
    assert set(out) == {43.0}
    control = AdaptiveLevelController(
        AdaptiveRule(
            level_dba=43.0,
            min_dba=40.0,
            max_dba=46.0,
            reference_ambient_dba=45.0,
            hysteresis_db=0.0,
        )
    )
    assert len({control.update(a, STEP_S) for a in ambient}) > 1


def test_dead_microphone_holds_the_level():
    est = AmbientEstimator(averaging_s=60.0)
    assert est.update([50.0, 50.0], [40.0, 40.0], 1.0) is not None
    held = float(est.estimate_db)
    assert float(est.update([np.nan, 50.0], [40.0, 40.0], 1.0)) == held
    assert est.rejected_updates == 1


def test_errors_are_named():
    with pytest.raises(ConfigError, match=r"level_dba=47 is not in min_dba..max_dba = 40..46"):
        AdaptiveRule(level_dba=47, min_dba=40, max_dba=46)
    with pytest.raises(ConfigError, match=r"allowed 0 < fall <= rise <= 2 dB/min"):
        AdaptiveRule(level_dba=42, min_dba=40, max_dba=46, rise_db_per_min=0.2, fall_db_per_min=0.5)
    with pytest.raises(ConfigError, match=r"coupling_db.shape=\(2,\) is not \(zones=1, mics\)"):
        SiteAdaptive(rules_from_site()[:1], [[0]], [0.0, 0.0])
    with pytest.raises(ConfigError, match=r"spl_offset_db=.* is not 2 finite numbers"):
        MicLevelTap(48000, 480, 2, [120.0, np.nan])


def test_mic_level_tap_reads_calibrated_dba():
    """A 1 kHz tone (A-weighting 0 dB) at -20 dBFS RMS on a 120 dB-offset capsule is 100 dBA."""
    array = SITE.adaptive_array
    tap = MicLevelTap(48000, 480, array.mics, array.sensitivity_offsets_db())
    tone = signals.sine(1000.0, 48000, 2.0, amplitude=0.1 * np.sqrt(2.0))
    block = np.stack([tone, 0.1 * tone], axis=1)
    out = np.zeros((480, 1), np.float32)
    for i in range(0, 48000, 480):  # the first second settles the weighting filter
        tap.process(block[i : i + 480], out)
    tap.levels_dba()
    for i in range(48000, 96000, 480):
        tap.process(block[i : i + 480], out)
    np.testing.assert_allclose(tap.levels_dba(), [100.0, 80.0], atol=0.1)
    assert np.all(out == 0.0)
    assert tap.levels_dba() is None  # nothing new since the last read


def test_ambient_spectrum_is_estimated_per_band():
    """Per band, the masking's known band levels are removed from the measured band levels:
    where the room is audible above the floor the estimate is the room itself."""
    bands = 20
    true_ambient = np.linspace(50.0, 30.0, bands)  # a sloping room spectrum
    masking = np.full(bands, 38.0)
    measured = power_sum_db(np.stack([true_ambient, masking]), axis=0)
    est = AmbientEstimator(averaging_s=10.0)
    for _ in range(50):
        estimate = est.update(np.stack([measured, measured]), np.stack([masking, masking]), 1.0)
    assert estimate.shape == (bands,)
    audible = true_ambient >= masking - 9.0  # above the -10 dB floor of the estimator
    np.testing.assert_allclose(estimate[audible], true_ambient[audible], atol=0.01)
    # Below the floor the estimate is conservative: never under measured - 10 dB.
    np.testing.assert_allclose(estimate[~audible], measured[~audible] - 10.0, atol=0.01)


def test_supervisor_never_sets_a_level_above_the_ceiling_whatever_the_mics_say():
    """A week of ticks with nonsense microphone levels (silence, 150 dB, NaN) and the schedule:
    every level the generator is given is on the 0.5 dB grid and under the zone's ceiling."""
    import datetime as dt

    from audio_engine.dsp.masking import MaskingGenerator
    from audio_engine.schedule import MaskingSupervisor

    g = MaskingGenerator(
        16000,
        320,
        len(SITE.zones),
        SITE.target_nominal_hz[:-1],
        SITE.target_level_db[:-1],
        level_dba=[z.level_dba for z in SITE.zones],
        start=False,
    )
    sup = MaskingSupervisor(SITE, g)
    rng = signals.rng(400)
    t = dt.datetime(2026, 11, 23, 0, 0)
    ceilings = np.array([z.ceiling_dba for z in SITE.zones])
    maxima = np.array([z.max_dba for z in SITE.zones])
    for _ in range(7 * 24 * 6):
        mics = rng.choice([0.0, 150.0, np.nan, 45.0, 60.0], size=2)
        sup.tick(t, 600.0, mics)
        assert np.all(g.level_dba <= np.minimum(ceilings, maxima))
        np.testing.assert_array_equal(g.level_dba * 2, np.round(g.level_dba * 2))
        t += dt.timedelta(minutes=10)
