"""SII (ANSI S3.5-1997 one-third-octave procedure) against every reference test vector, and
the ASTM E1130 privacy class."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp import sii as sii_module
from audio_engine.dsp.sii import (
    band_to_spectrum_level_db,
    privacy_class,
    speech_intelligibility_index,
    speech_privacy,
    speech_spectrum_at_distance_db,
)
from audio_engine.errors import ConfigError

# Transcribed from /work/shared/standards/standards_tables.json
# (ansi_s3_5_1997_sii_one_third_octave.test_vectors): the S3.5 working group's reference
# program SII.C test files, the standard's Annex C.2 worked example and computed cases.
# (name, speech E'_i, noise N'_i, threshold T'_i, importance or None, SII)
VECTORS = [
    (
        "WG S3-79 TO.TST",
        [
            90.0,
            5.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
        ],
        [
            10.0,
            -10.0,
            -10.0,
            75.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            10.0,
            10.0,
            10.0,
            10.0,
        ],
        [90.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        None,
        0.4453910059,
    ),
    (
        "WG S3-79 TO_1.TST (alternative importance)",
        [
            90.0,
            5.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
        ],
        [
            10.0,
            -10.0,
            -10.0,
            75.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            -10.0,
            10.0,
            10.0,
            10.0,
            10.0,
        ],
        [90.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.0],
        0.438217654,
    ),
    (
        "ANSI S3.5 Annex C.2 worked example",
        [54.0] * 18,
        [
            40.0,
            30.0,
            20.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [0.0] * 18,
        None,
        0.8513748619,
    ),
    (
        "normal speech, 30 dB flat noise, 40 dB HL flat loss",
        [
            32.41,
            34.48,
            34.75,
            33.98,
            34.59,
            34.27,
            32.06,
            28.3,
            25.01,
            23.0,
            20.15,
            17.32,
            13.18,
            11.55,
            9.33,
            5.31,
            2.59,
            1.13,
        ],
        [30.0] * 18,
        [40.0] * 18,
        None,
        0.2184539329,
    ),
    (
        "standard normal speech in quiet (-80 dB noise)",
        [
            32.41,
            34.48,
            34.75,
            33.98,
            34.59,
            34.27,
            32.06,
            28.3,
            25.01,
            23.0,
            20.15,
            17.32,
            13.18,
            11.55,
            9.33,
            5.31,
            2.59,
            1.13,
        ],
        [-80.0] * 18,
        [0.0] * 18,
        None,
        0.99582516666667,
    ),
    (
        "flat 0 dB speech, -80 dB noise (quiet)",
        [0.0] * 18,
        [-80.0] * 18,
        [0.0] * 18,
        None,
        0.9247666667,
    ),
    (
        "flat 80 dB speech, 20 dB noise (loud)",
        [80.0] * 18,
        [20.0] * 18,
        [0.0] * 18,
        None,
        0.6891314875,
    ),
    (
        "flat 40 dB speech, -50 dB noise (mid)",
        [40.0] * 18,
        [-50.0] * 18,
        [0.0] * 18,
        None,
        0.9339307437,
    ),
]

NORMAL_SPEECH_DB = [32.41, 34.48, 34.75, 33.98, 34.59, 34.27, 32.06, 28.3, 25.01, 23.0, 20.15,
                    17.32, 13.18, 11.55, 9.33, 5.31, 2.59, 1.13]  # fmt: skip


@pytest.mark.parametrize(
    ("speech", "noise", "threshold", "importance", "expected"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_reference_test_vectors(speech, noise, threshold, importance, expected):
    got = speech_intelligibility_index(speech, noise, threshold, importance)
    assert got == pytest.approx(expected, abs=1e-6)


def test_annex_c2_equivalent_masking_spectrum():
    """Annex C.2 lists Z_1..Z_3 = 40, 34.66, 25.04 dB: check the spread-of-masking step."""
    speech = np.full(18, 54.0)
    noise = np.array([40.0, 30.0, 20.0] + [0.0] * 15)
    b = np.maximum(noise, speech - 24.0)
    f = sii_module.BAND_CENTRES_HZ
    slope = -80.0 + 0.6 * (b + 10 * np.log10(f) - 6.353)
    z2 = 10 * np.log10(10 ** (noise[1] / 10) + 10 ** ((b[0] + 3.32 * slope[0] *
                       np.log10(0.89 * f[1] / f[0])) / 10))  # fmt: skip
    assert z2 == pytest.approx(34.66, abs=0.005)
    # and the whole computation agrees with the worked example's SII
    assert speech_intelligibility_index(speech, noise) == pytest.approx(0.8513748619, abs=1e-9)


def test_tables_match_the_standard():
    assert sii_module.BAND_IMPORTANCE.sum() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(sii_module.SPEECH_SPECTRUM_LEVEL_DB["normal"], NORMAL_SPEECH_DB)
    # 10 lg(bandwidth) of the exact one-third-octave bands (within the table's 0.05 dB rounding
    # of the nominal centres).
    from audio_engine.dsp.bands import band_edges_hz, band_index

    lower, upper = band_edges_hz(np.array([band_index(f) for f in sii_module.BAND_CENTRES_HZ]))
    np.testing.assert_allclose(
        sii_module.BANDWIDTH_ADJUSTMENT_DB, 10 * np.log10(upper - lower), atol=0.06
    )


def test_band_levels_convert_to_spectrum_levels():
    band = np.full(18, 50.0)
    np.testing.assert_allclose(band_to_spectrum_level_db(band)[[0, -1]], [34.35, 17.35])


def test_privacy_classes():
    assert privacy_class(0.0) == "confidential"
    assert privacy_class(0.05) == "confidential"
    assert privacy_class(0.0501) == "normal"
    assert privacy_class(0.20) == "normal"
    assert privacy_class(0.25) == "marginal"
    assert privacy_class(0.31) == "none"
    with pytest.raises(ConfigError, match=r"sii=1.5 is not in 0..1"):
        privacy_class(1.5)


def test_more_masking_or_distance_means_more_privacy():
    quiet = speech_privacy(np.full(18, 20.0), distance_m=2.0)
    masked = speech_privacy(np.full(18, 40.0), distance_m=2.0)
    far = speech_privacy(np.full(18, 40.0), distance_m=8.0)
    assert quiet.sii > masked.sii > far.sii
    assert far.privacy_index == pytest.approx(100 * (1 - far.sii))
    assert far.as_dict()["privacy_class"] == far.privacy_class
    # inverse-square: 2 m -> 4 m is -6.02 dB
    np.testing.assert_allclose(
        speech_spectrum_at_distance_db("normal", 2.0)
        - speech_spectrum_at_distance_db("normal", 4.0),
        6.0206,
        atol=1e-4,
    )
    # Speech at 1 m in silence is intelligible: the standard's own spectrum gives 0.9958.
    assert speech_privacy(np.full(18, -60.0), distance_m=1.0).sii == pytest.approx(0.9958, abs=1e-3)


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"vocal_effort='whisper' is not one of"):
        speech_spectrum_at_distance_db("whisper")
    with pytest.raises(ConfigError, match=r"distance_m=0 is not in 0.1..100 m"):
        speech_spectrum_at_distance_db("normal", 0)
    with pytest.raises(ConfigError, match=r"noise_spectrum_db has a non-finite value"):
        speech_intelligibility_index(np.zeros(18), np.full(18, np.nan))
    with pytest.raises(ConfigError, match=r"speech_spectrum_db has shape \(17,\); 18 values"):
        speech_intelligibility_index(np.zeros(17), np.zeros(18))
