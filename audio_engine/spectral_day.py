"""Simulated office days for the spectral masking law: fixed vs level-only vs spectral adaptive.

A day is simulated at control rate (one reading every ``step_s`` seconds), band by band, faster
than real time (a 13-hour day in seconds): no audio is synthesised, the room is a sum of band
powers. What each part stands for:

* **Ambient at every listener and microphone**: ventilation (fan-like, flat to 125 Hz then
  -5 dB per octave), distant babble (the ANSI S3.5 normal speech spectrum, the level following
  the day's script with a seeded +-1.5 dB fluctuation) and transient bursts (door, trolley,
  laughter: pink, +8..15 dB for 4-10 s, about twice an hour).
* **The neighbouring agent** of each microphone talks in spurts (mean 6 s; the fraction of time
  talking follows the script). The talker's level at 1 m rises with the ambient by the Lombard
  effect, 0.5 dB per dB above 45 dBA (Pearsons, Bennett & Fidell, EPA-600/1-77-025, 1977),
  the spectrum moving from the ANSI S3.5 "normal" towards the "raised" shape, +-2 dB per spurt.
* **The microphones** hear the ambient, the talker (``mic_speech_offset_db`` below its 1 m level)
  and every zone's masking through the site's ``mic_coupling_db``, with +-0.3 dB of reading
  noise: the loop the live system closes through the room.
* **The listener** of a zone hears the ambient, that zone's masking and the neighbouring agent
  ``talker_distance_m`` away behind ``talker_attenuation_db`` (the law's stated geometry). The
  SII there (ANSI S3.5) is the privacy achieved; zones listening to two microphones take the
  power mean of both talkers.

Strategies: **fixed** (each zone at its configured ``level_dba``, target shape), **level-only**
(the existing rule of :mod:`audio_engine.dsp.adaptive` fed with the microphones' dBA) and
**spectral** (:class:`~audio_engine.dsp.spectral_masking.SpectralZoneController`). The weekday
schedule and the install ramp-in are left out: all three would follow them alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from audio_engine.dsp import sii as sii_module
from audio_engine.dsp.adaptive import AdaptiveRule, SiteAdaptive, power_sum_db
from audio_engine.dsp.masking import LEVEL_STEP_DB
from audio_engine.dsp.spectral_masking import (
    AUDIBLE_STEP_DB,
    AUDIBLE_STEP_WINDOW_S,
    PrivacySettings,
    SpectralPrivacyLaw,
    SpectralZoneController,
    a_weighting_db,
    listener_band_levels_db,
)
from audio_engine.errors import ConfigError

#: Lombard rise of the talker's level per dB of ambient above :data:`LOMBARD_ONSET_DBA`
#: (Pearsons et al. 1977: about 0.5-0.6 dB/dB above 45-50 dBA).
LOMBARD_DB_PER_DB = 0.5
LOMBARD_ONSET_DBA = 45.0

#: Level difference of the ANSI S3.5 "raised" and "normal" speech spectra, dB (68.34 - 62.35).
_RAISED_MINUS_NORMAL_DB = 5.99

#: The periods of the simulated day: (name, start hour, end hour, key points). Key points are
#: (hour, babble dBA, fraction of time the neighbour talks, ventilation dBA), linear between.
PERIODS: tuple[tuple[str, float, float], ...] = (
    ("quiet morning", 7.0, 9.0),
    ("Monday-morning rush", 9.0, 12.0),
    ("lunch", 12.0, 14.0),
    ("afternoon", 14.0, 17.0),
    ("evening", 17.0, 20.0),
)
DAY_POINTS = (
    (7.0, 28.0, 0.10, 34.0),
    (8.0, 33.0, 0.25, 36.0),
    (8.9, 40.0, 0.45, 36.0),
    (9.25, 50.0, 0.85, 37.0),
    (11.5, 51.0, 0.85, 37.0),
    (12.0, 42.0, 0.40, 37.0),
    (12.5, 37.0, 0.20, 37.0),
    (13.5, 38.0, 0.25, 37.0),
    (14.0, 45.0, 0.60, 37.0),
    (16.5, 46.0, 0.60, 37.0),
    (17.0, 42.0, 0.45, 36.0),
    (18.5, 34.0, 0.20, 35.0),
    (20.0, 28.0, 0.05, 34.0),
)


@dataclass(frozen=True)
class DayResult:
    """One strategy over the day: time series (steps, zones) and summary figures."""

    name: str
    level_dba: np.ndarray
    rms_level_dba: np.ndarray
    sii: np.ndarray
    band_db: np.ndarray  # (steps, zones, bands), masking band levels at the listener


def simulate_day(
    site,
    settings: PrivacySettings | None = None,
    step_s: float = 2.0,
    seed: int = 0,
    hours: tuple[float, float] = (7.0, 20.0),
    points=DAY_POINTS,
    speech_path_error_db: float = 0.0,
) -> dict:
    """Run the three strategies over one simulated day on ``site``'s zones and microphones.

    Parameters
    ----------
    site : SiteConfig
        Zones (levels, ranges, ceilings, microphones, coupling) and the target curve; the
        ``[adaptive]`` figures drive the level-only rule.
    settings : PrivacySettings, optional
        The spectral law's settings; also the listener geometry of the truth.
    step_s : float
        Control step, s (1..10).
    seed : int
        Seeds the room (every strategy hears the same room).
    hours : (float, float)
        Start and end of the day, h.
    speech_path_error_db : float
        How much quieter the real talker-to-microphone path is than the law assumes, dB (the
        law then under-reads the talker by this much: a commissioning error, to test robustness).

    Returns
    -------
    dict
        ``hours`` (steps,), ``active`` (steps, zones) neighbour talking, ``ambient_dba``
        (steps,), ``results`` {name: DayResult}, ``nominal_hz``, ``settings``.
    """
    settings = settings or PrivacySettings()
    if not (math.isfinite(step_s) and 1.0 <= step_s <= 10.0):
        raise ConfigError(f"step_s={step_s!r} is not in 1..10 s")
    settings = replace(settings, solve_every_s=max(settings.solve_every_s, step_s))
    nominal = np.asarray(site.target_nominal_hz, dtype=np.float64)
    target = np.asarray(site.target_level_db, dtype=np.float64)
    bands = nominal.shape[0]
    zones = len(site.zones)
    coupling = np.array([z.mic_coupling_db for z in site.zones], dtype=np.float64)
    mics = coupling.shape[1]
    zone_mics = [list(z.microphones) for z in site.zones]
    aweight = a_weighting_db(nominal)
    rng = np.random.default_rng(seed)

    t_h = np.arange(hours[0], hours[1], step_s / 3600.0)
    steps = t_h.shape[0]
    key = np.array(points, dtype=np.float64)
    babble_dba = np.interp(t_h, key[:, 0], key[:, 1]) + rng.normal(0.0, 1.5, steps)
    activity = np.interp(t_h, key[:, 0], key[:, 2])
    hvac_dba = np.interp(t_h, key[:, 0], key[:, 3])

    # Band shapes (relative dB), each scaled to its dBA per step.
    sii_index = np.array([list(nominal).index(float(f)) for f in sii_module.BAND_CENTRES_HZ])
    normal_band = np.interp(
        np.log(nominal),
        np.log(sii_module.BAND_CENTRES_HZ),
        sii_module.SPEECH_SPECTRUM_LEVEL_DB["normal"] + sii_module.BANDWIDTH_ADJUSTMENT_DB,
    )
    raised_band = np.interp(
        np.log(nominal),
        np.log(sii_module.BAND_CENTRES_HZ),
        sii_module.SPEECH_SPECTRUM_LEVEL_DB["raised"] + sii_module.BANDWIDTH_ADJUSTMENT_DB,
    )
    hvac_shape = -5.0 * np.log2(np.maximum(nominal, 125.0) / 125.0)
    pink_shape = np.zeros(bands)
    hvac = hvac_shape[None, :] - power_sum_db(hvac_shape + aweight) + hvac_dba[:, None]
    babble = normal_band[None, :] - power_sum_db(normal_band + aweight) + babble_dba[:, None]
    burst = np.full(steps, -100.0)
    for i in np.flatnonzero(rng.random(steps) < 2.0 * step_s / 3600.0):
        length = max(1, int(rng.uniform(4.0, 10.0) / step_s))
        burst[i : i + length] = np.maximum(
            burst[i : i + length], babble_dba[i] + rng.uniform(8.0, 15.0)
        )
    bursts = pink_shape[None, :] - power_sum_db(pink_shape + aweight) + burst[:, None]
    ambient = power_sum_db(np.stack([hvac, babble, bursts]), axis=0)  # (steps, bands)
    ambient_dba = power_sum_db(ambient + aweight, axis=1)

    # Talkers, one per microphone: spurts (a two-state chain with a mean spurt of 6 s).
    spurt_s = 6.0
    talking = np.zeros((steps, mics), bool)
    spurt_gain = np.zeros((steps, mics))
    state = np.zeros(mics, bool)
    gain = np.zeros(mics)
    for i in range(steps):
        p_stop = min(1.0, step_s / spurt_s)
        p = np.clip(activity[i], 0.01, 0.99)
        p_start = min(1.0, p_stop * p / (1.0 - p))
        u = rng.random(mics)
        start = ~state & (u < p_start)
        state = np.where(state, u >= p_stop, start)
        gain = np.where(start, rng.normal(0.0, 2.0, mics), gain)
        talking[i] = state
        spurt_gain[i] = gain
    lombard = LOMBARD_DB_PER_DB * np.maximum(ambient_dba - LOMBARD_ONSET_DBA, 0.0)
    factor = (lombard / _RAISED_MINUS_NORMAL_DB)[:, None, None]
    talker_1m = (
        normal_band[None, None, :]
        + factor * (raised_band - normal_band)[None, None, :]
        + spurt_gain[:, :, None]
    )  # (steps, mics, bands)
    path_db = settings.talker_to_listener_db()
    speech_listener = (
        np.stack(
            [
                power_sum_db(talker_1m[:, m_list, :], axis=1) - 10 * np.log10(len(m_list))
                for m_list in zone_mics
            ],
            axis=1,
        )
        + path_db
    )  # (steps, zones, bands)
    active = np.stack([talking[:, m_list].any(axis=1) for m_list in zone_mics], axis=1)
    reading_noise = rng.normal(0.0, 0.3, (steps, mics, bands))

    laws = [
        SpectralPrivacyLaw(nominal, target, z.min_dba, z.max_dba, z.ceiling_dba, settings)
        for z in site.zones
    ]
    a_norm = laws[0].a_norm_db

    def mic_readings(i: int, masking_band: np.ndarray) -> np.ndarray:
        own = power_sum_db(masking_band[:, None, :] + coupling[:, :, None], axis=0)
        talker_at_mic = np.where(
            talking[i][:, None],
            talker_1m[i] - settings.mic_speech_offset_db - speech_path_error_db,
            -100.0,
        )
        room = ambient[i][None, :] - 2.0 * np.arange(mics)[:, None]
        return power_sum_db(np.stack([room, talker_at_mic, own]), axis=0) + reading_noise[i]

    def truth_sii(i: int, masking_band: np.ndarray) -> np.ndarray:
        return np.array(
            [
                laws[z].sii(masking_band[z], ambient[i], speech_listener[i, z, sii_index])
                for z in range(zones)
            ]
        )

    results = {}
    # Fixed.
    fixed_levels = np.array([z.level_dba for z in site.zones])
    fixed_band = target[None, :] - a_norm + fixed_levels[:, None]
    share = laws[0].power_share

    def run(name, policy):
        results[name] = DayResult(
            name, *_run(steps, policy, truth_sii, aweight, target, share, a_norm, fixed_band)
        )

    run("fixed", lambda i, previous: fixed_band)
    # Level-only adaptive (the existing rule).
    a = site.adaptive
    rules = [
        AdaptiveRule(
            level_dba=z.level_dba, min_dba=z.min_dba, max_dba=z.max_dba,
            rise_db_per_min=a.rise_db_per_min, fall_db_per_min=a.fall_db_per_min,
            hysteresis_db=a.hysteresis_db, slope_db_per_db=a.slope_db_per_db,
            reference_ambient_dba=a.reference_ambient_dba, averaging_s=a.averaging_s,
        )
        for z in site.zones
    ]  # fmt: skip
    level_rule = SiteAdaptive(rules, zone_mics, coupling)
    level_state = {"levels": fixed_levels.astype(float)}

    def level_only(i, previous_band):
        readings = mic_readings(i, previous_band)
        mic_dba = power_sum_db(readings + aweight[None, :], axis=1)
        level_state["levels"] = level_rule.update(mic_dba, level_state["levels"], step_s)
        return target[None, :] - a_norm + level_state["levels"][:, None]

    run("level-only", level_only)
    # Spectral.
    controllers = [
        SpectralZoneController(law, step_s, start_dba=z.level_dba)
        for law, z in zip(laws, site.zones, strict=True)
    ]

    def spectral(i, previous_band):
        readings = mic_readings(i, previous_band)
        own = power_sum_db(previous_band[:, None, :] + coupling[:, :, None], axis=0)
        band = np.empty((zones, bands))
        for z, c in enumerate(controllers):
            c.update(readings[zone_mics[z]], own[zone_mics[z]], step_s)
            band[z] = listener_band_levels_db(c.law, c.generator_level_dba(), c.shape_db)
        return band

    run("spectral", spectral)
    return {
        "hours": t_h,
        "active": active,
        "ambient_dba": ambient_dba,
        "activity": activity,
        "results": results,
        "nominal_hz": nominal,
        "settings": settings,
        "step_s": step_s,
        "site": site,
        "speech_listener_db": speech_listener,
        "ambient_band_db": ambient,
    }


def _run(steps, policy, truth_sii, aweight, target_db, power_share, a_norm_db, initial):
    """Run one strategy: ``policy(i, previous_band)`` gives the band levels (zones, bands) at
    step ``i`` from the previous step's (what the microphones heard)."""
    previous = initial
    zones, bands = previous.shape
    level = np.empty((steps, zones))
    rms = np.empty((steps, zones))
    sii = np.empty((steps, zones))
    band_db = np.empty((steps, zones, bands))
    for i in range(steps):
        band = policy(i, previous)
        band_db[i] = band
        level[i] = power_sum_db(band + aweight[None, :], axis=1)
        # RMS-equivalent level: what the generator is told and its ceiling bounds.
        rms[i] = a_norm_db + 10.0 * np.log10(
            np.sum(power_share[None, :] * 10.0 ** ((band - target_db[None, :]) / 10.0), axis=1)
        )
        sii[i] = truth_sii(i, band)
        previous = band
    return level, rms, sii, band_db


