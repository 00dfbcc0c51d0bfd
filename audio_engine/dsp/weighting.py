"""Frequency weightings A, C and Z of IEC 61672-1:2013, as digital filters.

The analogue weightings are defined in IEC 61672-1:2013 Annex E by four pole frequencies
(f1 = 20.598997 Hz, f2 = 107.65265 Hz, f3 = 737.86223 Hz, f4 = 12194.217 Hz, formulas E.1-E.6)
and normalised to 0 dB at 1 kHz (A1000 = -2.000 dB, C1000 = -0.062 dB). The bilinear transform of
that analogue filter is exact at low frequencies but compresses everything up to infinity into
the band below Nyquist, so at 44.1 kHz it falls 1.5 dB short at 10 kHz and 8 dB short at 16 kHz.
We cascade one extra second-order section whose poles and zeros are fitted (least squares on
the dB error from 10 Hz to 0.46 * sample_rate, unity gain at DC) to undo that droop; the result
stays within 0.35 dB of the Annex E design goal from 10 Hz to 20 kHz at 44.1 and 48 kHz, far
inside the class 1 acceptance limits of Table 3 (those limits are 0.7 dB at 1 kHz, 2-3 dB and
wider above 10 kHz).

Two ways to use it:

- :class:`WeightingFilter`, a streaming :class:`~audio_engine.dsp.base.Processor` (real-time
  safe; a Numba biquad cascade with its state kept between blocks);
- :func:`weight_signal`, the offline function for whole recordings (same coefficients, SciPy).

:func:`sos_filter_kernel` is the real-time biquad-cascade kernel (the dosimeter runs it too); the
one-third-octave filterbank runs the same cascade per band in its own kernel, with the same clamp
and NaN reset: a shared per-sample helper measured 2.2x slower in Numba (views per call), so
the loop is written out in both.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import scipy.signal
from numba import njit
from scipy.optimize import least_squares

from audio_engine.dsp.base import SUPPORTED_SAMPLE_RATES, Processor, check_sample_rate
from audio_engine.errors import ConfigError

Weighting = Literal["A", "C", "Z"]

#: Allowed weighting names.
WEIGHTINGS: tuple[str, ...] = ("A", "C", "Z")

#: Pole frequencies of the analogue weightings in Hz, IEC 61672-1:2013 Annex E (E.2, E.3, E.4).
F1_HZ = 20.598997
F2_HZ = 107.65265
F3_HZ = 737.86223
F4_HZ = 12194.217

#: Normalisation constants in dB: the analogue A and C responses at 1 kHz, IEC 61672-1 E.5/E.6.
A1000_DB = -2.000
C1000_DB = -0.062

#: Sample rates at which the digital filters are tested against class 1 (the band to 20 kHz
#: exists only there). Lower rates work but are only accurate up to about 0.4 * sample_rate.
CLASS1_SAMPLE_RATES: tuple[int, ...] = (44100, 48000)

#: Input samples are clamped to +-1e6 (120 dB above digital full scale): nothing real is that
#: loud, and a clamped burst decays out of the 20.6 Hz poles' memory within a fraction of a
#: second instead of leaving a 1e38 tail; it also keeps every output far inside float32 range.
INPUT_LIMIT = 1.0e6


def design_goal_db(frequency_hz: np.ndarray | float, weighting: Weighting = "A") -> np.ndarray:
    """The analogue weighting of IEC 61672-1:2013 Annex E (formulas E.1 and E.6), in dB.

    Parameters
    ----------
    frequency_hz : float or ndarray
        Frequencies in Hz, > 0.
    weighting : {"A", "C", "Z"}
        Weighting curve.

    Returns
    -------
    ndarray
        Relative response in dB, 0 dB at 1 kHz; same shape as ``frequency_hz``.
    """
    weighting = _check_weighting(weighting)
    f2 = np.square(np.asarray(frequency_hz, dtype=np.float64))
    if weighting == "Z":
        return np.zeros_like(f2)
    c = 20.0 * np.log10(F4_HZ**2 * f2 / ((f2 + F1_HZ**2) * (f2 + F4_HZ**2))) - C1000_DB
    if weighting == "C":
        return c
    # A = C-shape times the two extra high-pass poles f2, f3 (E.1 written in factors).
    extra = 10.0 * np.log10(f2 * f2 / ((f2 + F2_HZ**2) * (f2 + F3_HZ**2)))
    return c + C1000_DB + extra - A1000_DB


def _check_weighting(weighting: object) -> str:
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting={weighting!r} is not one of {list(WEIGHTINGS)}")
    return str(weighting)


def _analogue_zpk(weighting: str) -> tuple[list[float], list[float], float]:
    """Zeros, poles (rad/s) and gain of the analogue weighting, before the 1 kHz normalisation."""
    w1, w2, w3, w4 = (2.0 * math.pi * f for f in (F1_HZ, F2_HZ, F3_HZ, F4_HZ))
    if weighting == "C":
        return [0.0, 0.0], [-w1, -w1, -w4, -w4], w4**2
    return [0.0, 0.0, 0.0, 0.0], [-w1, -w1, -w4, -w4, -w2, -w3], w4**2


def _polar_biquad(radius: float, angle: float) -> np.ndarray:
    """``[1, -2 r cos(theta), r^2]``: a conjugate pair of roots at ``r e^{±j theta}``."""
    return np.array([1.0, -2.0 * radius * math.cos(angle), radius * radius])


@functools.lru_cache(maxsize=16)
def _design_sos(weighting: str, sample_rate: int) -> np.ndarray:
    """Second-order sections of the digital weighting (cached: one least-squares fit per rate)."""
    if weighting == "Z":
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    z, p, k = _analogue_zpk(weighting)
    zd, pd, kd = scipy.signal.bilinear_zpk(z, p, k, sample_rate)
    sos = scipy.signal.zpk2sos(zd, pd, kd)
    # Fit the droop-correcting biquad on a log grid; its poles and zeros are kept inside
    # radius 0.95 (a logistic map) so the section is well damped and cannot approach an
    # integrator, and its DC gain is pinned to 1 so the low-frequency bilinear match is kept.
    grid_hz = np.geomspace(10.0, min(20000.0, 0.46 * sample_rate), 300)
    target_db = design_goal_db(grid_hz, weighting)
    _, h = scipy.signal.sosfreqz(sos, worN=grid_hz, fs=sample_rate)
    base_db = 20.0 * np.log10(np.abs(h))
    base_db += target_db[np.argmin(np.abs(grid_hz - 1000.0))] - np.interp(1000.0, grid_hz, base_db)

    def correction(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        squash = 1.0 / (1.0 + np.exp(-q))
        b = _polar_biquad(0.95 * squash[0], math.pi * squash[1])
        a = _polar_biquad(0.95 * squash[2], math.pi * squash[3])
        return b * (a.sum() / b.sum()), a

    def residual(q: np.ndarray) -> np.ndarray:
        b, a = correction(q)
        _, hc = scipy.signal.freqz(b, a, worN=grid_hz, fs=sample_rate)
        return base_db + 20.0 * np.log10(np.abs(hc) + 1e-300) - target_db

    fit = least_squares(residual, x0=np.array([0.0, 1.0, 0.0, 1.0]))
    b, a = correction(fit.x)
    sos = np.vstack([sos, np.concatenate([b, a])])
    # Exact 0 dB (C: -0.062 + 0.062) at 1 kHz, the reference frequency of Table 3.
    _, h1k = scipy.signal.sosfreqz(sos, worN=[1000.0], fs=sample_rate)
    sos[0, :3] *= 10.0 ** (float(design_goal_db(1000.0, weighting)) / 20.0) / abs(h1k[0])
    return sos


def weighting_sos(weighting: Weighting, sample_rate: int) -> np.ndarray:
    """Second-order sections (SciPy layout, shape ``(sections, 6)``) of the digital weighting.

    Parameters
    ----------
    weighting : {"A", "C", "Z"}
        Weighting curve.
    sample_rate : int
        Sample rate in Hz, one of :data:`~audio_engine.dsp.base.SUPPORTED_SAMPLE_RATES`.
        Class 1 (to 20 kHz) is met at 44.1 and 48 kHz.

    Returns
    -------
    ndarray, shape (sections, 6), float64
        A fresh copy, normalised to exactly 0 dB at 1 kHz.
    """
    weighting = _check_weighting(weighting)
    sample_rate = check_sample_rate(sample_rate, SUPPORTED_SAMPLE_RATES)
    return _design_sos(weighting, sample_rate).copy()


def frequency_response_db(
    weighting: Weighting, sample_rate: int, frequency_hz: np.ndarray
) -> np.ndarray:
    """Magnitude response of the digital weighting filter at ``frequency_hz``, in dB."""
    sos = weighting_sos(weighting, sample_rate)
    _, h = scipy.signal.sosfreqz(sos, worN=np.asarray(frequency_hz, np.float64), fs=sample_rate)
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-300))


def weight_signal(signal: np.ndarray, sample_rate: int, weighting: Weighting = "A") -> np.ndarray:
    """Apply a frequency weighting to a whole recording (offline; allocates).

    Parameters
    ----------
    signal : ndarray, shape (frames,) or (frames, channels)
        Samples, any float dtype; filtered along axis 0 from a zero state.
    sample_rate : int
        Sample rate in Hz.
    weighting : {"A", "C", "Z"}
        Weighting curve.

    Returns
    -------
    ndarray, float64, same shape as ``signal``
        Identical (to float rounding) to streaming the signal through :class:`WeightingFilter`.
    """
    x = np.asarray(signal)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ConfigError(f"signal.shape={x.shape} is not (frames,) or (frames, channels)")
    if not np.all(np.isfinite(x)):
        raise ConfigError("signal contains NaN or Inf samples; a level cannot be measured")
    return scipy.signal.sosfilt(weighting_sos(weighting, sample_rate), x.astype(np.float64), axis=0)


@njit(cache=True)
def sos_filter_kernel(
    out: np.ndarray, block: np.ndarray, sos: np.ndarray, state: np.ndarray
) -> None:
    """Biquad cascade, transposed direct form II, one state per channel. Real-time safe.

    Parameters
    ----------
    out : ndarray, shape (frames, channels), float32
        Written in place; may be ``block`` itself (each sample is read before it is written).
    block : ndarray, shape (frames, channels), float32
        Input samples.
    sos : ndarray, shape (sections, 6), float64
        SciPy-layout sections ``b0 b1 b2 a0 a1 a2`` with ``a0 == 1``.
    state : ndarray, shape (channels, sections, 2), float64
        Filter memory, updated in place.

    Notes
    -----
    A non-finite sample resets that channel's memory and outputs 0, so one NaN does not poison
    every later block; inputs are clamped to +-1e6 so a huge sample never turns into Inf and
    is forgotten quickly.
    """
    frames = block.shape[0]
    channels = block.shape[1]
    sections = sos.shape[0]
    for c in range(channels):
        for n in range(frames):
            y = np.float64(block[n, c])
            if y > INPUT_LIMIT:
                y = INPUT_LIMIT
            elif y < -INPUT_LIMIT:
                y = -INPUT_LIMIT
            for s in range(sections):
                x = y
                y = sos[s, 0] * x + state[c, s, 0]
                state[c, s, 0] = sos[s, 1] * x - sos[s, 4] * y + state[c, s, 1]
                state[c, s, 1] = sos[s, 2] * x - sos[s, 5] * y
            if not math.isfinite(y) or not math.isfinite(state[c, sections - 1, 0]):
                for s in range(sections):
                    state[c, s, 0] = 0.0
                    state[c, s, 1] = 0.0
                y = 0.0
            out[n, c] = y


class WeightingFilter(Processor):
    """Streaming A-, C- or Z-weighting filter (IEC 61672-1 class 1 at 44.1 and 48 kHz).

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz.
    block_size : int
        Largest block in frames.
    channels : int
        Each channel is filtered independently.
    weighting : {"A", "C", "Z"}
        Weighting curve; "Z" is flat (a copy).

    Notes
    -----
    :meth:`process` is real-time safe (Numba kernel compiled and warmed here, no allocation);
    ``block`` and ``out`` may be the same array. Latency is 0 samples (minimum-phase IIR; its
    group delay is frequency dependent, as in any sound level meter).

    Examples
    --------
    >>> import numpy as np
    >>> f = WeightingFilter(48000, 480, 1, weighting="A")
    >>> x = np.zeros((480, 1), np.float32)
    >>> f.process(x, x)
    """

    def __init__(
        self, sample_rate: int, block_size: int, channels: int = 1, weighting: Weighting = "A"
    ) -> None:
        super().__init__(sample_rate, block_size, channels)
        self.weighting = _check_weighting(weighting)
        self._sos = np.ascontiguousarray(weighting_sos(self.weighting, self.sample_rate))
        self._state = np.zeros((self.channels, self._sos.shape[0], 2), np.float64)
        warm = np.zeros((1, self.channels), np.float32)
        sos_filter_kernel(warm, warm, self._sos, self._state)
        self._state.fill(0.0)

    @property
    def name(self) -> str:
        return f"{self.weighting}-weighting"

    def reset(self) -> None:
        self._state.fill(0.0)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        sos_filter_kernel(out, block, self._sos, self._state)
