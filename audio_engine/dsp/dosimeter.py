"""A-weighted noise dosimeter of what reaches the ear: LEX,8h and daily dose (2003/10/EC).

The EU noise directive 2003/10/EC (art. 2) defines the daily noise exposure level

    LEX,8h = 10 log10( (1/T0) * integral of p_A(t)^2 dt / p0^2 ),  T0 = 8 h = 28 800 s,

over the working day, with p0 = 20 µPa and p_A the A-weighted sound pressure (IEC 61672-1).
Its action values are 80 and 85 dB(A) (art. 3; standards_tables.json,
headset_acoustic_safety.eu_2003_10_ec_lex8h_action_values_dba). The *dose* here is the day's
A-weighted exposure energy as a percentage of the energy that makes ``dose_limit_dba`` over
8 h: 100 % at LEX,8h = 85 dB(A), doubling every 3 dB (the directive's equal-energy rule).

Sample values become pressure through a :class:`~audio_engine.headset_profile.HeadsetProfile`:
a sine of peak amplitude 1.0 is ``sensitivity_db_spl`` at the ear, so ``p = x * sqrt(2) * p0 *
10**(sensitivity/20)``. Each channel (ear) is integrated separately; the dose is the louder
ear's. The directive's figures are for sound fields at the ear; a headset's level at the eardrum
(DRP) reads a few dB above the diffuse-field equivalent (ISO 11904-1 converts); the profile's
reference point is reported with the figures, and no conversion is applied.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from audio_engine.dsp.base import Processor, check_number
from audio_engine.dsp.weighting import sos_filter_kernel, weight_signal, weighting_sos
from audio_engine.headset_profile import HeadsetProfile, resolve_profile

#: Reference sound pressure, Pa (ISO 1683).
P0_PA = 20e-6

#: Reference duration of LEX,8h, seconds (2003/10/EC art. 2(b)).
T0_S = 8.0 * 3600.0

#: Lower and upper exposure action values, dB(A) (2003/10/EC art. 3(1)(b), (c)).
ACTION_VALUES_DBA = (80.0, 85.0)

#: Exposure limit value, dB(A) (2003/10/EC art. 3(1)(a); the directive lets hearing protectors
#: count towards it, which a headset cannot).
EXPOSURE_LIMIT_DBA = 87.0


def pressure_scale_pa2(sensitivity_db_spl: float) -> float:
    """Factor turning a squared sample into squared pressure, Pa² (sine peak 1.0 -> sensitivity)."""
    return 2.0 * P0_PA * P0_PA * 10.0 ** (sensitivity_db_spl / 10.0)


def lex_8h_from_energy(energy_pa2s: float) -> float:
    """LEX,8h in dB(A) of an A-weighted exposure energy in Pa²·s (-inf for none)."""
    if energy_pa2s <= 0.0:
        return -math.inf
    return 10.0 * math.log10(energy_pa2s / (T0_S * P0_PA * P0_PA))


def energy_from_lex_8h(lex_8h_dba: float) -> float:
    """A-weighted exposure energy, Pa²·s, that makes ``lex_8h_dba`` over a day."""
    return T0_S * P0_PA * P0_PA * 10.0 ** (lex_8h_dba / 10.0)


def dose_percent_from_lex(lex_8h_dba: float, dose_limit_dba: float = 85.0) -> float:
    """Dose in % of ``dose_limit_dba``: 100 % at the limit, x2 every 3.01 dB."""
    return 100.0 * 10.0 ** ((lex_8h_dba - dose_limit_dba) / 10.0)


def exposure_energy_pa2s(
    signal: np.ndarray, sample_rate: int, profile: HeadsetProfile | float
) -> np.ndarray:
    """A-weighted exposure energy of a recording at the ear, per channel (offline; allocates).

    Parameters
    ----------
    signal : ndarray, shape (frames,) or (frames, channels)
        Samples as sent to the headset.
    sample_rate : int
        Hz.
    profile : HeadsetProfile or float
        The headset, or its sensitivity in dB SPL for a 0 dBFS sine.

    Returns
    -------
    ndarray, shape (channels,)
        Integral of p_A² over the recording, Pa²·s.
    """
    sens = profile.sensitivity_db_spl if isinstance(profile, HeadsetProfile) else float(profile)
    weighted = weight_signal(signal, sample_rate, "A")
    if weighted.ndim == 1:
        weighted = weighted[:, None]
    return np.sum(np.square(weighted), axis=0) * pressure_scale_pa2(sens) / sample_rate


def lex_8h_dba(signal: np.ndarray, sample_rate: int, profile: HeadsetProfile | float) -> float:
    """LEX,8h (dB(A)) of a recording as the whole day's exposure: the louder channel."""
    return lex_8h_from_energy(float(np.max(exposure_energy_pa2s(signal, sample_rate, profile))))


@njit(cache=True)
def _accumulate_kernel(energy, weighted, frames, scale):
    """Add ``scale * sum(weighted[:frames]**2)`` to each channel's energy. Real-time safe."""
    for c in range(weighted.shape[1]):
        total = 0.0
        for n in range(frames):
            v = np.float64(weighted[n, c])
            total += v * v
        energy[c] += total * scale


