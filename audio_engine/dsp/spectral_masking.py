"""Speech-adaptive spectral masking: just enough masking, in the right bands, for a privacy target.

Three parts, each usable alone:

* :class:`SpectralMaskingGenerator` - the masking generator of :mod:`audio_engine.dsp.masking`
  with a per-zone, per-band *shape* (dB offsets on the target curve's one-third-octave bands)
  applied in the STFT domain every synthesis hop. The shape slews at most
  ``shape_slew_db_per_s`` per hop and is renormalised so the zone's output RMS (hence the
  calibration offset and the output ceiling) keeps its meaning; the overlap-add crossfades each
  hop's spectrum into the next, so the spectrum changes smoothly without clicks.
* :class:`BandActivityEstimator` - from the office microphones' band levels (one reading per
  control update), the masking's own contribution removed by power subtraction, it tracks per
  band the ambient (the readings without speech, averaged in dB over ``ambient_averaging_s``)
  and the speech present (the excess over the floor in frames where speech is present, averaged
  in power over ``speech_averaging_s`` with only speech frames counted).
* :class:`SpectralPrivacyLaw` - per zone and band, the masking band levels that keep the
  estimated SII of a neighbouring agent's speech at the listener at or below a privacy target
  with the least A-weighted masking level, inside the shape bound, the level range and the
  ceiling. :class:`SpectralMaskingSupervisor` runs all three on a site config, rate-limited, with
  the schedule and install ramp-in of :mod:`audio_engine.schedule` - the entry point of
  ``audio-engine mask --adaptive spectral``.

The control law
---------------
Per zone, with ``b`` over the target curve's bands (100 Hz ... 8 kHz), target shape ``T_b`` (dB),
the masking band level at the listener is written ``M_b = T_b + m + s_b``: an overall offset ``m``
and a shape deviation ``s_b``. The law solves

    minimise  L_A(M) = 10 lg sum_b 10^((M_b + A_b) / 10)          (A-weighted masking level)
    subject to SII(E, M (+) N) <= SII_target                          (ANSI S3.5-1997)
               |s_b| <= shape_limit_db                                (+-3 dB of the target shape)
               |M_b - M_b+1| <= max(2 dB, |T_b - T_b+1|)              (a smooth contour)
               min_dba <= L_A(M) <= max_dba,  L_rms(M) <= ceiling_dba

where ``A_b`` is the A-weighting at the band centre (IEC 61672-1), ``N`` the estimated ambient
band levels (power sum ``(+)``), and ``E`` the speech spectrum of the neighbouring agent at the
listener: the estimated talker spectrum at 1 m (mic speech estimate + ``mic_speech_offset_db``,
never below ANSI S3.5 "normal" effort, so the masking does not drop when nobody is talking and
then jump when someone starts), minus the inverse-square distance loss and the screen
attenuation, plus a ``speech_margin_db`` safety margin. ``L_rms`` is the level the generator
and its ceiling see (the RMS-equivalent level of the calibration).

The SII is monotonic in ``m`` for a fixed shape, so the least ``m`` meeting the target is found
by bracketed root finding (Illinois regula falsi); the shape is optimised by descent in ``shape_step_db`` steps (one band, or a tilt
of every band above one), warm-started from the previous solution; a move is kept only if it
keeps the contour smooth and lowers ``L_A`` at the target.
If the target cannot be met inside the bounds the law plays ``max_dba`` (best achievable privacy)
and reports it.

Rate limits: ``m`` moves towards its goal at ``rise_db_per_min`` / ``fall_db_per_min`` (the
site's adaptive figures, 0.5 / 0.25 dB per minute), each ``s_b`` at ``shape_rate_db_per_min``
(0.25 dB per minute); the goal of ``m`` moves only past a ``deadband_db``. An "audible step" is
defined here as a change of any band level, or of the overall level, by ``AUDIBLE_STEP_DB`` or
more within any ``AUDIBLE_STEP_WINDOW_S`` window: the just-noticeable level difference for
broadband noise compared across a short gap is about 0.5-1 dB (Miller, JASA 19, 1947) and a
change in a single band of a broadband spectrum needs 1-2 dB to be heard (profile analysis,
Green, "Profile analysis", 1988); changes of a fraction of that per minute are not noticed. With
the default rates a band moves at most 0.75 dB per minute (0.125 dB per 10 s) plus the
generator's 0.5 dB level step ramped over ``ramp_s`` (2 s).

Sources: ANSI S3.5-1997 (SII, :mod:`audio_engine.dsp.sii`); ASTM E1130 (privacy classes, SII in
place of the AI); ASTM E1374 and the target curve's notes (``calibration/masking_target_default.csv``)
for the +-2..3 dB contour tolerance and its smoothness (neighbouring bands within 2 dB, as
``docs/masking.md`` requires of the generator); Pearsons, Bennett & Fidell, "Speech levels in various noise
environments", EPA-600/1-77-025 (1977), for the talkers' Lombard rise used in the simulated days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from audio_engine.dsp import sii as sii_module
from audio_engine.dsp.adaptive import PowerTap, power_sum_db
from audio_engine.dsp.bands import band_index, exact_centre_hz
from audio_engine.dsp.masking import LEVEL_STEP_DB, MaskingGenerator
from audio_engine.dsp.octave import OctaveFilterBank
from audio_engine.dsp.weighting import design_goal_db
from audio_engine.errors import ConfigError

#: A change of any band level or of the overall level by this much (dB) within
#: :data:`AUDIBLE_STEP_WINDOW_S` counts as an audible step (see the module docstring).
AUDIBLE_STEP_DB = 1.0

#: Window of the audible-step definition, s.
AUDIBLE_STEP_WINDOW_S = 10.0

#: Default privacy target: ASTM E1130 "normal" privacy, AI (here SII) <= 0.20.
DEFAULT_SII_TARGET = 0.20

#: Default shape bound around the target curve, dB (the issue: +-3 dB of shape).
DEFAULT_SHAPE_LIMIT_DB = 3.0

#: Largest level step between neighbouring bands the shape may create, dB (where the target
#: curve itself steps more, its own step is allowed): the masking specification's smoothness
#: requirement (docs/masking.md: neighbouring bands within 2 dB; "it is just as important for
#: the contour to be smooth", Acoustics Today, Fall 2007, quoted in the target curve's notes).
DEFAULT_NEIGHBOUR_STEP_DB = 2.0

#: Fastest shape slew the generator itself allows, dB/s: a guard under any controller; the
#: supervisor's rates are 20x slower.
DEFAULT_SHAPE_SLEW_DB_PER_S = 0.1

#: Speech bands used to decide speech presence (the bands carrying most SII importance,
#: ANSI S3.5-1997 Table 3: 500 Hz ... 4 kHz hold about 80 % of it).
PRESENCE_LOW_HZ, PRESENCE_HIGH_HZ = 500.0, 4000.0

_LOG_FLOOR = 1e-30

#: ln(10) / 20: amplitude dB to the exponent of e.
_NEPER_PER_DB = math.log(10.0) / 20.0


def _db(power):
    return 10.0 * np.log10(np.maximum(power, _LOG_FLOOR))


def a_weighting_db(nominal_hz) -> np.ndarray:
    """A-weighting (IEC 61672-1 Annex E) at the exact centres of the given nominal bands, dB."""
    x = np.array([band_index(float(f)) for f in np.ravel(nominal_hz)])
    return design_goal_db(exact_centre_hz(x), "A")


def a_weighted_level_db(band_level_db, nominal_hz) -> float:
    """A-weighted level (dBA) of one-third-octave band levels on ``nominal_hz``."""
    return float(power_sum_db(np.asarray(band_level_db) + a_weighting_db(nominal_hz), axis=-1))


# -- SII, ANSI S3.5-1997, compiled for the control law --------------------------------------------
@njit(cache=True)
def sii_kernel(speech, noise, importance, internal, normal, log_ratio, log_f):
    """SII of the one-third-octave procedure; the same arithmetic as
    :func:`audio_engine.dsp.sii.speech_intelligibility_index` (tests hold them equal).

    Parameters
    ----------
    speech, noise : float64 (18,)
        Speech and noise spectrum levels E'_i, N'_i, dB per Hz.
    importance, internal, normal : float64 (18,)
        I_i, X'_i + T'_i, and the normal-effort speech spectrum U_i.
    log_ratio : float64 (18, 18)
        ``lg(0.89 F_i / F_k)``.
    log_f : float64 (18,)
        ``10 lg F_i``.

    Returns
    -------
    float
        SII in 0..1. Real-time safe (no allocation beyond scalars).
    """
    bands = speech.shape[0]
    total = 0.0
    for i in range(bands):
        ni = noise[i]
        # Z_i: own noise plus the upward spread of every lower band's B_k.
        if i == 0:
            bk = noise[0]
            if speech[0] - 24.0 > bk:
                bk = speech[0] - 24.0
            z = bk
        else:
            acc = 10.0 ** (0.1 * ni)
            for k in range(i):
                bk = noise[k]
                if speech[k] - 24.0 > bk:
                    bk = speech[k] - 24.0
                slope = -80.0 + 0.6 * (bk + log_f[k] - 6.353)
                acc += 10.0 ** (0.1 * (bk + 3.32 * slope * log_ratio[i, k]))
            z = 10.0 * math.log10(acc)
        d = z if z > internal[i] else internal[i]
        distortion = 1.0 - (speech[i] - normal[i] - 10.0) / 160.0
        if distortion > 1.0:
            distortion = 1.0
        k_i = (speech[i] - d + 15.0) / 30.0
        if k_i < 0.0:
            k_i = 0.0
        elif k_i > 1.0:
            k_i = 1.0
        total += importance[i] * distortion * k_i
    return total


@njit(cache=True)
def _noise_spectrum(out, masking_db, ambient_db, sii_index, bandwidth_db):
    for i in range(out.shape[0]):
        j = sii_index[i]
        out[i] = (
            10.0 * math.log10(10.0 ** (0.1 * masking_db[j]) + 10.0 ** (0.1 * ambient_db[j]))
            - bandwidth_db[i]
        )


@njit(cache=True)
def _masking_sii(masking, noise, offset, shape, target_db, ambient_db, speech, tables, sii_index):
    for b in range(masking.shape[0]):
        masking[b] = target_db[b] + offset + shape[b]
    _noise_spectrum(noise, masking, ambient_db, sii_index, tables[4])
    return sii_kernel(speech, noise, tables[0], tables[1], tables[2], tables[5:], tables[3])


@njit(cache=True)
def _least_offset(
    shape, target_db, aweight_db, power_share, ambient_db, speech, tables, sii_index, limits,
    masking, noise,
):  # fmt: skip
    # limits: min_dba, max_dba, max_rms_dba, a_norm_db, sii_target
    c = 0.0
    r = 0.0
    for b in range(shape.shape[0]):
        c += 10.0 ** (0.1 * (target_db[b] + shape[b] + aweight_db[b]))
        r += power_share[b] * 10.0 ** (0.1 * shape[b])
    c = 10.0 * math.log10(c)
    r = 10.0 * math.log10(r)
    lo = limits[0] - c
    hi = limits[1] - c
    rms_hi = limits[2] - limits[3] - r
    if rms_hi < hi:
        hi = rms_hi
    if hi < lo:
        lo = hi
    target = limits[4]
    sii_hi = _masking_sii(
        masking, noise, hi, shape, target_db, ambient_db, speech, tables, sii_index
    )
    if sii_hi > target:
        return hi, c, sii_hi
    sii_lo = _masking_sii(
        masking, noise, lo, shape, target_db, ambient_db, speech, tables, sii_index
    )
    if sii_lo <= target:
        return lo, c, sii_lo
    # Illinois (modified regula falsi) on SII(m) - target, bracketed by [lo, hi]: the SII is
    # monotonic and piecewise smooth in m, so this needs ~5 evaluations where bisection to
    # the same 0.005 dB needs ~12.
    best = sii_hi
    f_lo = sii_lo - target
    f_hi = sii_hi - target
    side = 0
    for _ in range(40):
        if hi - lo < 0.005:
            break
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not (lo < mid < hi):
            mid = 0.5 * (lo + hi)
        value = _masking_sii(
            masking, noise, mid, shape, target_db, ambient_db, speech, tables, sii_index
        )
        f_mid = value - target
        if f_mid <= 0.0:
            hi, f_hi, best = mid, f_mid, value
            if f_mid > -1e-5:
                break
            if side == -1:
                f_lo *= 0.5
            side = -1
        else:
            lo, f_lo = mid, f_mid
            if side == 1:
                f_hi *= 0.5
            side = 1
    return hi, c, best


@njit(cache=True)
def _smooth(shape, target_db, neighbour_step_db):
    # No neighbour step above the limit, or above the target's own step where that is larger.
    for b in range(shape.shape[0] - 1):
        own = abs(target_db[b + 1] - target_db[b])
        limit = neighbour_step_db if neighbour_step_db > own else own
        if abs(target_db[b + 1] + shape[b + 1] - target_db[b] - shape[b]) > limit + 1e-9:
            return False
    return True


@njit(cache=True)
def solve_shape_kernel(
    shape, target_db, aweight_db, power_share, ambient_db, speech, tables, sii_index, limits,
    shape_limit_db, neighbour_step_db, step_db, sweeps, masking, noise, saved,
):  # fmt: skip
    """Least-A-level masking for an SII target: root finding on the offset, descent on
    the shape (see the module docstring). ``shape`` (bands,) is the warm start and is updated;
    ``saved`` (bands,) is scratch.

    The moves are one band up or down by ``step_db``, and every band from ``b`` up (a tilt
    about band ``b``), each kept only if the contour stays smooth and the A-level at the target
    falls (or the SII shortfall shrinks when the target is out of reach).

    Returns
    -------
    offset_db, a_level_dba, sii : float
        ``M_b = target_db + offset_db + shape``; its A-weighted level; its SII.
    """
    bands = shape.shape[0]
    target = limits[4]
    m, c, s = _least_offset(
        shape, target_db, aweight_db, power_share, ambient_db, speech, tables, sii_index, limits,
        masking, noise,
    )  # fmt: skip
    excess = s - target if s > target else 0.0
    cost = m + c
    for _ in range(sweeps):
        improved = False
        for kind in range(2):
            for b in range(kind, bands):
                last = b + 1 if kind == 0 else bands
                for direction in (-1.0, 1.0):
                    changed = False
                    for j in range(bands):
                        saved[j] = shape[j]
                    for j in range(b, last):
                        trial = shape[j] + direction * step_db
                        if trial > shape_limit_db:
                            trial = shape_limit_db
                        elif trial < -shape_limit_db:
                            trial = -shape_limit_db
                        if trial != shape[j]:
                            changed = True
                        shape[j] = trial
                    if changed and _smooth(shape, target_db, neighbour_step_db):
                        m2, c2, s2 = _least_offset(
                            shape, target_db, aweight_db, power_share, ambient_db, speech,
                            tables, sii_index, limits, masking, noise,
                        )  # fmt: skip
                        excess2 = s2 - target if s2 > target else 0.0
                        if excess2 < excess - 1e-6 or (
                            excess2 <= excess + 1e-9 and m2 + c2 < cost - 1e-4
                        ):
                            m, c, s, excess, cost = m2, c2, s2, excess2, m2 + c2
                            improved = True
                            break
                    for j in range(bands):
                        shape[j] = saved[j]
        if not improved:
            break
    return m, cost, s


@dataclass(frozen=True)
class PrivacySettings:
    """What the spectral law protects and how fast it may move.

    Attributes
    ----------
    sii_target : float
        Highest SII allowed at the listener (0.20: ASTM E1130 "normal" privacy).
    talker_distance_m : float
        Neighbouring agent's mouth to the listener's ear, m (inverse-square law).
    talker_attenuation_db : float
        Extra attenuation on that path (screens, orientation), dB.
    mic_speech_offset_db : float
        Talker level at 1 m minus the speech level at the zone's microphones, dB.
    speech_margin_db : float
        Added to the speech estimate (estimation error, talkers nearer than stated), dB.
    shape_limit_db : float
        Bound of the shape deviation around the target curve, dB.
    neighbour_step_db : float
        Largest level step between neighbouring bands the shape may create, dB
        (:data:`DEFAULT_NEIGHBOUR_STEP_DB`).
    shape_step_db : float
        Step of the shape search, dB.
    rise_db_per_min, fall_db_per_min : float
        Rate limits of the overall offset.
    shape_rate_db_per_min : float
        Rate limit of each band's shape deviation.
    deadband_db : float
        The offset's goal moves only when the solution moves further than this.
    solve_every_s : float
        How often the law is solved (30 s: the rate limits move a band at most 0.375 dB between
        solves); the rate limiter runs every update.
    speech_averaging_s, ambient_averaging_s, floor_window_s : float
        Time constants of :class:`BandActivityEstimator`.
    presence_snr_db : float
        Speech-band excess over the floor that marks a frame as speech present, dB.
    """

    sii_target: float = DEFAULT_SII_TARGET
    talker_distance_m: float = 4.0
    talker_attenuation_db: float = 12.0
    mic_speech_offset_db: float = 6.0
    speech_margin_db: float = 2.0
    shape_limit_db: float = DEFAULT_SHAPE_LIMIT_DB
    neighbour_step_db: float = DEFAULT_NEIGHBOUR_STEP_DB
    shape_step_db: float = 0.5
    rise_db_per_min: float = 0.5
    fall_db_per_min: float = 0.25
    shape_rate_db_per_min: float = 0.25
    deadband_db: float = 0.25
    solve_every_s: float = 30.0
    speech_averaging_s: float = 60.0
    ambient_averaging_s: float = 60.0
    floor_window_s: float = 20.0
    presence_snr_db: float = 3.0

    def __post_init__(self):
        checks = {
            "sii_target": (0.0, 1.0),
            "talker_distance_m": (0.3, 30.0),
            "talker_attenuation_db": (0.0, 40.0),
            "mic_speech_offset_db": (-20.0, 40.0),
            "speech_margin_db": (0.0, 10.0),
            "shape_limit_db": (0.0, 6.0),
            "neighbour_step_db": (0.5, 12.0),
            "shape_step_db": (0.1, 2.0),
            "rise_db_per_min": (0.01, 2.0),
            "fall_db_per_min": (0.01, 2.0),
            "shape_rate_db_per_min": (0.01, 2.0),
            "deadband_db": (0.0, 3.0),
            "solve_every_s": (0.1, 600.0),
            "speech_averaging_s": (1.0, 3600.0),
            "ambient_averaging_s": (1.0, 3600.0),
            "floor_window_s": (1.0, 600.0),
            "presence_snr_db": (0.5, 20.0),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"{name}={value!r} is not a number in {lo:g}..{hi:g}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"{name}={value!r} is not in {lo:g}..{hi:g}")

    def talker_to_listener_db(self) -> float:
        """Level change from the talker at 1 m to the listener, dB (< 0)."""
        return -20.0 * math.log10(self.talker_distance_m) - self.talker_attenuation_db


def sii_band_mapping(nominal_hz) -> np.ndarray:
    """Index into ``nominal_hz`` of each ANSI S3.5 band (160 Hz ... 8 kHz); ConfigError if the
    bands do not cover them all."""
    nominal = [float(f) for f in np.ravel(nominal_hz)]
    missing = [float(f) for f in sii_module.BAND_CENTRES_HZ if float(f) not in nominal]
    if missing:
        raise ConfigError(
            f"target curve bands {nominal} miss the SII bands {missing}; allowed: curves covering "
            "160 Hz ... 8 kHz"
        )
    return np.array([nominal.index(float(f)) for f in sii_module.BAND_CENTRES_HZ], np.int64)


def _sii_tables() -> np.ndarray:
    f = sii_module.BAND_CENTRES_HZ
    log_ratio = np.log10(0.89 * f[:, None] / f[None, :])
    head = np.stack(
        [
            sii_module.BAND_IMPORTANCE,
            sii_module.REFERENCE_INTERNAL_NOISE_DB,
            sii_module.SPEECH_SPECTRUM_LEVEL_DB["normal"],
            10.0 * np.log10(f),
            sii_module.BANDWIDTH_ADJUSTMENT_DB,
        ]
    )
    return np.ascontiguousarray(np.concatenate([head, log_ratio]))


class SpectralPrivacyLaw:
    """The control law of one zone (see the module docstring): masking band levels for a target.

    Parameters
    ----------
    nominal_hz, target_level_db : array_like (bands,)
        The zone's target curve (relative dB); must cover the SII bands 160 Hz ... 8 kHz.
    min_dba, max_dba, ceiling_dba : float
        Level range of the law and the zone's hard ceiling (A-weighted at the listener).
    settings : PrivacySettings
    electrical_band_power : array_like (bands,), optional
        Share of the generator's output power in each band (the generator's base spectrum);
        default: the target curve's band powers (a zone whose EQ is flat).

    Notes
    -----
    :meth:`solve` is a control-thread call (about a millisecond, compiled); not for the audio
    thread.
    """

    def __init__(
        self,
        nominal_hz,
        target_level_db,
        min_dba: float,
        max_dba: float,
        ceiling_dba: float,
        settings: PrivacySettings | None = None,
        electrical_band_power=None,
    ):
        self.nominal_hz = np.asarray(nominal_hz, dtype=np.float64).ravel()
        self.target_level_db = np.asarray(target_level_db, dtype=np.float64).ravel()
        if self.nominal_hz.shape != self.target_level_db.shape:
            raise ConfigError(
                f"target curve has {self.nominal_hz.shape[0]} frequencies and "
                f"{self.target_level_db.shape[0]} levels; allowed: the same number"
            )
        self.sii_index = sii_band_mapping(self.nominal_hz)
        for name, value in (
            ("min_dba", min_dba),
            ("max_dba", max_dba),
            ("ceiling_dba", ceiling_dba),
        ):
            if not (math.isfinite(value) and 0.0 <= value <= 140.0):
                raise ConfigError(f"{name}={value!r} is not in 0..140 dBA")
        if not min_dba <= max_dba <= ceiling_dba:
            raise ConfigError(
                f"min_dba={min_dba!r}, max_dba={max_dba!r}, ceiling_dba={ceiling_dba!r}: allowed "
                "min_dba <= max_dba <= ceiling_dba"
            )
        self.min_dba, self.max_dba, self.ceiling_dba = (
            float(min_dba),
            float(max_dba),
            float(ceiling_dba),
        )
        self.settings = settings or PrivacySettings()
        self.aweight_db = a_weighting_db(self.nominal_hz)
        # The level the generator is told is RMS-equivalent: the A-level of the unshaped target
        # shape at that RMS. a_norm turns an offset m into that level.
        self.a_norm_db = float(power_sum_db(self.target_level_db + self.aweight_db))
        power = (
            10.0 ** (self.target_level_db / 10.0)
            if electrical_band_power is None
            else np.asarray(electrical_band_power, dtype=np.float64).ravel()
        )
        if (
            power.shape != self.nominal_hz.shape
            or not np.all(np.isfinite(power))
            or power.sum() <= 0
        ):
            raise ConfigError(
                f"electrical_band_power must be {self.nominal_hz.shape[0]} finite powers >= 0"
            )
        self.power_share = power / power.sum()
        self.normal_band_db = (
            sii_module.SPEECH_SPECTRUM_LEVEL_DB["normal"] + sii_module.BANDWIDTH_ADJUSTMENT_DB
        )
        self._tables = _sii_tables()
        self._limits = np.array(
            [self.min_dba, self.max_dba, self.ceiling_dba, self.a_norm_db, self.settings.sii_target]
        )
        self._masking = np.zeros(self.nominal_hz.shape[0])
        self._noise = np.zeros(18)
        self.shape_db = np.zeros(self.nominal_hz.shape[0])
        self._saved = np.zeros(self.nominal_hz.shape[0])
        self.last_sii = float("nan")

    def speech_at_listener_db(self, talker_band_db=None) -> np.ndarray:
        """Speech band levels (18 SII bands, dB SPL) of the neighbouring agent at the listener.

        ``talker_band_db`` is the estimated talker spectrum at 1 m (18 band levels) or None; it
        is never taken below ANSI S3.5 normal effort, and the margin is added.
        """
        s = self.settings
        talker = self.normal_band_db
        if talker_band_db is not None:
            estimate = np.asarray(talker_band_db, dtype=np.float64)
            talker = np.where(np.isfinite(estimate), np.maximum(estimate, talker), talker)
        return talker + s.talker_to_listener_db() + s.speech_margin_db

    def sii(self, masking_band_db, ambient_band_db, speech_band_db) -> float:
        """SII at the listener for masking and ambient band levels (bands,) and speech band levels
        at the listener (18,); all dB SPL."""
        masking = np.asarray(masking_band_db, dtype=np.float64)
        ambient = np.asarray(ambient_band_db, dtype=np.float64)
        noise = np.zeros(18)
        _noise_spectrum(noise, masking, ambient, self.sii_index, self._tables[4])
        speech = np.asarray(speech_band_db, dtype=np.float64) - sii_module.BANDWIDTH_ADJUSTMENT_DB
        t = self._tables
        return float(sii_kernel(speech, noise, t[0], t[1], t[2], t[5:], t[3]))

    def solve(self, ambient_band_db, talker_band_db=None, sweeps: int = 4):
        """Masking band levels at the listener for the target (see the module docstring).

        Parameters
        ----------
        ambient_band_db : array_like (bands,)
            Ambient (everything but the masking and the neighbouring talker) at the listener.
        talker_band_db : array_like (18,), optional
            Estimated talker spectrum at 1 m, band levels 160 Hz ... 8 kHz.

        Returns
        -------
        offset_db : float
            ``m``; the masking band levels are ``target_level_db + offset_db + shape_db``.
        shape_db : ndarray (bands,)
            ``s`` (a copy; the law keeps it as the next warm start).
        level_dba : float
            A-weighted masking level at the listener.
        sii : float
            SII reached (above the target only if the bounds did not allow it).
        """
        ambient = np.asarray(ambient_band_db, dtype=np.float64)
        ambient = np.where(np.isfinite(ambient), ambient, -100.0)
        speech = self.speech_at_listener_db(talker_band_db) - sii_module.BANDWIDTH_ADJUSTMENT_DB
        s = self.settings
        m, level, value = solve_shape_kernel(
            self.shape_db, self.target_level_db, self.aweight_db, self.power_share, ambient,
            np.ascontiguousarray(speech), self._tables, self.sii_index, self._limits,
            s.shape_limit_db, s.neighbour_step_db, s.shape_step_db, sweeps, self._masking,
            self._noise, self._saved,
        )  # fmt: skip
        self.last_sii = float(value)
        return float(m), self.shape_db.copy(), float(level), float(value)

    def generator_level_dba(self, offset_db: float, shape_db) -> float:
        """RMS-equivalent level for :class:`SpectralMaskingGenerator` that puts
        ``target + offset + shape`` at the listener (its shape renormalisation undone)."""
        r = float(np.sum(self.power_share * 10.0 ** (np.asarray(shape_db) / 10.0)))
        return offset_db + self.a_norm_db + 10.0 * math.log10(r)

    def band_levels_db(self, offset_db: float, shape_db) -> np.ndarray:
        """Masking band levels at the listener, dB SPL."""
        return self.target_level_db + offset_db + np.asarray(shape_db)


class RateLimitedShape:
    """Moves an offset and a shape towards their goals under the law's rate limits.

    Parameters
    ----------
    offset_db : float
        Initial offset.
    bands : int
    settings : PrivacySettings
    """

    def __init__(self, offset_db: float, bands: int, settings: PrivacySettings):
        self.settings = settings
        self.offset_db = float(offset_db)
        self.goal_offset_db = float(offset_db)
        self.shape_db = np.zeros(bands)
        self.goal_shape_db = np.zeros(bands)

    def set_goal(self, offset_db: float, shape_db) -> None:
        """New solution; the offset goal follows only past the dead band."""
        if (
            math.isfinite(offset_db)
            and abs(offset_db - self.goal_offset_db) > self.settings.deadband_db
        ):
            self.goal_offset_db = float(offset_db)
        shape = np.asarray(shape_db, dtype=np.float64)
        if shape.shape == self.goal_shape_db.shape and np.all(np.isfinite(shape)):
            limit = self.settings.shape_limit_db
            np.clip(shape, -limit, limit, out=self.goal_shape_db)

    def step(self, dt_s: float) -> None:
        """Advance ``dt_s`` seconds (non-finite or negative: hold)."""
        if not (math.isfinite(dt_s) and dt_s > 0.0):
            return
        s = self.settings
        delta = self.goal_offset_db - self.offset_db
        if delta > 0.0:
            self.offset_db += min(delta, s.rise_db_per_min * dt_s / 60.0)
        else:
            self.offset_db -= min(-delta, s.fall_db_per_min * dt_s / 60.0)
        most = s.shape_rate_db_per_min * dt_s / 60.0
        self.shape_db += np.clip(self.goal_shape_db - self.shape_db, -most, most)


class BandActivityEstimator:
    """Speech present and ambient per band at a zone's microphones, own masking removed.

    Parameters
    ----------
    nominal_hz : array_like (bands,)
        Bands of the readings.
    settings : PrivacySettings
        ``speech_averaging_s``, ``ambient_averaging_s``, ``floor_window_s``, ``presence_snr_db``.
    update_s : float
        Nominal time between readings (sizes the floor window).
    floor_db : float
        The room estimate is at least the measured power this many dB down (as
        :class:`~audio_engine.dsp.adaptive.AmbientEstimator`): the masking is never subtracted
        to nothing.

    Notes
    -----
    Per reading: (1) subtract the masking's known power at each microphone, floored; (2) average
    the microphones in power; (3) the ambient floor is the minimum over the last
    ``floor_window_s`` of readings (the noise under intermittent speech; it under-reads a
    fluctuating ambient by a dB or two, which errs towards more masking, the private side);
    (4) a reading is speech present when its 500 Hz ... 4 kHz excess over the floor is at least
    ``presence_snr_db``; (5) the speech estimate is the exponential average, over speech-present
    readings only, of the excess power per band; the ambient estimate the exponential average,
    in dB (so a door slam moves it little), of the readings without speech. Readings with a non-finite value on every microphone are skipped and
    counted; a microphone with a non-finite value is left out of that reading.
    """

    def __init__(
        self, nominal_hz, settings: PrivacySettings | None = None, update_s: float = 1.0,
        floor_db: float = -10.0,
    ):  # fmt: skip
        self.settings = settings or PrivacySettings()
        self.nominal_hz = np.asarray(nominal_hz, dtype=np.float64).ravel()
        if not (math.isfinite(update_s) and 0.01 <= update_s <= 600.0):
            raise ConfigError(f"update_s={update_s!r} is not in 0.01..600 s")
        if not (math.isfinite(floor_db) and -40.0 <= floor_db < 0.0):
            raise ConfigError(f"floor_db={floor_db!r} is not in -40..0 dB")
        self.floor_db = float(floor_db)
        bands = self.nominal_hz.shape[0]
        self._presence = (self.nominal_hz >= PRESENCE_LOW_HZ) & (
            self.nominal_hz <= PRESENCE_HIGH_HZ
        )
        length = max(1, int(round(self.settings.floor_window_s / update_s)))
        self._history = np.full((length, bands), np.inf)
        self._cursor = 0
        self.ambient_db: np.ndarray | None = None
        self.speech_power = np.zeros(bands)
        self.speech_seen = False
        self.present = False
        self.presence_fraction = 0.0
        self.rejected = 0

    def speech_db(self) -> np.ndarray | None:
        """Estimated speech band levels at the microphones while speech is present, or None."""
        return _db(self.speech_power) if self.speech_seen else None

    def update(self, measured_db, masking_db, dt_s: float):
        """Fold in one reading: ``measured_db`` and ``masking_db`` (mics, bands) dB SPL over the
        last ``dt_s`` s. Returns ``(ambient_db, speech_db)``, either None before it is known."""
        measured = np.asarray(measured_db, dtype=np.float64)
        masking = np.asarray(masking_db, dtype=np.float64)
        if (
            measured.ndim != 2
            or measured.shape != masking.shape
            or measured.shape[1] != self.nominal_hz.shape[0]
        ):
            raise ConfigError(
                f"measured_db.shape={measured.shape}, masking_db.shape={masking.shape}: allowed "
                f"equal (mics, {self.nominal_hz.shape[0]})"
            )
        live = np.all(np.isfinite(measured), axis=1)
        if not live.any() or not (math.isfinite(dt_s) and dt_s > 0.0):
            self.rejected += 1
            return self.ambient_db, self.speech_db()
        p = 10.0 ** (measured[live] / 10.0)
        own = 10.0 ** (np.where(np.isfinite(masking[live]), masking[live], -300.0) / 10.0)
        room = np.mean(np.maximum(p - own, p * 10.0 ** (self.floor_db / 10.0)), axis=0)
        room_db = _db(room)
        self._history[self._cursor] = room_db
        self._cursor = (self._cursor + 1) % self._history.shape[0]
        floor_db = np.min(self._history, axis=0)
        floor = 10.0 ** (floor_db / 10.0)
        excess = np.maximum(room - floor, 0.0)
        ratio = excess[self._presence].sum() / max(floor[self._presence].sum(), _LOG_FLOOR)
        self.present = bool(ratio >= 10.0 ** (self.settings.presence_snr_db / 10.0))
        s = self.settings
        a_presence = math.exp(-dt_s / 60.0)
        self.presence_fraction = (
            a_presence * self.presence_fraction + (1 - a_presence) * self.present
        )
        if self.present:
            if not self.speech_seen:
                self.speech_power[:] = excess
                self.speech_seen = True
            else:
                a = math.exp(-dt_s / s.speech_averaging_s)
                self.speech_power = a * self.speech_power + (1.0 - a) * excess
        if self.ambient_db is None:
            self.ambient_db = floor_db.copy()
        elif not self.present:
            # Speech-absence weighted: the readings without speech are the ambient itself (the
            # minimum only decides presence; as an estimate it reads low where the masking
            # dominates and the subtraction leaves a noisy remainder).
            a = math.exp(-dt_s / s.ambient_averaging_s)
            self.ambient_db = a * self.ambient_db + (1.0 - a) * room_db
        return self.ambient_db, self.speech_db()


# -- the generator with a per-band shape ----------------------------------------------------------
@njit(cache=True)
def shape_magnitude(magnitude, base, shape_db, goal_db, step_db, lower_band, upper_weight, stale):
    """Slew each zone's band shape towards its goal and rebuild the per-bin magnitude.

    Parameters
    ----------
    magnitude : float64 (zones, bins), written: ``base * 10**(g/20)``, renormalised so that
        ``sum(magnitude**2) == sum(base**2)`` per zone (the output RMS does not change)
    base : float64 (zones, bins), the zone's unshaped magnitude (target curve + EQ)
    shape_db : float64 (zones, bands), current shape, moved by at most ``step_db`` per call
    goal_db : float64 (zones, bands), wanted shape (non-finite entries count as 0 dB)
    step_db : float, largest change of a band per call (one synthesis hop)
    lower_band : int64 (bins,), band below each bin (0 .. bands - 2)
    upper_weight : float64 (bins,), interpolation weight of the band above (0..1, in log f)
    stale : int64 (zones,), 1 forces a rebuild (new base); cleared. A zone whose shape did not
        move and is not stale keeps its magnitude: the steady state costs almost nothing.

    Notes
    -----
    Real-time safe, no allocation. The shape is interpolated linearly in dB over log frequency
    between band centres, as :func:`audio_engine.dsp.masking.design_magnitude` shapes the
    target, and held flat beyond the outer centres.
    """
    zones, bins = base.shape
    bands = shape_db.shape[1]
    for z in range(zones):
        moved = stale[z] != 0
        for b in range(bands):
            goal = goal_db[z, b]
            current = shape_db[z, b]
            if not np.isfinite(goal):
                goal = 0.0
            if not np.isfinite(current):
                current = 0.0
            delta = goal - current
            if delta > step_db:
                delta = step_db
            elif delta < -step_db:
                delta = -step_db
            if current + delta != shape_db[z, b]:
                moved = True
            shape_db[z, b] = current + delta
        if not moved:
            continue
        stale[z] = 0
        before = 0.0
        after = 0.0
        for k in range(bins):
            j = lower_band[k]
            w = upper_weight[k]
            gain_db = (1.0 - w) * shape_db[z, j] + w * shape_db[z, j + 1]
            value = base[z, k] * math.exp(gain_db * _NEPER_PER_DB)
            magnitude[z, k] = value
            before += base[z, k] * base[z, k]
            after += value * value
        if after > 0.0 and np.isfinite(after):
            scale = math.sqrt(before / after)
            for k in range(bins):
                magnitude[z, k] *= scale
        else:
            for k in range(bins):
                magnitude[z, k] = base[z, k]


class SpectralMaskingGenerator(MaskingGenerator):
    """:class:`~audio_engine.dsp.masking.MaskingGenerator` with a per-zone, per-band shape.

    Parameters
    ----------
    *args, **kwargs
        As :class:`~audio_engine.dsp.masking.MaskingGenerator`.
    shape_slew_db_per_s : float
        Fastest change of any band's shape, dB/s (0.001..1); a jump asked by
        :meth:`set_zone_shape_db` is spread at this rate, hop by hop.

    Notes
    -----
    Every synthesis hop (42.7 ms at 48 kHz) the shape moves towards its goal by at most
    ``shape_slew_db_per_s * hop / sample_rate`` dB and the magnitude is rebuilt from the zone's
    base magnitude (:func:`shape_magnitude`), renormalised to the same RMS: the level set with
    :meth:`set_zone_level_dba` stays the zone's RMS-equivalent level, so the calibration offset
    and the output ceiling keep their meaning whatever the shape. Consecutive hops overlap by
    50 % with a square-root Hann window, which crossfades each spectrum into the next.
    :meth:`process` stays real-time safe (the shaping is a Numba kernel on preallocated arrays).

    The shaping runs in the base class's ``_synthesise`` hook (once per hop period, before the
    first zone group synthesises); a zone whose shape is still and whose base is unchanged is
    skipped, so steady masking costs what the base generator costs.
    """

    _shaping_ready = False

    def __init__(self, *args, shape_slew_db_per_s: float = DEFAULT_SHAPE_SLEW_DB_PER_S, **kwargs):
        if isinstance(shape_slew_db_per_s, bool) or not isinstance(
            shape_slew_db_per_s, int | float
        ):
            raise ConfigError(
                f"shape_slew_db_per_s={shape_slew_db_per_s!r} is not in 0.001..1 dB/s"
            )
        if not (math.isfinite(shape_slew_db_per_s) and 0.001 <= shape_slew_db_per_s <= 1.0):
            raise ConfigError(
                f"shape_slew_db_per_s={shape_slew_db_per_s!r} is not in 0.001..1 dB/s"
            )
        super().__init__(*args, **kwargs)
        bins = self.n_fft // 2 + 1
        bands = self.target_nominal_hz.shape[0]
        x = np.array([band_index(float(f)) for f in self.target_nominal_hz])
        log_centre = np.log(exact_centre_hz(x))
        f = np.arange(bins) * (self.sample_rate / self.n_fft)
        position = np.interp(np.log(np.maximum(f, 1e-3)), log_centre, np.arange(bands, dtype=float))
        self._lower_band = np.minimum(np.floor(position), bands - 2).astype(np.int64)
        self._upper_weight = position - self._lower_band
        self.shape_slew_db_per_s = float(shape_slew_db_per_s)
        self._shape_step_db = self.shape_slew_db_per_s * self.hop / self.sample_rate
        self._base = self._magnitude.copy()
        self.shape_db = np.zeros((self.zones, bands))
        self.shape_goal_db = np.zeros((self.zones, bands))
        #: Latest privacy figures per zone, written by the supervisor for status and reports.
        self.estimated_sii = np.full(self.zones, np.nan)
        self._shaping_ready = True
        self._stale = np.ones(self.zones, np.int64)
        shape_magnitude(
            self._magnitude, self._base, self.shape_db, self.shape_goal_db, self._shape_step_db,
            self._lower_band, self._upper_weight, self._stale,
        )  # fmt: skip

    def set_zone_shape_db(self, zone: int, shape_db) -> None:
        """Ask for a zone's band shape (dB on the target curve's bands, each within ±6 dB).

        The shape moves there at ``shape_slew_db_per_s`` from the next hop. Control thread;
        safe while audio runs (it writes one row).
        """
        z = self._check_zone(zone)
        shape = np.asarray(shape_db, dtype=np.float64).ravel()
        if shape.shape != self.target_level_db.shape:
            raise ConfigError(
                f"shape_db has {shape.shape[0]} values; allowed: one per target band "
                f"({self.target_level_db.shape[0]})"
            )
        if not np.all(np.isfinite(shape)) or np.any(np.abs(shape) > 6.0):
            raise ConfigError(f"shape_db={shape.tolist()} is not within ±6 dB in every band")
        self.shape_goal_db[z] = shape

    def set_zone_eq_db(self, zone: int, eq_db) -> None:
        super().set_zone_eq_db(zone, eq_db)
        if self._shaping_ready:
            z = self._check_zone(zone)
            self._base[z] = self._magnitude[z]
            self._stale[z] = 1

    def start(self, zone: int | None = None) -> None:
        # A restart after a fault rebuilds the unshaped magnitude: shape it again.
        super().start(zone)
        if self._shaping_ready:
            self._stale.fill(1)

    def reset(self) -> None:
        super().reset()
        if self._shaping_ready:
            self._stale.fill(1)

    def _synthesise(self) -> None:
        if self._shaping_ready:
            shape_magnitude(
                self._magnitude, self._base, self.shape_db, self.shape_goal_db,
                self._shape_step_db, self._lower_band, self._upper_weight, self._stale,
            )  # fmt: skip
        super()._synthesise()

    def status(self) -> list[dict]:
        rows = super().status()
        for z, row in enumerate(rows):
            row["shape_db"] = [round(float(v), 2) for v in self.shape_db[z]]
            row["estimated_sii"] = float(self.estimated_sii[z])
        return rows

    def telemetry_summary(self) -> dict:
        summary = super().telemetry_summary()
        summary["masking band shapes dB"] = [
            [round(float(v), 2) for v in row] for row in self.shape_db
        ]
        summary["estimated SII"] = [
            None if not np.isfinite(v) else round(float(v), 3) for v in self.estimated_sii
        ]
        summary["privacy classes"] = [
            None if not np.isfinite(v) else sii_module.privacy_class(float(np.clip(v, 0, 1)))
            for v in self.estimated_sii
        ]
        return summary


class MicBandTap(PowerTap):
    """One-third-octave band levels of each microphone, for :class:`BandActivityEstimator`.

    Sits first in the masking pipeline on a duplex stream, as
    :class:`~audio_engine.dsp.adaptive.MicLevelTap` does (both are a
    :class:`~audio_engine.dsp.adaptive.PowerTap`): ``channels`` microphones in, one silent channel
    out; the audio thread filters (IEC 61260-1 filterbank) and accumulates band powers, the
    control thread calls :meth:`levels_db` once per update.

    Parameters
    ----------
    sample_rate, block_size, channels : int
    spl_offset_db : array_like (channels,)
        Per microphone, dB SPL at 0 dBFS RMS.
    nominal_hz : array_like (bands,)
        Consecutive band centres (the target curve's); all must fit below Nyquist.

    Notes
    -----
    :meth:`process` is real-time safe.
    """

    def __init__(self, sample_rate: int, block_size: int, channels: int, spl_offset_db, nominal_hz):
        nominal = np.asarray(nominal_hz, dtype=np.float64).ravel()
        bank = OctaveFilterBank(
            sample_rate, block_size, channels, float(nominal[0]), float(nominal[-1])
        )
        if bank.nominal_hz.shape != nominal.shape:
            raise ConfigError(
                f"bands {nominal.tolist()} do not all fit below Nyquist at "
                f"sample_rate={bank.sample_rate}; allowed up to {bank.nominal_hz[-1]:g} Hz"
            )
        super().__init__(bank, spl_offset_db)
        self.nominal_hz = nominal

    def levels_db(self) -> np.ndarray | None:
        """Band levels (mics, bands) dB SPL since the previous call, or None if no audio came."""
        power = self.mean_power()
        if power is None:
            return None
        return _db(power.reshape(self.channels, -1)) + self.spl_offset_db[:, None]


# -- per zone: estimator + law + rate limits; per site: the supervisor ----------------------------
class SpectralZoneController:
    """One zone's estimator, law and rate limiter, run once per control update.

    Parameters
    ----------
    law : SpectralPrivacyLaw
    update_s : float
        Nominal time between updates, s.

    Notes
    -----
    Plain arrays at control rate: a simulated day of 1 s updates runs in seconds.
    """

    def __init__(
        self, law: SpectralPrivacyLaw, update_s: float = 1.0, start_dba: float | None = None
    ):
        self.law = law
        self.settings = law.settings
        self.estimator = BandActivityEstimator(law.nominal_hz, law.settings, update_s)
        # Until the first estimate, play what a fixed installation would (the zone's nominal
        # level, target shape): the law then moves from there at its slow rates.
        start_dba = (
            law.max_dba if start_dba is None else min(max(start_dba, law.min_dba), law.max_dba)
        )
        start = start_dba - law.a_norm_db
        self.limiter = RateLimitedShape(start, law.nominal_hz.shape[0], law.settings)
        self.since_solve_s = math.inf
        self.goal_level_dba = start_dba
        self.goal_sii = float("nan")
        self.sii = float("nan")
        self.speech_at_listener_db = law.speech_at_listener_db()

    @property
    def offset_db(self) -> float:
        return self.limiter.offset_db

    @property
    def shape_db(self) -> np.ndarray:
        return self.limiter.shape_db

    def band_levels_db(self) -> np.ndarray:
        """The masking band levels at the listener the law asks for now (rate-limited)."""
        return self.law.band_levels_db(self.limiter.offset_db, self.limiter.shape_db)

    def level_dba(self) -> float:
        """A-weighted masking level at the listener asked for now."""
        return float(power_sum_db(self.band_levels_db() + self.law.aweight_db, axis=-1))

    def generator_level_dba(self) -> float:
        """RMS-equivalent level for the generator, rounded *up* to its 0.5 dB grid (the private
        side), never above the ceiling."""
        exact = self.law.generator_level_dba(self.limiter.offset_db, self.limiter.shape_db)
        level = math.ceil(exact / LEVEL_STEP_DB - 1e-9) * LEVEL_STEP_DB
        # The A-weighted level at the listener moves one for one with the generator level, so
        # max_dba caps the generator at `bound`. Rounding up must not pass it, and neither may
        # the rate limiter's in-between states (offset and shape move separately, so a moment's
        # combination can sit a few thousandths of a dB above max_dba): then round down below it.
        bound = exact + (self.law.max_dba - self.level_dba())
        if level > bound + 1e-9:
            level = math.floor(bound / LEVEL_STEP_DB + 1e-9) * LEVEL_STEP_DB
        return min(level, math.floor(self.law.ceiling_dba / LEVEL_STEP_DB) * LEVEL_STEP_DB)

    def update(self, measured_db, masking_at_mics_db, dt_s: float) -> None:
        """One control update: the zone's microphones' band levels and the masking's own band
        levels at them (mics, bands) dB SPL over the last ``dt_s`` s."""
        ambient, speech = self.estimator.update(measured_db, masking_at_mics_db, dt_s)
        self.since_solve_s += dt_s if math.isfinite(dt_s) and dt_s > 0 else 0.0
        if ambient is not None and self.since_solve_s >= self.settings.solve_every_s:
            self.since_solve_s = 0.0
            talker = None
            if speech is not None:
                talker = speech[self.law.sii_index] + self.settings.mic_speech_offset_db
            self.speech_at_listener_db = self.law.speech_at_listener_db(talker)
            offset, shape, level, value = self.law.solve(ambient, talker)
            self.goal_level_dba, self.goal_sii = level, value
            self.limiter.set_goal(offset, shape)
        self.limiter.step(dt_s)
        if ambient is not None:
            self.sii = self.law.sii(self.band_levels_db(), ambient, self.speech_at_listener_db)


def listener_band_levels_db(law: SpectralPrivacyLaw, level_rms_dba: float, shape_db) -> np.ndarray:
    """Masking band levels at the listener from a generator's RMS-equivalent level and shape
    (the inverse of :meth:`SpectralPrivacyLaw.generator_level_dba`); -inf level: silent."""
    shape = np.asarray(shape_db, dtype=np.float64)
    r = float(np.sum(law.power_share * 10.0 ** (shape / 10.0)))
    return law.target_level_db + shape + level_rms_dba - law.a_norm_db - 10.0 * math.log10(r)


class SpectralMaskingSupervisor:
    """Runs the spectral law on a site: ``audio-engine mask --adaptive spectral``.

    Wraps a :class:`~audio_engine.schedule.MaskingSupervisor` (schedule, install ramp-in,
    start/stop, reload) and replaces its level-only rule: each :meth:`tick` reads the band levels
    of the array (:class:`MicBandTap`), removes every zone's own masking at each microphone
    (its band levels now through ``mic_coupling_db``), updates each zone's
    :class:`SpectralZoneController`, and hands the generator the zone's level (plus the schedule
    and ramp-in offsets) and band shape.

    Parameters
    ----------
    site : SiteConfig
        With ``[adaptive]`` enabled and an array (the zones' ``microphones`` and
        ``mic_coupling_db`` are used).
    generator : SpectralMaskingGenerator
        Built for ``site``'s zones (:func:`build_spectral_masking`).
    band_tap : MicBandTap, optional
        Where band levels come from when :meth:`tick` is not given them.
    settings : PrivacySettings, optional

    Notes
    -----
    Control thread only (about a millisecond per zone per solve). :meth:`status` rows carry the
    keys the mask command's status table reads (``adaptive``: ambient, goal, state); the state
    reads e.g. "SII 0.18 (normal), target 0.20; shape -1.0/-2.5/+2.0 dB" (mean shape below
    500 Hz / 500 Hz-2 kHz / above 2 kHz).
    """

    def __init__(self, site, generator, band_tap=None, settings: PrivacySettings | None = None):
        from audio_engine.schedule import MaskingSupervisor

        if not isinstance(generator, SpectralMaskingGenerator):
            raise ConfigError(
                f"generator is a {type(generator).__name__}; allowed: SpectralMaskingGenerator "
                "(build it with build_spectral_masking)"
            )
        if site.adaptive_array is None:
            raise ConfigError(
                f"spectral adaptive masking needs [adaptive] enabled with an array in '{site.path}'"
            )
        self.settings = settings or PrivacySettings()
        self.band_tap = band_tap
        self.base = MaskingSupervisor(site, generator, None)
        self.base.adaptive = None  # the spectral law replaces the level-only rule
        self.site = site
        self.generator = generator
        self._build(site)
        self.mic_band_levels_db: np.ndarray | None = None

    def _build(self, site) -> None:
        nominal = np.asarray(site.target_nominal_hz)
        # Status line summary of a shape: below 500 Hz, 500 Hz-2 kHz, above 2 kHz.
        self._shape_groups = (nominal < 500, (nominal >= 500) & (nominal <= 2000), nominal > 2000)
        self.coupling_db = np.array([z.mic_coupling_db for z in site.zones], dtype=np.float64)
        self.zone_mics = [list(z.microphones) for z in site.zones]
        g = self.generator
        power = np.stack([self._band_power(g._base[z]) for z in range(g.zones)])
        self.controllers = [
            SpectralZoneController(
                SpectralPrivacyLaw(
                    site.target_nominal_hz, site.target_level_db, zone.min_dba, zone.max_dba,
                    zone.ceiling_dba, self.settings, electrical_band_power=power[z],
                ),
                site.adaptive.update_s,
                start_dba=zone.level_dba,
            )
            for z, zone in enumerate(site.zones)
        ]  # fmt: skip

    def _band_power(self, magnitude: np.ndarray) -> np.ndarray:
        """Power of a per-bin magnitude in each target band (bins to the nearest band centre)."""
        g = self.generator
        nearest = g._lower_band + (g._upper_weight >= 0.5)
        return np.bincount(nearest, weights=magnitude**2, minlength=g.target_nominal_hz.shape[0])

    def apply_site(self, site) -> None:
        """A reloaded site (same zones): as :meth:`MaskingSupervisor.apply_site`; the law takes
        the new ranges, ceilings and calibration and continues from the levels, shapes and
        room estimates it had."""
        previous = self.controllers
        self.base.apply_site(site)
        self.base.adaptive = None
        self.site = site
        self._build(site)
        # Carry what the zones play and what the room was heard to be into the new law, so a
        # reload moves nothing at once (the new bounds then apply at the usual slow rates).
        for old, new in zip(previous, self.controllers, strict=True):
            if old.shape_db.shape == new.shape_db.shape:
                new.limiter.offset_db = old.limiter.offset_db
                new.limiter.goal_offset_db = old.limiter.goal_offset_db
                new.limiter.shape_db[:] = old.limiter.shape_db
                new.limiter.goal_shape_db[:] = old.limiter.goal_shape_db
                new.estimator = old.estimator
                new.estimator.settings = new.settings

    def masking_at_mics_db(self) -> np.ndarray:
        """Every zone's masking band levels now at each microphone, power-summed (mics, bands)."""
        g = self.generator
        now = g.current_level_dba()
        levels = np.full((g.zones, g.target_nominal_hz.shape[0]), -300.0)
        for z, c in enumerate(self.controllers):
            if np.isfinite(now[z]):
                levels[z] = listener_band_levels_db(c.law, float(now[z]), g.shape_db[z])
        return power_sum_db(levels[:, None, :] + self.coupling_db[:, :, None], axis=0)

    def tick(self, when, dt_s: float, mic_band_levels_db=None) -> None:
        """One control step at local time ``when``, ``dt_s`` s after the previous one.

        ``mic_band_levels_db`` (mics, bands) dB SPL; read from the band tap if not given; without
        either the law holds (levels and shapes stay, the schedule still applies).
        """
        from audio_engine.dsp.masking import quantize_level_dba
        from audio_engine.schedule import planned_level_dba

        if mic_band_levels_db is None and self.band_tap is not None:
            mic_band_levels_db = self.band_tap.levels_db()
        g = self.generator
        if mic_band_levels_db is not None:
            measured = np.asarray(mic_band_levels_db, dtype=np.float64)
            if measured.shape != (self.coupling_db.shape[1], g.target_nominal_hz.shape[0]):
                raise ConfigError(
                    f"mic_band_levels_db.shape={measured.shape} is not "
                    f"(mics={self.coupling_db.shape[1]}, bands={g.target_nominal_hz.shape[0]})"
                )
            self.mic_band_levels_db = measured
            own = self.masking_at_mics_db()
            for c, mics in zip(self.controllers, self.zone_mics, strict=True):
                c.update(measured[mics], own[mics], dt_s)
        for z, (zone, c) in enumerate(zip(self.site.zones, self.controllers, strict=True)):
            level, playing = planned_level_dba(
                zone, self.site.schedule, self.site.install_ramp, when, c.generator_level_dba()
            )
            if playing and not g.running[z]:
                g.start(z)
            elif not playing and g.running[z]:
                g.stop(z)
            self.base.playing[z] = playing
            if quantize_level_dba(level) != g.requested_level_dba[z]:
                g.set_zone_level_dba(z, quantize_level_dba(level))
            g.set_zone_shape_db(z, c.shape_db)
            g.estimated_sii[z] = c.sii
        self.base.ticks += 1

    @property
    def playing(self) -> np.ndarray:
        return self.base.playing

    def status(self) -> list[dict]:
        """Per zone: the generator's status plus the law's state (ambient, goal, SII, class)."""
        rows = self.generator.status()
        for row, zone, c in zip(rows, self.site.zones, self.controllers, strict=True):
            row["name"] = zone.name
            ambient = c.estimator.ambient_db
            value = c.sii
            state = "waiting for mics"
            if np.isfinite(value):
                cls = sii_module.privacy_class(float(np.clip(value, 0.0, 1.0)))
                low, mid, high = (
                    float(np.mean(c.shape_db[group])) if group.any() else 0.0
                    for group in self._shape_groups
                )
                state = (
                    f"SII {value:.2f} ({cls}), target {self.settings.sii_target:.2f}; "
                    f"shape {low:+.1f}/{mid:+.1f}/{high:+.1f} dB"
                )
            row["adaptive"] = {
                "ambient_dba": None
                if ambient is None
                else a_weighted_level_db(ambient, c.law.nominal_hz),
                "goal_dba": c.goal_level_dba,
                "level_dba": c.level_dba(),
                "state": state,
                "sii": value,
                "speech_present": c.estimator.present,
            }
        return rows


def build_spectral_masking(site, with_tap: bool = True, settings: PrivacySettings | None = None):
    """Everything ``audio-engine mask --adaptive spectral`` needs, built from a site config.

    Returns
    -------
    pipeline : Pipeline
        ``[MicBandTap, SpectralMaskingGenerator]`` (or the generator alone without a tap), named
        ``"masking"``.
    generator : SpectralMaskingGenerator
        Silent until the supervisor's first tick.
    tap : MicBandTap or None
    supervisor : SpectralMaskingSupervisor
    """
    from audio_engine.pipeline import Pipeline
    from audio_engine.pipelines import MASKING

    generator = SpectralMaskingGenerator.from_site(site)
    generator.reset()
    array = site.adaptive_array
    tap = None
    if with_tap and array is not None:
        tap = MicBandTap(
            site.sample_rate, site.block_size, array.mics, array.sensitivity_offsets_db(),
            site.target_nominal_hz,
        )  # fmt: skip
        pipeline = Pipeline([tap, generator], name=MASKING)
    else:
        pipeline = Pipeline([generator], name=MASKING)
    return pipeline, generator, tap, SpectralMaskingSupervisor(site, generator, tap, settings)