def max_step_db(
    band_db: np.ndarray, step_s: float, window_s: float = AUDIBLE_STEP_WINDOW_S
) -> float:
    """Largest change of any band level within any ``window_s`` window, dB (steps, zones, bands)."""
    lag = max(1, int(round(window_s / step_s)))
    worst = 0.0
    for k in range(1, lag + 1):
        if band_db.shape[0] > k:
            worst = max(worst, float(np.max(np.abs(band_db[k:] - band_db[:-k]))))
    return worst


def summarise(day: dict) -> dict:
    """The side-by-side table: per strategy and period (and the whole day), mean masking dBA,
    mean and 95th-percentile SII while the neighbour talks, % of that time at or under the
    target, ceiling crossings and the largest band change in any 10 s window."""
    hours = day["hours"]
    active = day["active"]
    target = day["settings"].sii_target
    site = day["site"]
    ceilings = np.array([z.ceiling_dba for z in site.zones])
    table = {}
    periods = [(name, lo, hi) for name, lo, hi in PERIODS] + [("whole day", -1.0, 99.0)]
    for name, r in day["results"].items():
        rows = {}
        for period, lo, hi in periods:
            sel = (hours >= lo) & (hours < hi)
            if not sel.any():
                continue
            talk = active[sel]
            sii = r.sii[sel][talk] if talk.any() else r.sii[sel].ravel()
            rows[period] = {
                "mean_level_dba": round(float(np.mean(r.level_dba[sel])), 2),
                "mean_sii": round(float(np.mean(sii)), 3),
                "p95_sii": round(float(np.percentile(sii, 95)), 3),
                "percent_private": round(100.0 * float(np.mean(sii <= target + 1e-9)), 1),
            }
        table[name] = {
            "periods": rows,
            "ceiling_crossings": int(
                np.sum(
                    (r.level_dba > ceilings[None, :] + 1e-9)
                    | (r.rms_level_dba > ceilings[None, :] + 1e-9)
                )
            ),
            "max_level_dba": round(float(np.max(r.level_dba)), 2),
            "max_band_change_10s_db": round(max_step_db(r.band_db, day["step_s"]), 3),
            "audible_steps": int(max_step_db(r.band_db, day["step_s"]) >= AUDIBLE_STEP_DB),
        }
    return table


