"""Office sound masking: shaped, decorrelated, never-repeating noise for N zones, with a ceiling.

:class:`MaskingGenerator` is a :class:`~audio_engine.dsp.base.Processor` with one (ignored)
input channel and one output channel per zone. Each zone's noise is synthesised in the
frequency domain: every hop, a fresh random spectrum (uniform real and imaginary parts from the
zone's own xoshiro256** stream) is multiplied by the zone's shaping magnitude, inverse-FFT'd and
overlap-added with a square-root Hann window at 50 % overlap. Frames are independent and the
squared window sums to one, so the output is stationary noise whose power spectrum is the
shaping magnitude squared (smeared by the window's main lobe, which the design corrects for) and
whose random stream never repeats (period 2**256 - 1 per zone). Zones use different seeds and
are therefore mutually uncorrelated.

Levels are in dBA at the zone's reference listener position and map to output gain through the
calibration offset: ``output_rms_dbfs = level_dba - spl_offset_db`` (the unit-gain noise is
normalised to 0 dBFS RMS after the zone's EQ). Every level change ramps linearly in dB over
``ramp_s`` (>= 1 s), start and stop fade with a raised cosine, and a fault (a non-finite sample
or state) fades the zone to silence. The last step of :meth:`MaskingGenerator.process` is an
:class:`~audio_engine.dsp.safety.OutputCeiling` per zone at ``ceiling_dba - spl_offset_db``
dBFS RMS (Fast averaging) that no level, EQ, command or fault can get past.
"""

from __future__ import annotations

import numpy as np

from audio_engine.dsp.bands import band_edges_hz, band_index, exact_centre_hz
from audio_engine.dsp.base import Processor, check_channels
from audio_engine.dsp.masking_kernels import (
    apply_gains,
    overlap_add,
    random_spectra,
    splitmix64_seed,
)
from audio_engine.dsp.safety import OutputCeiling
from audio_engine.errors import ConfigError

#: Default hard ceiling per zone in dBA, as the issue asks. Design texts put open-plan masking
#: in the low-to-mid 40s dBA and treat levels near 50 dB as the upper limit of acceptability,
#: where the masking becomes the annoyance; 48 dBA leaves the adaptive rule room below that.
DEFAULT_CEILING_DBA = 48.0

#: Highest ceiling a site may configure, dBA: above this masking is noise, not masking.
MAX_CEILING_DBA = 55.0

#: Default calibration offset (dBA at the listener for 0 dBFS RMS at the zone output) when a
#: zone has no calibration: a conservative guess for a ceiling masking loudspeaker on a 1:1
#: amplifier; a site sets its own in the config and calibration replaces it.
DEFAULT_SPL_OFFSET_DB = 90.0

#: Level steps facility staff can set, in dB.
LEVEL_STEP_DB = 0.5

#: Shortest allowed level ramp, s (the issue: every change smoothed over >= 1 s).
MIN_RAMP_S = 1.0

#: Largest per-band EQ a zone may apply, dB.
MAX_EQ_DB = 20.0

#: Zones synthesised together in one batched inverse FFT. Larger sites are split into groups
#: whose synthesis hops are staggered over the hop, so no single block carries every zone's FFT
#: (the per-block cost stays flat instead of peaking once per hop).
ZONES_PER_GROUP = 8

#: Slope of the roll-off outside the target's band range, dB/octave: steep enough that the
#: outer bands do not leak into the first and last target bands.
_OUTSIDE_SLOPE_DB_PER_OCTAVE = 24.0


def fft_size_for(sample_rate: int) -> int:
    """FFT length of the synthesis: about 11.7 Hz resolution at 48 kHz, 7.8 Hz at 16 kHz, so the
    narrowest target band (100 Hz, 23 Hz wide) spans at least two bins."""
    if sample_rate >= 32000:
        return 4096
    if sample_rate >= 16000:
        return 2048
    return 1024


