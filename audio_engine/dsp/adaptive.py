"""Adaptive masking level from office microphones: estimate the ambient, move slowly, with hysteresis.

The rule, for each zone, run every ``update_s`` (a second) at control rate, off the audio path:

1. **Measure** the level at each microphone over the last update (dBA, or per band).
2. **Remove the masking's own contribution.** The engine knows what each zone plays (its level
   at the listener, dBA) and, from calibration or the site config, how loud it arrives at each
   microphone (``coupling_db``). The masking power at a microphone is the power sum over zones
   of ``level + coupling``; the ambient power is the measured power minus it, floored at
   ``floor_db`` below the measurement (below that the ambient cannot be told from the masking,
   and the floor keeps the estimate finite and conservative). Without this step the masking
   would hear itself and climb to its maximum (a positive feedback loop).
3. **Average** across the zone's microphones in power (a spatial average), then in time as an
   exponential average of the dB values with time constant ``averaging_s`` (two minutes):
   averaging in dB follows sustained activity (more agents talking) while a door slam or a
   laugh moves it little.
4. **Desired level** ``level_dba + slope * (ambient - reference_ambient)``, clamped to
   ``[min_dba, max_dba]``: masking follows the office's activity partially (slope 0.5 dB/dB),
   so the speech-to-masking ratio improves when it is busy without chasing the noise.
5. **Hysteresis**: the goal follows the desired level only when they differ by more than
   ``hysteresis_db``, so small fluctuations never move the level at all.
6. **Bounded rate**: the level moves towards the goal at ``rise_db_per_min`` (0.5) up and
   ``fall_db_per_min`` (0.25) down. Both are well under the ~1 dB just-noticeable difference
   per minute, so occupants do not hear the masking change; falling slower keeps the masking
   up through lulls in a busy period (a quick drop would momentarily unmask conversations
   and make the system conspicuous). Adaptive systems on the market follow the same pattern
   of slow, bounded level changes from ceiling sensors (Acoustics Today, Fall 2007, on adaptive
   masking "continually tracking the disturbance potential"); the figures here are our defaults,
   set in the site config.
7. The level handed to the generator is rounded to 0.5 dB steps; the generator ramps each step
   over its ``ramp_s`` and its output ceiling bounds the result whatever this rule says.

Everything is plain arrays, so a simulated day (86 400 updates) runs in well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from audio_engine.dsp.base import Processor
from audio_engine.dsp.masking import LEVEL_STEP_DB, quantize_level_dba
from audio_engine.dsp.masking_kernels import accumulate_power
from audio_engine.dsp.weighting import WeightingFilter
from audio_engine.errors import ConfigError

#: Default floor of the ambient estimate below the measured level, dB (see step 2).
DEFAULT_FLOOR_DB = -10.0


def power_sum_db(levels_db: np.ndarray, axis: int = 0) -> np.ndarray:
    """Energetic sum of levels in dB along ``axis``."""
    return 10.0 * np.log10(np.sum(10.0 ** (np.asarray(levels_db) / 10.0), axis=axis))


@dataclass(frozen=True)
class AdaptiveRule:
    """Settings of one zone's adaptive rule; see the module docstring for each step."""

    level_dba: float
    min_dba: float
    max_dba: float
    rise_db_per_min: float = 0.5
    fall_db_per_min: float = 0.25
    hysteresis_db: float = 1.0
    slope_db_per_db: float = 0.5
    reference_ambient_dba: float = 45.0
    averaging_s: float = 120.0

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ConfigError(f"{name}={value!r} is not finite")
        if not self.min_dba <= self.level_dba <= self.max_dba:
            raise ConfigError(
                f"level_dba={self.level_dba!r} is not in min_dba..max_dba = "
                f"{self.min_dba:g}..{self.max_dba:g} dBA"
            )
        if not 0.0 < self.fall_db_per_min <= self.rise_db_per_min <= 2.0:
            raise ConfigError(
                f"rise_db_per_min={self.rise_db_per_min!r}, fall_db_per_min={self.fall_db_per_min!r}: "
                "allowed 0 < fall <= rise <= 2 dB/min"
            )
        if not 0.0 <= self.slope_db_per_db <= 1.0:
            raise ConfigError(f"slope_db_per_db={self.slope_db_per_db!r} is not in 0..1")
        if not 0.0 <= self.hysteresis_db <= 6.0:
            raise ConfigError(f"hysteresis_db={self.hysteresis_db!r} is not in 0..6 dB")
        if self.averaging_s <= 0.0:
            raise ConfigError(f"averaging_s={self.averaging_s!r} is not > 0 s")


