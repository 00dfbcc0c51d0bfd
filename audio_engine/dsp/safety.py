"""The last stage before any amplifier or earpiece: a per-channel ceiling no command can cross.

:class:`OutputCeiling` is generic: masking zones use it as an RMS ceiling derived from a dBA
limit and the zone's calibration, hearing protection and the reliability watchdog can use it
as a peak ceiling. It combines a smooth limiter (fast attack, slow release, so normal
programme is only turned down, never distorted) with a hard per-sample bound that makes the
guarantee unconditional (see :func:`audio_engine.dsp.masking_kernels.ceiling_limit`).

What is guaranteed, per channel, for any input including NaN, Inf and full-scale garbage:

* ``|y[n]| <= peak_limit`` for every sample;
* in ``"rms"`` mode the exponentially averaged mean square of the output, with the time
  constant of a sound level meter's *Fast* weighting (125 ms, IEC 61672-1:2013, 5.8), never
  exceeds the RMS ceiling: a sound level meter at the calibrated position could never read a
  higher LAF than the ceiling, provided the calibration offset is right;
* every output sample is finite.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from audio_engine.dsp.base import Processor
from audio_engine.dsp.masking_kernels import ceiling_limit
from audio_engine.errors import ConfigError

#: Time constant of the *Fast* time weighting of a sound level meter, IEC 61672-1:2013, 5.8.
FAST_TIME_CONSTANT_S = 0.125

#: Default peak allowance above an RMS ceiling: Gaussian noise exceeds 5 sigma (14 dB) on
#: fewer than 6e-7 of its samples, so masking noise is practically never clipped by it.
DEFAULT_CREST_FACTOR_DB = 15.0

#: No ceiling may be above digital full scale.
MAX_CEILING_DBFS = 0.0

#: Below this a ceiling is silence in practice (float32 masking noise is far above it).
MIN_CEILING_DBFS = -150.0


def _per_channel(value, channels: int, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or arr.shape[0] not in (1, channels):
        raise ConfigError(f"{name} has shape {arr.shape}; allowed: a scalar or {channels} values")
    return np.broadcast_to(arr, (channels,)).copy()


class OutputCeiling(Processor):
    """Per-channel RMS or peak ceiling with a hard guarantee.

    Parameters
    ----------
    sample_rate, block_size, channels : int
        As every :class:`~audio_engine.dsp.base.Processor`.
    ceiling_dbfs : float or array_like (channels,), optional
        The ceiling in dBFS (RMS in ``"rms"`` mode, peak in ``"peak"`` mode), in
        ``MIN_CEILING_DBFS..0``. Give this or ``ceiling_linear``.
    ceiling_linear : float or array_like (channels,), optional
        The same ceiling as a linear amplitude in ``10**(-150/20)..1``.
    mode : {"rms", "peak"}
        What the ceiling limits.
    crest_factor_db : float
        In ``"rms"`` mode, the peak bound is the RMS ceiling plus this many dB (capped at
        0 dBFS); 0..30 dB.
    rms_time_constant_s : float
        Averaging time of the mean square the ceiling bounds (default: Fast, 125 ms).
    attack_s, release_s : float
        Time constants of the smooth gain.

    Notes
    -----
    Real-time safe. ``block`` and ``out`` may be the same array. ``channels == output_channels``.
    No latency (no look-ahead): the hard bound, not a look-ahead, makes the guarantee.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        channels: int = 1,
        ceiling_dbfs=None,
        ceiling_linear=None,
        mode: Literal["rms", "peak"] = "rms",
        crest_factor_db: float = DEFAULT_CREST_FACTOR_DB,
        rms_time_constant_s: float = FAST_TIME_CONSTANT_S,
        attack_s: float = 0.005,
        release_s: float = 0.5,
    ):
        super().__init__(sample_rate, block_size, channels)
        if mode not in ("rms", "peak"):
            raise ConfigError(f"mode={mode!r} is not one of 'rms', 'peak'")
        if (ceiling_dbfs is None) == (ceiling_linear is None):
            raise ConfigError("give exactly one of ceiling_dbfs and ceiling_linear")
        if not (np.isfinite(crest_factor_db) and 0.0 <= crest_factor_db <= 30.0):
            raise ConfigError(f"crest_factor_db={crest_factor_db!r} is not in 0..30 dB")
        for name, value, lo, hi in (
            ("rms_time_constant_s", rms_time_constant_s, 0.001, 10.0),
            ("attack_s", attack_s, 0.0001, 1.0),
            ("release_s", release_s, 0.001, 10.0),
        ):
            if not (np.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"{name}={value!r} is not in {lo}..{hi} s")
        self.mode = mode
        self.crest_factor_db = float(crest_factor_db)
        fs = float(self.sample_rate)
        self._alpha_ms = float(np.exp(-1.0 / (rms_time_constant_s * fs)))
        self._attack = float(np.exp(-1.0 / (attack_s * fs)))
        self._release = float(np.exp(-1.0 / (release_s * fs)))
        self.ceiling_dbfs = np.zeros(self.channels)
        self._ms_limit = np.zeros(self.channels)
        self._peak_limit = np.zeros(self.channels)
        self._ms_in = np.zeros(self.channels)
        self._ms_out = np.zeros(self.channels)
        self._gain = np.ones(self.channels)
        self.counters = np.zeros((self.channels, 2), np.int64)
        if ceiling_linear is not None:
            lin = _per_channel(ceiling_linear, self.channels, "ceiling_linear")
            if not np.all(np.isfinite(lin)) or np.any(lin <= 0.0):
                raise ConfigError(
                    f"ceiling_linear={ceiling_linear!r} is not in {10 ** (MIN_CEILING_DBFS / 20):.3g}..1"
                )
            ceiling_dbfs = 20.0 * np.log10(lin)
        self.set_ceiling_dbfs(ceiling_dbfs)
        # Warm the kernel so nothing compiles while audio runs.
        scratch = np.zeros((1, self.channels), np.float32)
        ceiling_limit(
            scratch,
            scratch,
            self._ms_limit,
            self._peak_limit,
            self._alpha_ms,
            self._attack,
            self._release,
            self._ms_in.copy(),
            self._ms_out.copy(),
            self._gain.copy(),
            self.counters.copy(),
        )

    def set_ceiling_dbfs(self, ceiling_dbfs, channel: int | None = None) -> None:
        """Set the ceiling of every channel (or one ``channel``), in dBFS. Not real-time.

        Raises
        ------
        ConfigError
            If a value is not finite or outside ``MIN_CEILING_DBFS..0`` dBFS.
        """
        if channel is None:
            values = _per_channel(ceiling_dbfs, self.channels, "ceiling_dbfs")
            idx = np.arange(self.channels)
        else:
            if not 0 <= int(channel) < self.channels:
                raise ConfigError(f"channel={channel!r} is not in 0..{self.channels - 1}")
            values = np.array([float(ceiling_dbfs)])
            idx = np.array([int(channel)])
        bad = ~np.isfinite(values) | (values < MIN_CEILING_DBFS) | (values > MAX_CEILING_DBFS)
        if np.any(bad):
            raise ConfigError(
                f"ceiling_dbfs={ceiling_dbfs!r} is not in {MIN_CEILING_DBFS:g}..{MAX_CEILING_DBFS:g} dBFS"
            )
        for i, v in zip(idx, values, strict=True):
            self.ceiling_dbfs[i] = v
            if self.mode == "rms":
                self._ms_limit[i] = 10.0 ** (v / 10.0)
                self._peak_limit[i] = min(1.0, 10.0 ** ((v + self.crest_factor_db) / 20.0))
            else:
                self._ms_limit[i] = np.inf
                self._peak_limit[i] = 10.0 ** (v / 20.0)

    @property
    def limited_samples(self) -> np.ndarray:
        """Per channel, samples the hard bound had to cut (0 in normal operation)."""
        return self.counters[:, 0].copy()

    @property
    def nonfinite_samples(self) -> np.ndarray:
        """Per channel, non-finite input samples replaced by silence."""
        return self.counters[:, 1].copy()

    @property
    def gain_reduction_db(self) -> np.ndarray:
        """Per channel, the smooth limiter's present gain reduction in dB (>= 0)."""
        return -20.0 * np.log10(np.maximum(self._gain, 1e-12))

    def reset(self) -> None:
        """Clear the limiter's detector, gain and counters, but not the output meter.

        The output's mean square is the memory of sound already in the room, still decaying
        with the Fast time constant: forgetting it on a reset would let a restarted source lift
        the level above the ceiling while the room is still above it. Use :meth:`forget_output`
        only when the output is known to have been silent (a new room, a test).
        """
        self._ms_in.fill(0.0)
        self._gain.fill(1.0)
        self.counters.fill(0)
        # A poisoned meter is unknown: assume the room is at the ceiling (0 without an RMS one).
        unknown = ~np.isfinite(self._ms_out)
        self._ms_out[unknown] = np.where(np.isfinite(self._ms_limit), self._ms_limit, 0.0)[unknown]

    def forget_output(self) -> None:
        """Also clear the output meter (only when the output has really been silent)."""
        self.reset()
        self._ms_out.fill(0.0)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        ceiling_limit(
            out,
            block,
            self._ms_limit,
            self._peak_limit,
            self._alpha_ms,
            self._attack,
            self._release,
            self._ms_in,
            self._ms_out,
            self._gain,
            self.counters,
        )