def synthesis_window(n_fft: int) -> np.ndarray:
    """Square root of the periodic Hann window: its square sums to exactly 1 at 50 % overlap."""
    n = np.arange(n_fft)
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft))


def _window_power_kernel(window: np.ndarray, half_width: int = 4, oversample: int = 8):
    """Power spectrum of the window at ``oversample`` points per bin, for ±half_width bins,
    normalised to unit sum per bin: how one bin's power spreads in continuous frequency."""
    n_fft = window.shape[0]
    offsets = np.arange(-half_width * oversample, half_width * oversample + 1) / oversample
    phase = np.exp(-2j * np.pi * np.outer(offsets, np.arange(n_fft)) / n_fft)
    power = np.abs(phase @ window) ** 2
    return offsets, power / power.sum() * oversample


def design_magnitude(
    nominal_hz: np.ndarray,
    level_db: np.ndarray,
    sample_rate: int,
    n_fft: int,
    iterations: int = 8,
) -> np.ndarray:
    """Shaping magnitude per rfft bin whose noise has the given one-third-octave band levels.

    Parameters
    ----------
    nominal_hz : ndarray (bands,)
        Consecutive nominal one-third-octave centres (from :mod:`audio_engine.dsp.bands`).
    level_db : ndarray (bands,)
        Relative band levels in dB (only differences matter).
    sample_rate : int
        Hz.
    n_fft : int
        FFT length of the synthesis.
    iterations : int
        Corrections of the band powers (the window smears the spectrum by about one bin).

    Returns
    -------
    ndarray (n_fft // 2 + 1,)
        Magnitude with zero DC and Nyquist, scaled so the synthesised noise has RMS 1.

    Notes
    -----
    The power density is interpolated linearly in dB over log frequency between band centres
    (smooth, so no audible spectral steps), continued flat past the outer centres and rolled off
    outside the band range. Each iteration predicts the band powers the synthesis produces
    (the window's power spectrum convolved with the bins, integrated over the exact IEC 61260-1
    band edges) and corrects the density by the error at each centre. Not real-time.
    """
    nominal_hz = np.asarray(nominal_hz, dtype=np.float64)
    level_db = np.asarray(level_db, dtype=np.float64)
    x = np.array([band_index(float(f)) for f in nominal_hz])
    centre = exact_centre_hz(x)
    lower, upper = band_edges_hz(x)
    bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    f = np.arange(bins) * df
    logf = np.log(np.maximum(f, df / 2))
    density_db = level_db - 10.0 * np.log10(upper - lower)
    roll = np.zeros(bins)
    below, above = f < lower[0], f > upper[-1]
    roll[below] = _OUTSIDE_SLOPE_DB_PER_OCTAVE * np.log2(np.maximum(f[below], df / 2) / lower[0])
    roll[above] = -_OUTSIDE_SLOPE_DB_PER_OCTAVE * np.log2(f[above] / upper[-1])
    window = synthesis_window(n_fft)
    offsets, kernel = _window_power_kernel(window)
    # Fine frequency grid (oversample points per bin) on which the smeared density is summed.
    oversample = int(round(1.0 / (offsets[1] - offsets[0])))
    fine_f = np.arange(bins * oversample) * (df / oversample) - df / 2
    for _ in range(iterations + 1):
        power = 10.0 ** ((np.interp(logf, np.log(centre), density_db) + roll) / 10.0)
        power[0] = 0.0
        power[-1] = 0.0
        upsampled = np.zeros(fine_f.shape[0])
        upsampled[oversample // 2 :: oversample] = power
        fine = np.convolve(upsampled, kernel, mode="same")
        cumulative = np.concatenate(([0.0], np.cumsum(fine)))
        lo_i = np.clip(np.searchsorted(fine_f, lower), 0, fine.shape[0])
        hi_i = np.clip(np.searchsorted(fine_f, upper), 0, fine.shape[0])
        band_power = cumulative[hi_i] - cumulative[lo_i]
        achieved_db = 10.0 * np.log10(np.maximum(band_power, 1e-300))
        error_db = level_db - achieved_db
        error_db -= error_db.mean()
        density_db = density_db + error_db
    magnitude = np.sqrt(power)
    # Frame variance of irfft of magnitude * (u + iv), u, v ~ U[-1, 1): (4 / 3N^2) sum |m_k|^2.
    variance = 4.0 / (3.0 * n_fft**2) * float(np.sum(magnitude[1:-1] ** 2))
    return magnitude / np.sqrt(variance)


def quantize_level_dba(level_dba: float, step_db: float = LEVEL_STEP_DB) -> float:
    """Round a level to the nearest ``step_db`` (0.5 dB), ties away from zero."""
    return float(np.sign(level_dba) * np.floor(abs(level_dba) / step_db + 0.5) * step_db)


class MaskingGenerator(Processor):
    """N zones of shaped, decorrelated masking noise with ramps, fades and a hard ceiling.

    Parameters
    ----------
    sample_rate, block_size : int
        As every processor.
    zones : int
        Output channels, 1..64 (one per zone amplifier).
    target_nominal_hz, target_level_db : array_like (bands,)
        The target one-third-octave curve (relative dB on consecutive nominal centres), e.g.
        from ``calibration/masking_target_default.csv``.
    level_dba : float or array_like (zones,)
        Initial level per zone at the reference listener position, dBA.
    ceiling_dba : float or array_like (zones,)
        Hard ceiling per zone, dBA, at most :data:`MAX_CEILING_DBA`.
    spl_offset_db : float or array_like (zones,)
        Calibration: dBA at the listener when the zone's output is 0 dBFS RMS.
    seed : int
        Base seed; zone ``z`` uses stream ``seed * 1000003 + z``.
    ramp_s, fade_in_s, fade_out_s : float
        Duration of a level change (>= 1 s), of the start fade and of the stop/fault fade.
    start : bool
        Start fading in at once (otherwise call :meth:`start`).

    Notes
    -----
    :meth:`process` is real-time safe after construction: the input block is ignored, ``out``
    (frames, zones) is written. Setters (:meth:`set_zone_level_dba`, :meth:`set_zone_eq_db`,
    :meth:`set_zone_calibration`, :meth:`start`, :meth:`stop`) are control-thread calls: they
    compute off the hot path and only store a few numbers or one row of an array.

    Examples
    --------
    >>> import numpy as np
    >>> g = MaskingGenerator(48000, 480, 2, [500, 630, 800, 1000], [0, -1.7, -3.3, -5],
    ...                      level_dba=42.0, spl_offset_db=90.0, fade_in_s=0.0)
    >>> audio = g.render(1.0)
    >>> audio.shape
    (48000, 2)
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        zones: int,
        target_nominal_hz,
        target_level_db,
        level_dba=40.0,
        ceiling_dba=DEFAULT_CEILING_DBA,
        spl_offset_db=DEFAULT_SPL_OFFSET_DB,
        seed: int = 0,
        ramp_s: float = 2.0,
        fade_in_s: float = 5.0,
        fade_out_s: float = 3.0,
        start: bool = True,
    ):
        super().__init__(sample_rate, block_size, 1)
        self.zones = check_channels(zones, "zones")
        self.output_channels = self.zones
        nominal = np.asarray(target_nominal_hz, dtype=np.float64).ravel()
        target = np.asarray(target_level_db, dtype=np.float64).ravel()
        if nominal.shape != target.shape or nominal.shape[0] < 2:
            raise ConfigError(
                f"target curve has {nominal.shape[0]} frequencies and {target.shape[0]} levels; "
                "allowed: the same number, at least 2"
            )
        try:
            x = np.array([band_index(float(f)) for f in nominal])
        except ValueError as exc:
            raise ConfigError(f"target curve: {exc}") from None
        if np.any(np.diff(x) != 1):
            raise ConfigError(
                f"target curve frequencies {nominal.tolist()} are not consecutive one-third-octave bands"
            )
        upper_hz = float(band_edges_hz(x[-1])[1])
        if upper_hz >= self.sample_rate / 2:
            raise ConfigError(
                f"target curve reaches {nominal[-1]:g} Hz (upper edge {upper_hz:.0f} Hz); allowed: "
                f"bands below Nyquist = {self.sample_rate / 2:g} Hz at sample_rate={self.sample_rate}"
            )
        if not np.all(np.isfinite(target)) or np.ptp(target) > 60.0:
            raise ConfigError(
                f"target curve levels {target.tolist()} must be finite and span at most 60 dB"
            )
        self.target_nominal_hz = nominal
        self.target_level_db = target
        if seed is None or isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ConfigError(f"seed={seed!r} is not an integer")
        self.seed = int(seed)
        self.ramp_s = self._check_time("ramp_s", ramp_s, MIN_RAMP_S, 600.0)
        self.fade_in_s = self._check_time("fade_in_s", fade_in_s, 0.0, 600.0)
        self.fade_out_s = self._check_time("fade_out_s", fade_out_s, 0.0, 600.0)
        # Fade-out of a faulted zone: the stop fade, but never a cut shorter than 10 ms.
        self._fault_step = 1.0 / (max(self.fade_out_s, 0.01) * self.sample_rate)

        self.n_fft = fft_size_for(self.sample_rate)
        self.hop = self.n_fft // 2
        bins = self.n_fft // 2 + 1
        self._window = synthesis_window(self.n_fft)
        self._magnitude = np.zeros((self.zones, bins))
        self._spectrum = np.zeros((self.zones, bins), np.complex128)
        self._frames = np.zeros((self.zones, self.n_fft))
        self._tail = np.zeros((self.zones, self.hop))
        self._hop_buffer = np.zeros((self.zones, self.hop))
        self._rng = np.zeros((self.zones, 4), np.uint64)

        self.eq_db = np.zeros((self.zones, nominal.shape[0]))
        self.spl_offset_db = self._per_zone(spl_offset_db, "spl_offset_db", 40.0, 140.0)
        self.ceiling_dba = self._per_zone(ceiling_dba, "ceiling_dba", 0.0, MAX_CEILING_DBA)
        self.requested_level_dba = np.zeros(self.zones)
        self.level_dba = np.zeros(self.zones)  # after quantisation and the ceiling
        self._gain = np.zeros(self.zones)
        self._gain_target = np.zeros(self.zones)
        self._gain_ratio = np.ones(self.zones)
        self._fade = np.zeros(self.zones)
        self._fade_step = np.zeros(self.zones)
        self.faults = np.zeros(self.zones, np.int64)
        self.running = np.zeros(self.zones, bool)

        self.ceiling = OutputCeiling(
            self.sample_rate,
            self.block_size,
            self.zones,
            ceiling_dbfs=np.minimum(self.ceiling_dba - self.spl_offset_db, 0.0),
        )
        self._unlimited = np.zeros((self.block_size, self.zones), np.float32)
        self._groups = self._make_groups()
        self._base_magnitude = design_magnitude(nominal, target, self.sample_rate, self.n_fft)
        self._magnitude[:] = self._base_magnitude
        levels = self._per_zone(level_dba, "level_dba", 0.0, 140.0)
        for z in range(self.zones):
            self._apply_level(z, levels[z], immediate=True)
        self.reset()
        # Warm the kernels (compiled and cached) so nothing compiles while audio runs.
        apply_gains(
            self._groups[0].raw[:1],
            self._hop_buffer[: self._groups[0].raw.shape[1]],
            0,
            self._gain.copy(),
            self._gain_target.copy(),
            self._gain_ratio.copy(),
            self._fade.copy(),
            self._fade_step.copy(),
            self.faults.copy(),
            self._fault_step,
        )
        if start:
            self.start()

    # -- validation helpers -------------------------------------------------------------------
    @classmethod
    def from_site(
        cls, site, sample_rate: int | None = None, block_size: int | None = None, **kwargs
    ):
        """A generator for every zone of a site config: targets, levels, ceilings, calibration
        offsets, seed, ramps and each zone's EQ, as the site says.

        Parameters
        ----------
        site : SiteConfig
            From :func:`audio_engine.site.load_site_config`.
        sample_rate, block_size : int, optional
            Default to the site's own.
        **kwargs
            Passed on to the constructor (a subclass's own options).
        """
        zones = site.zones
        generator = cls(
            site.sample_rate if sample_rate is None else sample_rate,
            site.block_size if block_size is None else block_size,
            len(zones),
            site.target_nominal_hz,
            site.target_level_db,
            level_dba=[z.level_dba for z in zones],
            ceiling_dba=[z.ceiling_dba for z in zones],
            spl_offset_db=[z.spl_offset_db for z in zones],
            seed=site.seed,
            ramp_s=site.ramp_s,
            fade_in_s=site.fade_in_s,
            fade_out_s=site.fade_out_s,
            **kwargs,
        )
        for index, zone in enumerate(zones):
            if any(zone.eq_db):
                generator.set_zone_eq_db(index, zone.eq_db)
        return generator

    @staticmethod
    def _check_time(name: str, value, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ConfigError(f"{name}={value!r} is not a number in {lo:g}..{hi:g} s")
        if not (np.isfinite(value) and lo <= value <= hi):
            raise ConfigError(f"{name}={value!r} is not in {lo:g}..{hi:g} s")
        return float(value)

    def _per_zone(self, value, name: str, lo: float, hi: float) -> np.ndarray:
        try:
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} is not a number in {lo:g}..{hi:g}") from None
        if arr.ndim != 1 or arr.shape[0] not in (1, self.zones):
            raise ConfigError(
                f"{name} has {arr.shape[0]} values; allowed: one or one per zone ({self.zones})"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < lo) or np.any(arr > hi):
            raise ConfigError(f"{name}={value!r} is not in {lo:g}..{hi:g}")
        return np.broadcast_to(arr, (self.zones,)).copy()

    def _check_zone(self, zone) -> int:
        if isinstance(zone, bool) or not isinstance(zone, int | np.integer):
            raise ConfigError(f"zone={zone!r} is not an integer in 0..{self.zones - 1}")
        if not 0 <= int(zone) < self.zones:
            raise ConfigError(f"zone={zone!r} is not in 0..{self.zones - 1}")
        return int(zone)

    # -- control (not real-time) --------------------------------------------------------------
    def _apply_level(self, zone: int, level_dba: float, immediate: bool = False) -> float:
        self.requested_level_dba[zone] = level_dba
        # Quantise first, then clamp down onto the 0.5 dB grid under the ceiling.
        applied = quantize_level_dba(level_dba)
        ceiling = self.ceiling_dba[zone]
        if applied > ceiling:
            applied = np.floor(ceiling / LEVEL_STEP_DB) * LEVEL_STEP_DB
        self.level_dba[zone] = applied
        target = 10.0 ** ((applied - self.spl_offset_db[zone]) / 20.0)
        current = self._gain[zone]
        # A silent zone (faded out, not fading in) can jump: nobody hears the step.
        silent = self._fade[zone] == 0.0 and self._fade_step[zone] <= 0.0
        if immediate or silent or not (np.isfinite(current) and current > 0.0):
            self._gain[zone] = target
            self._gain_ratio[zone] = 1.0
        else:
            change_db = abs(20.0 * np.log10(target / current))
            self._gain_ratio[zone] = 10.0 ** (change_db / (20.0 * self.ramp_s * self.sample_rate))
        self._gain_target[zone] = target
        return float(applied)

    def set_zone_level_dba(self, zone: int, level_dba: float) -> float:
        """Ramp a zone to ``level_dba`` over ``ramp_s``; return the level actually applied.

        The level is rounded to 0.5 dB and clamped under the zone's ceiling (commands may ask for
        more; they get the ceiling). A silent zone (faded out) takes the level at once. Not
        real-time; safe while audio runs.

        Raises
        ------
        ConfigError
            If ``zone`` is unknown or ``level_dba`` is not a finite number in 0..140 dBA.
        """
        z = self._check_zone(zone)
        if isinstance(level_dba, bool) or not isinstance(level_dba, int | float | np.number):
            raise ConfigError(f"level_dba={level_dba!r} is not a number in 0..140 dBA")
        if not (np.isfinite(level_dba) and 0.0 <= level_dba <= 140.0):
            raise ConfigError(f"level_dba={level_dba!r} is not in 0..140 dBA")
        return self._apply_level(z, float(level_dba))

    def set_zone_eq_db(self, zone: int, eq_db) -> None:
        """Set a zone's per-band EQ (dB, on the target curve's bands, each within ±20 dB).

        The zone's noise is renormalised to 0 dBFS RMS, so the calibration offset keeps its
        meaning for the equalised spectrum. Takes effect at the next synthesis hop (the overlap-
        add crossfades it over one frame, 85 ms at 48 kHz). Not real-time; safe while audio runs.
        """
        z = self._check_zone(zone)
        eq = np.asarray(eq_db, dtype=np.float64).ravel()
        if eq.shape != self.target_level_db.shape:
            raise ConfigError(
                f"eq_db has {eq.shape[0]} values; allowed: one per target band ({self.target_level_db.shape[0]})"
            )
        if not np.all(np.isfinite(eq)) or np.any(np.abs(eq) > MAX_EQ_DB):
            raise ConfigError(f"eq_db={eq.tolist()} is not within ±{MAX_EQ_DB:g} dB in every band")
        magnitude = design_magnitude(
            self.target_nominal_hz, self.target_level_db + eq, self.sample_rate, self.n_fft
        )
        self.eq_db[z] = eq
        self._magnitude[z] = magnitude

    def set_zone_calibration(
        self, zone: int, spl_offset_db: float | None = None, eq_db=None
    ) -> None:
        """Apply a zone's calibration: ``spl_offset_db`` (dBA at 0 dBFS RMS) and/or ``eq_db``.

        The ceiling in dBFS follows the new offset at once; the level gain ramps to it.
        """
        z = self._check_zone(zone)
        if eq_db is not None:
            self.set_zone_eq_db(z, eq_db)
        if spl_offset_db is not None:
            offset = float(self._per_zone(spl_offset_db, "spl_offset_db", 40.0, 140.0)[0])
            # Lower the ceiling before anything can rise: the ceiling first, then the level.
            self.spl_offset_db[z] = offset
            self.ceiling.set_ceiling_dbfs(min(self.ceiling_dba[z] - offset, 0.0), channel=z)
            self._apply_level(z, self.requested_level_dba[z])

    def set_zone_ceiling_dba(self, zone: int, ceiling_dba: float) -> None:
        """Change a zone's hard ceiling (0..MAX_CEILING_DBA dBA); the level is re-clamped."""
        z = self._check_zone(zone)
        value = float(self._per_zone(ceiling_dba, "ceiling_dba", 0.0, MAX_CEILING_DBA)[0])
        self.ceiling_dba[z] = value
        self.ceiling.set_ceiling_dbfs(min(value - self.spl_offset_db[z], 0.0), channel=z)
        self._apply_level(z, self.requested_level_dba[z])

    def start(self, zone: int | None = None) -> None:
        """Fade in (all zones, or one) over ``fade_in_s``; clears a zone's fault."""
        for z in range(self.zones) if zone is None else (self._check_zone(zone),):
            if self.faults[z]:
                # Rebuild everything the fault may have poisoned: stream, shaping, gain, fade.
                self._reseed(z)
                self._magnitude[z] = design_magnitude(
                    self.target_nominal_hz,
                    self.target_level_db + self.eq_db[z],
                    self.sample_rate,
                    self.n_fft,
                )
                self._fade[z] = 0.0
                self.faults[z] = 0
                self._apply_level(z, self.requested_level_dba[z], immediate=True)
            self.running[z] = True
            self._fade_step[z] = (
                1.0 / (self.fade_in_s * self.sample_rate) if self.fade_in_s > 0 else 1.0
            )

    def stop(self, zone: int | None = None) -> None:
        """Fade out (all zones, or one) over ``fade_out_s``."""
        for z in range(self.zones) if zone is None else (self._check_zone(zone),):
            self.running[z] = False
            self._fade_step[z] = (
                -1.0 / (self.fade_out_s * self.sample_rate) if self.fade_out_s > 0 else -1.0
            )

    def _make_groups(self) -> list[_ZoneGroup]:
        count = -(-self.zones // ZONES_PER_GROUP)
        size = -(-self.zones // count)  # balanced: 32 zones -> 4 groups of 8, 9 -> 5 + 4
        groups = []
        for g, first in enumerate(range(0, self.zones, size)):
            last = min(first + size, self.zones)
            groups.append(
                _ZoneGroup(
                    self, g, first, last, phase=g * self.hop // count, block_size=self.block_size
                )
            )
        return groups

    def _reseed(self, z: int) -> None:
        splitmix64_seed(self._rng[z], self.seed * 1000003 + z)
        self._tail[z] = 0.0
        self._hop_buffer[z] = 0.0

    def reset(self) -> None:
        """Restart every zone's random stream from its seed, silent (faded out), state cleared."""
        for z in range(self.zones):
            splitmix64_seed(self._rng[z], self.seed * 1000003 + z)
            if not np.all(np.isfinite(self._magnitude[z])):
                self._magnitude[z] = design_magnitude(
                    self.target_nominal_hz,
                    self.target_level_db + self.eq_db[z],
                    self.sample_rate,
                    self.n_fft,
                )
        self._tail.fill(0.0)
        self._fade.fill(0.0)
        self._fade_step.fill(0.0)
        self.faults.fill(0)
        self.running.fill(False)
        # Levels from the requests, not from state a fault may have zeroed.
        for z in range(self.zones):
            self._apply_level(z, self.requested_level_dba[z], immediate=True)
        self.ceiling.reset()
        for group in self._groups:
            group.prime()

    # -- hot path -----------------------------------------------------------------------------
    def _synthesise(self) -> None:
        """Hook for subclasses, run once per synthesis hop period (just before the first zone
        group synthesises its hop, and when priming): update shaping state here, e.g. rows of
        ``_magnitude``; each group reads the magnitudes at its own next hop. Real-time: must not
        allocate. The base class does nothing."""

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        frames = out.shape[0]
        raw = self._unlimited
        for group in self._groups:
            group.render(frames, self._fault_step)
            raw[:frames, group.first : group.last] = group.raw[:frames]
        self.ceiling.process(raw[:frames], out)

    # -- off the hot path ---------------------------------------------------------------------
    def render(self, seconds: float) -> np.ndarray:
        """Generate ``seconds`` of output (not real-time): float32 (frames, zones).

        For calibration loops and tests; it advances the same state :meth:`process` uses.
        """
        if not (np.isfinite(seconds) and 0 < seconds <= 3600):
            raise ConfigError(f"seconds={seconds!r} is not in 0..3600 s")
        frames = int(round(seconds * self.sample_rate))
        result = np.zeros((frames, self.zones), np.float32)
        silence = np.zeros((self.block_size, 1), np.float32)
        for start in range(0, frames, self.block_size):
            n = min(self.block_size, frames - start)
            self.process(silence[:n], result[start : start + n])
        return result

    def current_level_dba(self) -> np.ndarray:
        """Per zone, the level the output is at right now (ramp and fade included), dBA."""
        envelope = 0.5 - 0.5 * np.cos(np.pi * np.clip(self._fade, 0.0, 1.0))
        linear = np.nan_to_num(self._gain * envelope, nan=0.0)
        with np.errstate(divide="ignore"):
            return 20.0 * np.log10(linear) + self.spl_offset_db

    def status(self) -> list[dict]:
        """One dict per zone for status displays and reports."""
        now = self.current_level_dba()
        reduction = self.ceiling.gain_reduction_db
        return [
            {
                "zone": z,
                "level_dba": float(self.level_dba[z]),
                "requested_dba": float(self.requested_level_dba[z]),
                "now_dba": float(now[z]),
                "ceiling_dba": float(self.ceiling_dba[z]),
                "running": bool(self.running[z]),
                "fault": bool(self.faults[z]),
                "limiter_db": float(reduction[z]),
                "hard_limited_samples": int(self.ceiling.counters[z, 0]),
            }
            for z in range(self.zones)
        ]

    def telemetry_summary(self) -> dict:
        """Figures carried into the latency report."""
        return {
            "masking zones": self.zones,
            "masking levels dBA": [float(v) for v in self.level_dba],
            "masking ceilings dBA": [float(v) for v in self.ceiling_dba],
            "masking faults": int(self.faults.sum()),
            "ceiling hard-limited samples": int(self.ceiling.counters[:, 0].sum()),
        }


class _ZoneGroup:
    """Up to :data:`ZONES_PER_GROUP` zones synthesised together: row views into the generator's
    per-zone arrays, the group's own hop position and a contiguous output block.

    ``phase`` samples of the first hop are skipped after priming, so groups reach their
    synthesis hops in different blocks.
    """

    def __init__(
        self,
        owner: MaskingGenerator,
        index: int,
        first: int,
        last: int,
        phase: int,
        block_size: int,
    ):
        self.owner, self.index = owner, index
        self.first, self.last, self.phase = first, last, phase
        self.hop = owner.hop
        self.n_fft = owner.n_fft
        self.window = owner._window
        rows = slice(first, last)
        self.magnitude = owner._magnitude[rows]
        self.spectrum = owner._spectrum[rows]
        self.frames = owner._frames[rows]
        self.tail = owner._tail[rows]
        self.hop_buffer = owner._hop_buffer[rows]
        self.rng = owner._rng[rows]
        self.gain = owner._gain[rows]
        self.gain_target = owner._gain_target[rows]
        self.gain_ratio = owner._gain_ratio[rows]
        self.fade = owner._fade[rows]
        self.fade_step = owner._fade_step[rows]
        self.faults = owner.faults[rows]
        self.raw = np.zeros((block_size, last - first), np.float32)
        self.position = self.hop

    def synthesise(self) -> None:
        """One hop of new noise for the group's zones (real-time safe)."""
        if self.index == 0:
            self.owner._synthesise()
        random_spectra(self.spectrum, self.magnitude, self.rng, self.faults)
        np.fft.irfft(self.spectrum, n=self.n_fft, axis=1, out=self.frames)
        overlap_add(self.hop_buffer, self.frames, self.window, self.tail)

    def prime(self) -> None:
        """Fill the overlap-add so the first hop is full-level noise, then skip ``phase``."""
        self.tail.fill(0.0)
        self.synthesise()
        self.synthesise()
        self.position = self.phase

    def render(self, frames: int, fault_step: float) -> None:
        """Write ``frames`` samples of every zone of the group into ``raw`` (real-time safe)."""
        done = 0
        while done < frames:
            if self.position >= self.hop:
                self.synthesise()
                self.position = 0
            take = min(self.hop - self.position, frames - done)
            apply_gains(
                self.raw[done : done + take],
                self.hop_buffer,
                self.position,
                self.gain,
                self.gain_target,
                self.gain_ratio,
                self.fade,
                self.fade_step,
                self.faults,
                fault_step,
            )
            self.position += take
            done += take