class AmbientEstimator:
    """Ambient level at a group of microphones, excluding the masking's own contribution.

    Parameters
    ----------
    averaging_s : float
        Time constant of the exponential average (of dB values), s.
    floor_db : float
        The ambient estimate is at least the measured level plus this (< 0) dB.

    Notes
    -----
    Works per band too: give ``(mics, bands)`` arrays and the estimate is ``(bands,)``.
    """

    def __init__(self, averaging_s: float = 120.0, floor_db: float = DEFAULT_FLOOR_DB):
        if not (math.isfinite(averaging_s) and averaging_s > 0):
            raise ConfigError(f"averaging_s={averaging_s!r} is not > 0 s")
        if not (math.isfinite(floor_db) and -40.0 <= floor_db < 0.0):
            raise ConfigError(f"floor_db={floor_db!r} is not in -40..0 dB")
        self.averaging_s = float(averaging_s)
        self.floor_db = float(floor_db)
        self.estimate_db: np.ndarray | None = None
        self.instant_db: np.ndarray | None = None
        self.rejected_updates = 0

    def update(self, measured_db, masking_db, dt_s: float) -> np.ndarray | None:
        """Fold in one measurement; return the smoothed ambient estimate (dB).

        Parameters
        ----------
        measured_db : array_like (mics,) or (mics, bands)
            Levels measured at the microphones over the last ``dt_s`` seconds.
        masking_db : array_like, same shape
            The masking's own level at each microphone over the same time (known from what
            the engine played and the coupling).
        dt_s : float
            Time since the previous update, s.

        Returns
        -------
        ndarray (bands,) or float-like (), or None before the first valid measurement.
        A measurement with a non-finite value (a dead microphone) is skipped and counted.
        """
        measured = np.asarray(measured_db, dtype=np.float64)
        masking = np.asarray(masking_db, dtype=np.float64)
        if measured.shape != masking.shape or measured.ndim not in (1, 2) or measured.shape[0] == 0:
            raise ConfigError(
                f"measured_db.shape={measured.shape} and masking_db.shape={masking.shape} must be "
                "equal, (mics,) or (mics, bands)"
            )
        if not (np.all(np.isfinite(measured)) and math.isfinite(dt_s) and dt_s > 0.0):
            self.rejected_updates += 1
            return self.estimate_db
        masking = np.where(np.isfinite(masking), masking, -300.0)
        p_measured = 10.0 ** (measured / 10.0)
        p_ambient = np.maximum(
            p_measured - 10.0 ** (masking / 10.0), p_measured * 10.0 ** (self.floor_db / 10.0)
        )
        instant = 10.0 * np.log10(np.mean(p_ambient, axis=0))
        self.instant_db = instant
        if self.estimate_db is None:
            self.estimate_db = instant
        else:
            a = math.exp(-dt_s / self.averaging_s)
            self.estimate_db = a * self.estimate_db + (1.0 - a) * instant
        return self.estimate_db