def fixed_level_for_privacy(day: dict, percent_private: float, every: int = 5) -> float | None:
    """Smallest offset (0.5 dB grid, added to every zone's configured level, target shape) at
    which fixed masking keeps the SII at or under the target for at least ``percent_private`` %
    of the talking time (every ``every``-th step); None if no offset up to +8 dB does."""
    site = day["site"]
    nominal = day["nominal_hz"]
    target = np.asarray(site.target_level_db, dtype=np.float64)
    settings = day["settings"]
    laws = [
        SpectralPrivacyLaw(nominal, target, z.min_dba, z.max_dba, z.ceiling_dba, settings)
        for z in site.zones
    ]
    a_norm = laws[0].a_norm_db
    speech = day["speech_listener_db"]
    ambient = day["ambient_band_db"]
    active = day["active"]
    sii_index = laws[0].sii_index
    pairs = [(i, z) for i in range(0, active.shape[0], every) for z in np.flatnonzero(active[i])]
    if not pairs:
        return None
    for offset in np.arange(-6.0, 8.0 + 1e-9, LEVEL_STEP_DB):
        levels = [min(z.level_dba + offset, z.ceiling_dba) for z in site.zones]
        private = sum(
            laws[z].sii(target - a_norm + levels[z], ambient[i], speech[i, z, sii_index])
            <= settings.sii_target + 1e-9
            for i, z in pairs
        )
        if 100.0 * private / len(pairs) >= percent_private:
            return float(offset)
    return None


