"""Speech Intelligibility Index, ANSI S3.5-1997 one-third-octave band procedure, and privacy class.

The procedure (ANSI S3.5-1997 sections 4-5, Table 3; checked against every test vector of the
S3.5 working group's reference program, see tests/test_sii.py):

1. self-speech masking ``V_i = E'_i - 24`` dB; ``B_i = max(N'_i, V_i)``;
2. upward spread of masking, slope ``C_i = -80 + 0.6 (B_i + 10 lg F_i - 6.353)`` dB/octave,
   ``Z_i = 10 lg(10^(N'_i/10) + sum_{k<i} 10^((B_k + 3.32 C_k lg(0.89 F_i / F_k)) / 10))``,
   ``Z_1 = B_1``;
3. internal noise ``X_i = X'_i + T'_i`` (reference internal noise plus hearing threshold);
   disturbance ``D_i = max(Z_i, X_i)``;
4. level distortion ``L_i = min(1, 1 - (E'_i - U_i - 10) / 160)`` with ``U_i`` the normal-effort
   standard speech spectrum;
5. audibility ``K_i = clip((E'_i - D_i + 15) / 30, 0, 1)``; ``A_i = L_i K_i``;
   ``SII = sum I_i A_i``.

All spectra are *spectrum levels* (dB per Hz) at the 18 centres 160 Hz ... 8 kHz; measured
one-third-octave *band levels* convert by subtracting ``10 lg(bandwidth)``
(:data:`BANDWIDTH_ADJUSTMENT_DB`).

Speech privacy in open-plan offices (ASTM E1130) is graded on the Articulation Index, of
which the SII is the standardised successor; we use the SII in its place and say so in every
report. Privacy index ``PI = (1 - SII) * 100``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from audio_engine.errors import ConfigError

VocalEffort = Literal["normal", "raised", "loud", "shout"]

#: Band centres of the one-third-octave procedure in Hz, ANSI S3.5-1997 Table 3.
BAND_CENTRES_HZ = np.array(
    [160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000,
     6300, 8000], dtype=np.float64,
)  # fmt: skip

#: Band importance function, "average speech", ANSI S3.5-1997 Table 3.
BAND_IMPORTANCE = np.array(
    [0.0083, 0.0095, 0.0150, 0.0289, 0.0440, 0.0578, 0.0653, 0.0711, 0.0818, 0.0844, 0.0882,
     0.0898, 0.0868, 0.0844, 0.0771, 0.0527, 0.0364, 0.0185],
)  # fmt: skip

#: Standard speech spectrum levels (dB per Hz, at 1 m in front of the talker in free field),
#: ANSI S3.5-1997 Table 3; "normal" is U_i of the level distortion factor.
SPEECH_SPECTRUM_LEVEL_DB: dict[str, np.ndarray] = {
    "normal": np.array([32.41, 34.48, 34.75, 33.98, 34.59, 34.27, 32.06, 28.30, 25.01, 23.00,
                        20.15, 17.32, 13.18, 11.55, 9.33, 5.31, 2.59, 1.13]),
    "raised": np.array([33.81, 33.92, 38.98, 38.57, 39.11, 40.15, 38.78, 36.37, 33.86, 31.89,
                        28.58, 25.32, 22.35, 20.15, 16.78, 11.47, 7.67, 5.07]),
    "loud": np.array([35.29, 37.76, 41.55, 43.78, 43.30, 44.85, 45.55, 44.05, 42.16, 40.53,
                      37.70, 34.39, 30.98, 28.21, 25.41, 18.35, 13.87, 11.39]),
    "shout": np.array([30.77, 36.65, 42.50, 46.51, 47.40, 49.24, 51.21, 51.44, 51.31, 49.63,
                       47.65, 44.32, 40.80, 38.13, 34.41, 28.24, 23.45, 20.72]),
}  # fmt: skip

#: Reference internal noise spectrum level X'_i in dB, ANSI S3.5-1997 Table 3.
REFERENCE_INTERNAL_NOISE_DB = np.array(
    [0.6, -1.7, -3.9, -6.1, -8.2, -9.7, -10.8, -11.9, -12.5, -13.5, -15.4, -17.7, -21.2, -24.2,
     -25.9, -23.6, -15.8, -7.1],
)  # fmt: skip

#: 10 lg(bandwidth in Hz) of each one-third-octave band: band level - this = spectrum level.
BANDWIDTH_ADJUSTMENT_DB = np.array(
    [15.65, 16.65, 17.65, 18.65, 19.65, 20.65, 21.65, 22.65, 23.65, 24.65, 25.65, 26.65, 27.65,
     28.65, 29.65, 30.65, 31.65, 32.65],
)  # fmt: skip

#: Self-speech masking: speech masks itself 24 dB below its spectrum level (S3.5 4.3.2.1).
SELF_SPEECH_MASKING_DB = 24.0

#: ASTM E1130 privacy classes by upper SII/AI bound. The 0.05 and 0.20 bounds are the
#: standard's ("confidential", "normal"); 0.30 for "marginal" is a common reading that we could
#: not confirm in the standard's text, so reports mark it as such.
PRIVACY_CLASSES: tuple[tuple[str, float], ...] = (
    ("confidential", 0.05),
    ("normal", 0.20),
    ("marginal", 0.30),
    ("none", 1.0),
)

BANDS = len(BAND_CENTRES_HZ)


def _vector(name: str, value: object) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.shape not in ((), (BANDS,)):
        raise ConfigError(f"{name} has shape {v.shape}; {BANDS} values (160 Hz ... 8 kHz) needed")
    v = np.broadcast_to(v, (BANDS,)).copy()
    if not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} has a non-finite value; {BANDS} finite dB values are needed")
    return v


def speech_intelligibility_index(
    speech_spectrum_db: np.ndarray,
    noise_spectrum_db: np.ndarray,
    threshold_db: np.ndarray | float = 0.0,
    importance: np.ndarray | None = None,
) -> float:
    """SII of the one-third-octave band procedure (ANSI S3.5-1997).

    Parameters
    ----------
    speech_spectrum_db : array_like, shape (18,)
        Equivalent speech spectrum level E'_i, dB per Hz, at the 18 centres 160 Hz ... 8 kHz.
    noise_spectrum_db : array_like, shape (18,)
        Equivalent noise spectrum level N'_i, dB per Hz.
    threshold_db : array_like, shape (18,) or float
        Hearing threshold level T'_i, dB HL (0 for normal hearing).
    importance : array_like, shape (18,), optional
        Band importance I_i (sums to 1 for a full function); default: Table 3 average speech.

    Returns
    -------
    float
        SII in 0..1.
    """
    e = _vector("speech_spectrum_db", speech_spectrum_db)
    n = _vector("noise_spectrum_db", noise_spectrum_db)
    t = _vector("threshold_db", threshold_db)
    weights = BAND_IMPORTANCE if importance is None else _vector("importance", importance)
    f = BAND_CENTRES_HZ

    b = np.maximum(n, e - SELF_SPEECH_MASKING_DB)
    slope = -80.0 + 0.6 * (b + 10.0 * np.log10(f) - 6.353)
    z = np.empty(BANDS)
    z[0] = b[0]
    for i in range(1, BANDS):
        spread = b[:i] + 3.32 * slope[:i] * np.log10(0.89 * f[i] / f[:i])
        z[i] = 10.0 * np.log10(10.0 ** (0.1 * n[i]) + np.sum(10.0 ** (0.1 * spread)))
    disturbance = np.maximum(z, REFERENCE_INTERNAL_NOISE_DB + t)
    distortion = np.minimum(1.0, 1.0 - (e - SPEECH_SPECTRUM_LEVEL_DB["normal"] - 10.0) / 160.0)
    audibility = np.clip((e - disturbance + 15.0) / 30.0, 0.0, 1.0)
    return float(np.sum(weights * distortion * audibility))


def speech_spectrum_at_distance_db(
    vocal_effort: VocalEffort = "normal", distance_m: float = 1.0, attenuation_db: float = 0.0
) -> np.ndarray:
    """Standard speech spectrum level at ``distance_m`` from the talker, dB per Hz.

    The Table 3 spectra are for 1 m in free field; we apply the inverse-square law
    (-6.02 dB per doubling) and an optional extra ``attenuation_db`` (screen, partition). A real
    office's reverberant field makes the drop smaller beyond a few metres, so for a measured
    room pass the measured talker-to-listener attenuation instead of a distance.
    """
    if vocal_effort not in SPEECH_SPECTRUM_LEVEL_DB:
        raise ConfigError(
            f"vocal_effort={vocal_effort!r} is not one of {list(SPEECH_SPECTRUM_LEVEL_DB)}"
        )
    if not np.isfinite(distance_m) or not 0.1 <= distance_m <= 100.0:
        raise ConfigError(f"distance_m={distance_m!r} is not in 0.1..100 m")
    if not np.isfinite(attenuation_db) or not 0.0 <= attenuation_db <= 100.0:
        raise ConfigError(f"attenuation_db={attenuation_db!r} is not in 0..100 dB")
    return SPEECH_SPECTRUM_LEVEL_DB[vocal_effort] - 20.0 * np.log10(distance_m) - attenuation_db


def band_to_spectrum_level_db(band_level_db: np.ndarray) -> np.ndarray:
    """One-third-octave band levels (160 Hz ... 8 kHz) to spectrum levels, dB per Hz."""
    return _vector("band_level_db", band_level_db) - BANDWIDTH_ADJUSTMENT_DB


def privacy_class(sii: float) -> str:
    """ASTM E1130 privacy class of an SII (used in place of the AI): "confidential" (<= 0.05),
    "normal" (<= 0.20), "marginal" (<= 0.30, bound not confirmed) or "none"."""
    if not np.isfinite(sii) or not 0.0 <= sii <= 1.0:
        raise ConfigError(f"sii={sii!r} is not in 0..1")
    for name, upper in PRIVACY_CLASSES:
        if sii <= upper:
            return name
    return "none"  # pragma: no cover - the last bound is 1.0


@dataclass(frozen=True)
class PrivacyResult:
    """SII at a listener for a stated talker, and what it means for privacy."""

    sii: float
    privacy_index: float
    privacy_class: str
    vocal_effort: str
    distance_m: float
    attenuation_db: float

    def as_dict(self) -> dict:
        return {
            "sii": round(self.sii, 4),
            "privacy_index": round(self.privacy_index, 1),
            "privacy_class": self.privacy_class,
            "vocal_effort": self.vocal_effort,
            "distance_m": self.distance_m,
            "attenuation_db": self.attenuation_db,
            "method": "ANSI S3.5-1997 one-third-octave SII, used in place of the ASTM E1130 AI",
        }


def speech_privacy(
    masking_band_db: np.ndarray,
    vocal_effort: VocalEffort = "normal",
    distance_m: float = 4.0,
    attenuation_db: float = 0.0,
) -> PrivacyResult:
    """SII and privacy class at a listener from measured masking-plus-background band levels.

    Parameters
    ----------
    masking_band_db : array_like, shape (18,)
        Measured one-third-octave band levels (dB SPL) of everything that is not the talker
        (masking plus background), at the 18 centres 160 Hz ... 8 kHz.
    vocal_effort, distance_m, attenuation_db
        The stated talker (see :func:`speech_spectrum_at_distance_db`).
    """
    speech = speech_spectrum_at_distance_db(vocal_effort, distance_m, attenuation_db)
    sii = speech_intelligibility_index(speech, band_to_spectrum_level_db(masking_band_db))
    return PrivacyResult(
        sii=sii,
        privacy_index=(1.0 - sii) * 100.0,
        privacy_class=privacy_class(sii),
        vocal_effort=vocal_effort,
        distance_m=float(distance_m),
        attenuation_db=float(attenuation_db),
    )