class AdaptiveLevelController:
    """One zone's level from its ambient estimate: clamped, with hysteresis, rate bounded.

    Parameters
    ----------
    rule : AdaptiveRule
    """

    def __init__(self, rule: AdaptiveRule):
        self.rule = rule
        self.level_dba = rule.level_dba  # continuous, rate-bounded
        self.goal_dba = rule.level_dba
        self.desired_dba = rule.level_dba
        self.state = "steady"

    def desired(self, ambient_dba: float) -> float:
        """Level the rule would settle at for a steady ``ambient_dba``."""
        r = self.rule
        value = r.level_dba + r.slope_db_per_db * (ambient_dba - r.reference_ambient_dba)
        return min(max(value, r.min_dba), r.max_dba)

    def update(self, ambient_dba: float | None, dt_s: float) -> float:
        """Advance by ``dt_s`` seconds with the current ambient estimate; return the level (dBA,
        0.5 dB steps). ``None`` or a non-finite ambient holds the goal (the level still finishes
        its move towards it)."""
        r = self.rule
        if ambient_dba is not None and math.isfinite(ambient_dba):
            self.desired_dba = self.desired(float(ambient_dba))
            if abs(self.desired_dba - self.goal_dba) > r.hysteresis_db:
                self.goal_dba = self.desired_dba
        delta = self.goal_dba - self.level_dba
        if delta > 0.0:
            self.level_dba += min(delta, r.rise_db_per_min * dt_s / 60.0)
            self.state = "rising"
        elif delta < 0.0:
            self.level_dba -= min(-delta, r.fall_db_per_min * dt_s / 60.0)
            self.state = "falling"
        else:
            self.state = "steady"
        self.level_dba = min(max(self.level_dba, r.min_dba), r.max_dba)
        return self.output_dba

    @property
    def output_dba(self) -> float:
        """The level for the generator: rounded to 0.5 dB, inside ``[min_dba, max_dba]``."""
        r = self.rule
        q = quantize_level_dba(self.level_dba)
        if q > r.max_dba:
            q -= LEVEL_STEP_DB
        if q < r.min_dba:
            q += LEVEL_STEP_DB
        return q


class SiteAdaptive:
    """The adaptive rule for every zone of a site, fed by one microphone array.

    Parameters
    ----------
    rules : sequence of AdaptiveRule
        One per zone.
    zone_mics : sequence of sequence of int
        Per zone, the 0-based microphone indices whose levels it listens to.
    coupling_db : array_like (zones, mics)
        Per zone and microphone: masking level at the microphone minus at the listener, dB.
    floor_db : float
        See :class:`AmbientEstimator`.

    Examples
    --------
    >>> rule = AdaptiveRule(level_dba=42, min_dba=40, max_dba=46)
    >>> site = SiteAdaptive([rule], [[0]], [[0.0]])
    >>> site.update([45.0], [42.0], 1.0)
    array([42.])
    """

    def __init__(self, rules, zone_mics, coupling_db, floor_db: float = DEFAULT_FLOOR_DB):
        self.rules = list(rules)
        zones = len(self.rules)
        self.coupling_db = np.asarray(coupling_db, dtype=np.float64)
        if self.coupling_db.ndim != 2 or self.coupling_db.shape[0] != zones:
            raise ConfigError(
                f"coupling_db.shape={self.coupling_db.shape} is not (zones={zones}, mics)"
            )
        mics = self.coupling_db.shape[1]
        self.zone_mics = [tuple(int(m) for m in group) for group in zone_mics]
        if len(self.zone_mics) != zones or any(
            not group or not all(0 <= m < mics for m in group) for group in self.zone_mics
        ):
            raise ConfigError(
                f"zone_mics={zone_mics!r} must give, for each of {zones} zones, microphones 0..{mics - 1}"
            )
        self.estimators = [AmbientEstimator(r.averaging_s, floor_db) for r in self.rules]
        self.controllers = [AdaptiveLevelController(r) for r in self.rules]

    @property
    def mics(self) -> int:
        """Microphones of the array."""
        return self.coupling_db.shape[1]

    def masking_at_mics_db(self, zone_levels_dba) -> np.ndarray:
        """The masking's own level at each microphone (mics,), from every zone's level now."""
        levels = np.asarray(zone_levels_dba, dtype=np.float64)
        levels = np.where(np.isfinite(levels), levels, -300.0)
        return power_sum_db(levels[:, None] + self.coupling_db, axis=0)

    def update(self, mic_levels_dba, zone_levels_dba, dt_s: float) -> np.ndarray:
        """One control step: microphone levels (mics,) dBA and each zone's level now (zones,) dBA
        (``-inf`` for a silent zone) in; each zone's new level (zones,) dBA out."""
        measured = np.asarray(mic_levels_dba, dtype=np.float64)
        if measured.shape != (self.mics,):
            raise ConfigError(f"mic_levels_dba.shape={measured.shape} is not ({self.mics},)")
        masking = self.masking_at_mics_db(zone_levels_dba)
        out = np.empty(len(self.rules))
        for z, (est, ctl, group) in enumerate(
            zip(self.estimators, self.controllers, self.zone_mics, strict=True)
        ):
            idx = list(group)
            ambient = est.update(measured[idx], masking[idx], dt_s)
            out[z] = ctl.update(None if ambient is None else float(ambient), dt_s)
        return out

    def status(self) -> list[dict]:
        """Per zone: ambient estimate, desired, goal and level, and the state."""
        return [
            {
                "ambient_dba": None if e.estimate_db is None else float(e.estimate_db),
                "desired_dba": c.desired_dba,
                "goal_dba": c.goal_dba,
                "level_dba": c.output_dba,
                "state": c.state,
            }
            for e, c in zip(self.estimators, self.controllers, strict=True)
        ]


