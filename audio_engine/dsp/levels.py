"""Sound level meter: Leq, F/S time-weighted level, percentile levels, microphone calibration.

Definitions follow IEC 61672-1:2013:

- time-averaged level ``L_eq = 10 lg( mean(p_w**2) / p0**2 )`` (3.9), here on the weighted signal;
- time-weighted level ``L_F(t) = 10 lg( (1/tau) * integral p_w(x)**2 exp(-(t-x)/tau) dx / p0**2 )``
  with tau = 0.125 s (F) or 1 s (S) (3.7, 3.8), realised as a one-pole low-pass on the squared
  weighted signal with pole ``exp(-1 / (tau * sample_rate))``;
- ``L10`` / ``L90``: the time-weighted level exceeded 10 % / 90 % of the time (ISO 1996-1
  3.4.6), taken over L_F sampled every 10 ms.

Levels are in dB re digital unit RMS (full-scale RMS 1 = 0 dB) plus ``offset_db``; a
microphone's ``spl_offset_db`` from :func:`calibrate_microphone` turns them into dB SPL.

Offline functions take whole recordings; :class:`LevelMeter` is the streaming, real-time safe
meter (A/C/Z weighting, F/S time weighting, running Leq, max, and a 0.1 dB histogram of
L_F for percentiles, all preallocated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.signal
from numba import njit

from audio_engine.dsp.base import Processor
from audio_engine.dsp.octave import third_octave_levels_db
from audio_engine.dsp.weighting import Weighting, WeightingFilter, weight_signal
from audio_engine.errors import CalibrationError, ConfigError

TimeWeighting = Literal["F", "S"]

#: Exponential time constants in seconds, IEC 61672-1:2013 5.8 (F = fast, S = slow).
TIME_CONSTANT_S: dict[str, float] = {"F": 0.125, "S": 1.0}

#: Interval at which L_F is sampled for percentile statistics (a common meter setting).
PERCENTILE_INTERVAL_S = 0.010

#: Sound pressure level of a class 1 acoustic calibrator (IEC 60942): 94 dB re 20 uPa = 1 Pa.
CALIBRATOR_DB_SPL = 94.0
CALIBRATOR_HZ = 1000.0

#: Level floor in dB: what silence reads (never -inf).
FLOOR_DB = -300.0

# Histogram of the streaming meter: 0.1 dB bins from -200 to +200 dB re offset.
_HIST_LOW_DB = -200.0
_HIST_STEP_DB = 0.1
_HIST_BINS = 4000


def _db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-30))


def _check_signal(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ConfigError(f"signal.shape={x.shape} is not (frames,) or (frames, channels)")
    return x


def _check_time_weighting(time_weighting: object) -> float:
    if time_weighting not in TIME_CONSTANT_S:
        raise ConfigError(
            f"time_weighting={time_weighting!r} is not one of {list(TIME_CONSTANT_S)}"
        )
    return TIME_CONSTANT_S[str(time_weighting)]


def leq_db(
    signal: np.ndarray,
    sample_rate: int,
    weighting: Weighting = "A",
    offset_db: float = 0.0,
) -> np.ndarray | float:
    """Equivalent continuous level (LAeq for weighting "A") of a recording, in dB.

    Parameters
    ----------
    signal : ndarray, shape (frames,) or (frames, channels)
        Samples in digital units, finite.
    sample_rate : int
        Sample rate in Hz.
    weighting : {"A", "C", "Z"}
        Frequency weighting (IEC 61672-1).
    offset_db : float
        Microphone SPL offset (dB SPL at 0 dB re digital unit RMS); 0 gives dB re full scale.

    Returns
    -------
    float or ndarray, shape (channels,)
    """
    x = _check_signal(signal)
    y = weight_signal(x, sample_rate, weighting)
    level = _db(np.mean(np.square(y), axis=0)) + offset_db
    return float(level) if np.ndim(level) == 0 else level


def time_weighted_level_db(
    signal: np.ndarray,
    sample_rate: int,
    weighting: Weighting = "A",
    time_weighting: TimeWeighting = "F",
    offset_db: float = 0.0,
    interval_s: float = PERCENTILE_INTERVAL_S,
) -> np.ndarray:
    """Time-weighted level L_F / L_S (e.g. LAF) sampled every ``interval_s``, in dB.

    Returns
    -------
    ndarray, shape (samples,) or (samples, channels)
        The level at the end of each interval, starting from a meter at rest (the first
        ~5 tau read low, as on a real meter that has just been switched on).
    """
    x = _check_signal(signal)
    tau = _check_time_weighting(time_weighting)
    if not np.isfinite(interval_s) or not 0 < interval_s <= 10:
        raise ConfigError(f"interval_s={interval_s!r} is not in (0, 10] s")
    y = weight_signal(x, sample_rate, weighting)
    pole = math.exp(-1.0 / (tau * sample_rate))
    smoothed = scipy.signal.lfilter([1.0 - pole], [1.0, -pole], np.square(y), axis=0)
    step = max(1, int(round(interval_s * sample_rate)))
    return _db(smoothed[step - 1 :: step]) + offset_db


def percentile_levels_db(
    signal: np.ndarray,
    sample_rate: int,
    percents: tuple[float, ...] = (10.0, 90.0),
    weighting: Weighting = "A",
    time_weighting: TimeWeighting = "F",
    offset_db: float = 0.0,
    settle_s: float = 1.0,
) -> dict[float, float]:
    """Levels exceeded ``N`` % of the time (L10, L90 ...) of a mono recording, in dB.

    ``settle_s`` seconds of the meter's start-up are left out. Returns ``{N: L_N}``.
    """
    levels = time_weighted_level_db(signal, sample_rate, weighting, time_weighting, offset_db)
    if levels.ndim != 1:
        raise ConfigError(f"percentile levels need a mono signal, got shape {np.shape(signal)}")
    skip = int(round(settle_s / PERCENTILE_INTERVAL_S))
    if skip >= len(levels):
        raise ConfigError(f"settle_s={settle_s!r} leaves nothing of the recording")
    for p in percents:
        if not 0 <= p <= 100:
            raise ConfigError(f"percent={p!r} is not in 0..100")
    kept = levels[skip:]
    # Exceeded N % of the time is the (100 - N)th percentile.
    return {float(p): float(np.percentile(kept, 100.0 - p)) for p in percents}


@dataclass(frozen=True)
class MicCalibration:
    """Result of a calibrator measurement.

    Attributes
    ----------
    spl_offset_db : float
        dB SPL that a signal of 0 dB re digital unit RMS represents (add to any level).
    sensitivity_dbfs_per_pa : float
        Digital RMS level (dB re full scale RMS) that 1 Pa (93.98 dB SPL) produces.
    tone_level_db : float
        Measured 1 kHz band level of the calibrator tone, dB re digital unit RMS.
    tone_share_db : float
        1 kHz band level minus broadband level (0 dB = nothing but the tone).
    spread_db : float
        Max - min of the band level over 0.5 s segments (stability of the reading).
    """

    spl_offset_db: float
    sensitivity_dbfs_per_pa: float
    tone_level_db: float
    tone_share_db: float
    spread_db: float


def calibrate_microphone(
    recording: np.ndarray,
    sample_rate: int,
    calibrator_db_spl: float = CALIBRATOR_DB_SPL,
    settle_s: float = 0.5,
    max_spread_db: float = 0.3,
) -> MicCalibration:
    """Microphone SPL offset from a recording of a 1 kHz acoustic calibrator.

    Parameters
    ----------
    recording : ndarray, shape (frames,)
        At least ``settle_s + 1`` s of the microphone in the calibrator.
    sample_rate : int
        Sample rate in Hz.
    calibrator_db_spl : float
        The calibrator's stated level (94 or 114 dB SPL).
    settle_s : float
        Seconds left out at the start (the calibrator and the band filter settling).
    max_spread_db : float
        Largest allowed variation of the 1 kHz level over 0.5 s segments.

    Raises
    ------
    CalibrationError
        If the recording is too short, clipped, does not contain a dominant 1 kHz tone (the
        1 kHz band must hold all but 1 dB of the broadband level) or is unsteady.
    """
    if not np.isfinite(calibrator_db_spl) or not 60.0 <= calibrator_db_spl <= 140.0:
        raise ConfigError(f"calibrator_db_spl={calibrator_db_spl!r} is not in 60..140 dB SPL")
    x = _check_signal(recording)
    if x.ndim != 1:
        raise ConfigError(f"recording.shape={x.shape} is not (frames,): one microphone at a time")
    if not np.all(np.isfinite(x)):
        raise CalibrationError("calibrator recording contains NaN or Inf samples")
    seconds = len(x) / sample_rate
    if seconds < settle_s + 1.0:
        raise CalibrationError(
            f"calibrator recording is {seconds:.2f} s; at least {settle_s + 1.0:.1f} s needed"
        )
    peak = float(np.max(np.abs(x)))
    if peak >= 0.999:
        raise CalibrationError(
            f"calibrator recording clips (peak {peak:.3f} of full scale); lower the input gain"
        )
    skip = int(round(settle_s * sample_rate))
    _, tone = third_octave_levels_db(x, sample_rate, 1000, 1000, settle_s=settle_s)
    broadband = float(_db(np.mean(np.square(x[skip:]))))
    share = float(tone[0]) - broadband
    if share < -1.0:
        raise CalibrationError(
            f"no dominant 1 kHz calibrator tone: the 1 kHz band is {share:.1f} dB below the "
            "broadband level (allowed: > -1 dB); is the calibrator on and the mic seated?"
        )
    half = sample_rate // 2
    segments = [x[s : s + half] for s in range(skip, len(x) - half + 1, half)]
    segment_db = [float(_db(np.mean(np.square(s)))) for s in segments]
    spread = max(segment_db) - min(segment_db)
    if spread > max_spread_db:
        raise CalibrationError(
            f"calibrator level varies by {spread:.2f} dB over the recording "
            f"(allowed: {max_spread_db} dB); hold the microphone still"
        )
    offset = calibrator_db_spl - float(tone[0])
    # 1 Pa is 20 lg(1 / 20e-6) = 93.98 dB SPL.
    pa_db_spl = 20.0 * math.log10(1.0 / 20e-6)
    return MicCalibration(
        spl_offset_db=offset,
        sensitivity_dbfs_per_pa=pa_db_spl - offset,
        tone_level_db=float(tone[0]),
        tone_share_db=share,
        spread_db=spread,
    )


@njit(cache=True)
def _meter_kernel(
    weighted: np.ndarray,
    histogram: np.ndarray,
    state: np.ndarray,
    pole: float,
    interval: int,
    offset_db: float,
) -> None:
    """Time-weight a block of weighted samples and accumulate Leq, max and the histogram.

    ``state`` holds, in order: smoothed mean square, sum of squares, sample count, samples
    since the last histogram entry, max time-weighted mean square.
    """
    gain = 1.0 - pole
    for n in range(weighted.shape[0]):
        v = np.float64(weighted[n, 0])
        square = v * v
        if not (square - square == 0.0):  # NaN or Inf: count as silence
            square = 0.0
        state[0] = pole * state[0] + gain * square
        state[1] += square
        state[2] += 1.0
        if state[0] > state[4]:
            state[4] = state[0]
        state[3] += 1.0
        if state[3] >= interval:
            state[3] = 0.0
            level = 10.0 * math.log10(max(state[0], 1e-30)) + offset_db
            k = int((level - _HIST_LOW_DB) / _HIST_STEP_DB)
            if k < 0:
                k = 0
            elif k >= histogram.shape[0]:
                k = histogram.shape[0] - 1
            histogram[k] += 1


class LevelMeter(Processor):
    """Streaming sound level meter of one channel: LAeq, LAF, LAFmax, L10/L90.

    Parameters
    ----------
    sample_rate, block_size : int
        As for every processor; ``channels`` is 1.
    weighting : {"A", "C", "Z"}
        Frequency weighting.
    time_weighting : {"F", "S"}
        Exponential time weighting, 0.125 s or 1 s.
    offset_db : float
        Microphone SPL offset, dB (0 gives dB re full scale).

    Notes
    -----
    :meth:`process` is real-time safe and passes the input through unchanged to ``out`` (a
    meter tap can sit anywhere in a pipeline); the readings (:attr:`leq_db`, :attr:`level_db`,
    :attr:`max_db`, :meth:`percentile_db`) are read from another thread or after the run.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        channels: int = 1,
        weighting: Weighting = "A",
        time_weighting: TimeWeighting = "F",
        offset_db: float = 0.0,
    ) -> None:
        super().__init__(sample_rate, block_size, channels)
        if self.channels != 1:
            raise ConfigError(f"channels={channels!r}: a LevelMeter measures 1 channel")
        if not np.isfinite(offset_db) or not -100.0 <= offset_db <= 200.0:
            raise ConfigError(f"offset_db={offset_db!r} is not a finite number in -100..200 dB")
        tau = _check_time_weighting(time_weighting)
        self.weighting = weighting
        self.time_weighting = time_weighting
        self.offset_db = float(offset_db)
        self._filter = WeightingFilter(sample_rate, block_size, 1, weighting)
        self._weighted = np.zeros((self.block_size, 1), np.float32)
        self._pole = math.exp(-1.0 / (tau * self.sample_rate))
        self._interval = max(1, int(round(PERCENTILE_INTERVAL_S * self.sample_rate)))
        self._histogram = np.zeros(_HIST_BINS, np.int64)
        self._state = np.zeros(5, np.float64)
        _meter_kernel(
            self._weighted[:1], self._histogram, self._state, self._pole, self._interval, 0.0
        )
        self.reset()

    def reset(self) -> None:
        self._filter.reset()
        self._histogram.fill(0)
        self._state.fill(0.0)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        frames = block.shape[0]
        weighted = self._weighted[:frames]
        self._filter.process(block, weighted)
        _meter_kernel(
            weighted, self._histogram, self._state, self._pole, self._interval, self.offset_db
        )
        if out is not block:
            out[:] = block

    @property
    def leq_db(self) -> float:
        """Equivalent continuous level since the last reset, dB."""
        if self._state[2] == 0:
            return FLOOR_DB
        return float(_db(self._state[1] / self._state[2])) + self.offset_db

    @property
    def level_db(self) -> float:
        """Current time-weighted level (LAF for A/F), dB."""
        return float(_db(self._state[0])) + self.offset_db

    @property
    def max_db(self) -> float:
        """Highest time-weighted level since the last reset (LAFmax), dB."""
        return float(_db(self._state[4])) + self.offset_db

    def percentile_db(self, percent: float) -> float:
        """Level exceeded ``percent`` % of the time (L10: ``percent=10``), 0.1 dB resolution."""
        if not 0 <= percent <= 100:
            raise ConfigError(f"percent={percent!r} is not in 0..100")
        counts = self._histogram
        total = int(counts.sum())
        if total == 0:
            return FLOOR_DB
        # Walk down from the top until `percent` % of the entries are above.
        above = np.cumsum(counts[::-1])
        k = int(np.searchsorted(above, max(percent / 100.0 * total, 1.0), side="left"))
        k = min(k, len(counts) - 1)
        return _HIST_LOW_DB + (len(counts) - 1 - k + 0.5) * _HIST_STEP_DB