@njit(cache=True)
def _telemetry_kernel(telemetry, dose_slot, lex_slot, energy, carried, limit_energy):
    """Write dose % and LEX,8h of the day (carried + louder ear) into ``telemetry``."""
    loudest = 0.0
    for c in range(energy.shape[0]):
        if energy[c] > loudest:
            loudest = energy[c]
    total = carried[0] + loudest
    telemetry[dose_slot] = 100.0 * total / limit_energy
    if total > 0.0:
        telemetry[lex_slot] = 10.0 * math.log10(total / (T0_S * P0_PA * P0_PA))
    else:
        telemetry[lex_slot] = 0.0


class Dosimeter(Processor):
    """Streaming A-weighted dosimeter at the ear; passes its input through unchanged.

    Parameters
    ----------
    sample_rate : int
        Hz; A-weighting is IEC 61672-1 class 1 at 44.1 and 48 kHz, accurate to about
        0.4 * sample_rate below.
    block_size : int
        Largest block in frames.
    channels : int
        Ears measured separately; the dose is the louder one's.
    profile : HeadsetProfile or str, optional
        The headset (default: the generic USB office example).
    dose_limit_dba : float
        LEX,8h that counts as 100 % dose, 70..90 dB(A) (default 85, the upper action value).

    Notes
    -----
    :meth:`process` and :meth:`accumulate` are real-time safe (Numba kernels, warmed here).
    :attr:`carried_energy_pa2s` holds the day's exposure from before this run (restored by
    :class:`audio_engine.hearing_log.HearingLog`); :meth:`start_day` zeroes the count at
    midnight. Those two are called from another thread: at most one block's energy can land on
    the wrong side of a day boundary, which is far below the dose's resolution.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        channels: int = 1,
        profile: HeadsetProfile | str | None = None,
        dose_limit_dba: float = ACTION_VALUES_DBA[1],
    ) -> None:
        super().__init__(sample_rate, block_size, channels)
        profile = resolve_profile(profile)
        self.profile = profile
        self.dose_limit_dba = check_number("dose_limit_dba", dose_limit_dba, 70.0, 90.0, "dB(A)")
        self._sos = np.ascontiguousarray(weighting_sos("A", self.sample_rate))
        self._filter_state = np.zeros((self.channels, self._sos.shape[0], 2), np.float64)
        self._weighted = np.zeros((self.block_size, self.channels), np.float32)
        self._scale = pressure_scale_pa2(profile.sensitivity_db_spl) / self.sample_rate
        self._limit_energy = energy_from_lex_8h(self.dose_limit_dba)
        #: A-weighted energy at each ear since the start of the day or run, Pa²·s.
        self.energy_pa2s = np.zeros(self.channels, np.float64)
        #: Energy carried over from earlier in the day (one float64 slot), Pa²·s.
        self.carried = np.zeros(1, np.float64)
        self._telemetry = np.zeros(2, np.float64)
        warm = np.zeros((1, self.channels), np.float32)
        self.accumulate(warm)
        self.write_telemetry(self._telemetry, 0, 1)
        self.reset()

    # -- hot path -----------------------------------------------------------------------------
    def accumulate(self, block: np.ndarray) -> None:
        """A-weight ``block`` (frames, channels) and add its energy. Real-time safe."""
        frames = block.shape[0]
        weighted = self._weighted[:frames]
        sos_filter_kernel(weighted, block, self._sos, self._filter_state)
        _accumulate_kernel(self.energy_pa2s, weighted, frames, self._scale)

    def write_telemetry(self, telemetry: np.ndarray, dose_slot: int, lex_slot: int) -> None:
        """Write the day's dose % and LEX,8h into two slots of a float64 array. Real-time safe."""
        _telemetry_kernel(
            telemetry, dose_slot, lex_slot, self.energy_pa2s, self.carried, self._limit_energy
        )

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        self.accumulate(block)
        self.write_telemetry(self._telemetry, 0, 1)
        if out is not block:
            out[:] = block

    # -- off the hot path ---------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the filter, the energy and the carried energy."""
        self._filter_state.fill(0.0)
        self.energy_pa2s.fill(0.0)
        self.carried.fill(0.0)
        self._telemetry.fill(0.0)

    def start_day(self, carried_energy_pa2s: float = 0.0) -> None:
        """Begin a new day's count, with ``carried_energy_pa2s`` already exposed today."""
        self.energy_pa2s.fill(0.0)
        self.carried[0] = float(carried_energy_pa2s)

    @property
    def limit_energy_pa2s(self) -> float:
        """A-weighted energy of 100 % dose (``dose_limit_dba`` for 8 h), Pa²·s."""
        return self._limit_energy

    @property
    def day_energy_pa2s(self) -> float:
        """Today's A-weighted exposure energy at the louder ear, Pa²·s."""
        return float(self.carried[0] + self.energy_pa2s.max())

    @property
    def lex_8h_dba(self) -> float:
        """Today's LEX,8h so far, dB(A) (-inf before any sound)."""
        return lex_8h_from_energy(self.day_energy_pa2s)

    @property
    def dose_percent(self) -> float:
        """Today's dose so far, % of ``dose_limit_dba`` over 8 h."""
        return 100.0 * self.day_energy_pa2s / self._limit_energy

    def telemetry_summary(self) -> dict:
        """Figures for the latency report (not real-time safe)."""
        lex = self.lex_8h_dba
        return {
            "dose_percent": round(self.dose_percent, 3),
            "lex_8h_dba": None if not math.isfinite(lex) else round(lex, 2),
            "dose_limit_dba": self.dose_limit_dba,
        }