class PowerTap(Processor):
    """Base of the microphone taps: a filter stage, then sums of squares for the control thread.

    Sits first in the masking pipeline on a duplex stream: ``channels`` microphone channels in,
    one silent channel out (the masking generator ignores its input). The audio thread only
    filters (``front``) and accumulates sums of squares of the filter's outputs; the control
    thread calls :meth:`mean_power` once per update for each output's mean square since its
    previous call.

    Parameters
    ----------
    front : Processor
        The filter (A-weighting, a band filterbank), built for this tap's rate, block and
        channels.
    spl_offset_db : array_like (channels,)
        Per microphone, dB SPL at 0 dBFS RMS (``ArrayConfig.sensitivity_offsets_db()``).

    Notes
    -----
    :meth:`process` is real-time safe. :meth:`mean_power` reads counters the audio thread only
    ever increases, so it needs no lock (a block landing mid-read moves to the next update).
    """

    def __init__(self, front: Processor, spl_offset_db):
        super().__init__(front.sample_rate, front.block_size, front.channels)
        self.output_channels = 1
        offsets = np.asarray(spl_offset_db, dtype=np.float64).ravel()
        if offsets.shape != (self.channels,) or not np.all(np.isfinite(offsets)):
            raise ConfigError(
                f"spl_offset_db={spl_offset_db!r} is not {self.channels} finite numbers "
                "(calibrate the microphones: sensitivity_dbfs in the array table)"
            )
        self.spl_offset_db = offsets
        self._front = front
        self._filtered = np.zeros((self.block_size, front.output_channels), np.float32)
        self._accumulator = np.zeros(front.output_channels + 1)  # sums of squares, then frames
        self._previous = np.zeros_like(self._accumulator)
        accumulate_power(self._accumulator.copy(), self._filtered[:1])  # compile before audio

    def reset(self) -> None:
        self._front.reset()
        self._accumulator.fill(0.0)
        self._previous.fill(0.0)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        filtered = self._filtered[: block.shape[0]]
        self._front.process(block, filtered)
        accumulate_power(self._accumulator, filtered)
        out.fill(0.0)

    def mean_power(self) -> np.ndarray | None:
        """Mean square of each filter output since the previous call, or None if no audio came.

        Control thread only (allocates).
        """
        now = self._accumulator.copy()
        delta = now - self._previous
        self._previous = now
        frames = delta[-1]
        if frames <= 0:
            return None
        return delta[:-1] / frames


class MicLevelTap(PowerTap):
    """Measures the A-weighted level of each microphone channel for the adaptive rule.

    Parameters
    ----------
    sample_rate, block_size : int
    channels : int
        Microphones.
    spl_offset_db : array_like (channels,)
        Per microphone, dB SPL at 0 dBFS RMS (``ArrayConfig.sensitivity_offsets_db()``).

    Notes
    -----
    :meth:`process` is real-time safe (see :class:`PowerTap`).
    """

    def __init__(self, sample_rate: int, block_size: int, channels: int, spl_offset_db):
        super().__init__(WeightingFilter(sample_rate, block_size, channels, "A"), spl_offset_db)

    def levels_dba(self) -> np.ndarray | None:
        """Each microphone's LAeq since the previous call (mics,), or None if no audio came."""
        power = self.mean_power()
        if power is None:
            return None
        return 10.0 * np.log10(np.maximum(power, 1e-30)) + self.spl_offset_db
