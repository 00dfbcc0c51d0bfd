"""One-third-octave band centres, base-ten system (IEC 61260-1:2014, formula (1)/(2)).

Exact mid-band frequencies are ``f_m = 1000 * G**(x / 3)`` with ``G = 10**(3/10)``; the nominal
labels (100, 125, 160 ... Hz) are the rounded values of IEC 61260-1 Annex E / ISO 266. Every
module that speaks of bands (masking targets, calibration EQ, SII, measurement) takes them from
here so band indices mean the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

#: Octave frequency ratio, base-ten system (IEC 61260-1:2014, 5.2).
G = 10.0 ** (3.0 / 10.0)

#: Nominal one-third-octave mid-band frequencies from 10 Hz to 20 kHz (ISO 266 / IEC 61260-1).
NOMINAL_HZ = (
    10, 12.5, 16, 20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
    1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
)  # fmt: skip

#: Band index ``x`` of each nominal frequency: 1000 Hz is x = 0.
_INDEX = {f: i - 20 for i, f in enumerate(NOMINAL_HZ)}


def band_index(nominal_hz: float) -> int:
    """Band number ``x`` (1 kHz = 0) of a nominal centre; ValueError if it is not one."""
    try:
        return _INDEX[nominal_hz]
    except KeyError:
        raise ValueError(
            f"nominal_hz={nominal_hz!r} is not a one-third-octave nominal frequency; allowed: {list(NOMINAL_HZ)}"
        ) from None


def exact_centre_hz(x: int | np.ndarray) -> np.ndarray:
    """Exact mid-band frequency of band number ``x`` (1 kHz is 0), in Hz."""
    return 1000.0 * G ** (np.asarray(x, dtype=np.float64) / 3.0)


def band_edges_hz(x: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper band-edge frequencies ``f_m * G**(∓1/6)`` in Hz."""
    fm = exact_centre_hz(x)
    return fm * G ** (-1.0 / 6.0), fm * G ** (1.0 / 6.0)


def third_octave_bands(
    low_hz: float = 100.0, high_hz: float = 8000.0
) -> tuple[np.ndarray, np.ndarray]:
    """Nominal and exact centres of the bands from ``low_hz`` to ``high_hz`` (nominal, inclusive).

    Returns
    -------
    nominal_hz, exact_hz : ndarray
        Same length; e.g. ``third_octave_bands(100, 8000)`` gives the 20 bands 100 Hz…8 kHz.
    """
    lo, hi = band_index(low_hz), band_index(high_hz)
    if lo > hi:
        raise ValueError(f"low_hz={low_hz!r} is above high_hz={high_hz!r}")
    x = np.arange(lo, hi + 1)
    return np.array(NOMINAL_HZ[lo + 20 : hi + 21], dtype=np.float64), exact_centre_hz(x)