def plot_day(day: dict, path, zone: int = 0) -> None:
    """Write a PNG: masking level and privacy over the day for the three strategies (one zone),
    and the spectral law's band levels at the busiest and the quietest moment against the
    target shape and its bounds. Not real-time (matplotlib, file I/O)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = day["hours"]
    results = day["results"]
    target = day["settings"].sii_target
    colours = {"fixed": "tab:grey", "level-only": "tab:blue", "spectral": "tab:red"}
    window = max(1, int(round(60.0 / day["step_s"])))
    kernel = np.ones(window) / window
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), constrained_layout=True)
    ax = axes[0]
    ax.plot(hours, day["ambient_dba"], color="tab:green", lw=0.6, alpha=0.6, label="ambient")
    for name, r in results.items():
        ax.plot(hours, r.level_dba[:, zone], color=colours.get(name), lw=1.2, label=name)
    ax.axhline(day["site"].zones[zone].ceiling_dba, color="k", ls="--", lw=0.8, label="ceiling")
    ax.set_ylabel("masking at listener, dBA")
    ax.set_title(f"zone {day['site'].zones[zone].name!r}: masking level over the simulated day")
    ax.legend(ncol=5, fontsize=8)
    for name, lo, hi in PERIODS:
        ax.axvspan(lo, hi, color="0.9" if PERIODS.index((name, lo, hi)) % 2 else "1.0", zorder=-1)
        ax.text((lo + hi) / 2, ax.get_ylim()[0] + 0.5, name, ha="center", fontsize=7)
    ax = axes[1]
    for name, r in results.items():
        smooth = np.convolve(r.sii[:, zone], kernel, mode="same")
        ax.plot(hours, smooth, color=colours.get(name), lw=1.0, label=f"{name} (1 min mean)")
    ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target SII {target:.2f}")
    ax.set_ylabel("SII of the neighbour at the listener")
    ax.set_xlabel("hour")
    ax.legend(ncol=4, fontsize=8)
    ax = axes[2]
    nominal = day["nominal_hz"]
    spectral = results["spectral"].band_db[:, zone, :]
    level = results["spectral"].level_dba[:, zone]
    shape = np.asarray(day["site"].target_level_db)
    for label, i in (("loudest", int(np.argmax(level))), ("quietest", int(np.argmin(level)))):
        ax.semilogx(
            nominal, spectral[i], marker="o", ms=3, label=f"spectral, {label} ({hours[i]:.2f} h)"
        )
        # Centred on the mid-range of the deviation: every point is inside iff the shape spans
        # at most the bound's 6 dB (the law's own offset is not stored in the day result).
        deviation = spectral[i] - shape
        offset = 0.5 * float(deviation.max() + deviation.min())
        limit = day["settings"].shape_limit_db
        ax.fill_between(nominal, shape + offset - limit, shape + offset + limit, alpha=0.12)
    ax.set_xlabel("one-third-octave band, Hz")
    ax.set_ylabel("masking band level, dB SPL")
    ax.set_title("spectral law: band levels with the target shape ±3 dB (shaded)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
