"""Headset profiles: how loud a digital sample is at the agent's ear, in dB SPL.

A profile's one essential figure is ``sensitivity_db_spl``: the sound pressure level at the ear
(dB re 20 µPa) that a 1 kHz sine at digital full scale (0 dBFS, peak amplitude 1.0) produces
through the headset at the system volume the profile was measured at. With it a sample value
becomes an ear level::

    sine-equivalent level (dB SPL) = 20 log10(rms * sqrt(2)) + sensitivity_db_spl
    peak of that sine               = 20 log10(|x|) + sensitivity_db_spl

so the hearing protector (:mod:`audio_engine.dsp.hearing`) and the dosimeter
(:mod:`audio_engine.dsp.dosimeter`) can speak of 102 dB SPL and 85 dB(A) instead of dBFS.

Profiles are TOML files (``calibration/headsets/*.toml``; how to measure a new one is in
``calibration/headsets/README.md``)::

    schema = "audio_engine.headset_profile/1"
    name = "generic-usb-office"
    sensitivity_db_spl = 110.0     # dB SPL at the ear for a 0 dBFS 1 kHz sine
    reference_point = "DRP"        # DRP (eardrum) or ERP (ear reference point)
    system_volume_percent = 100    # OS output volume the figure holds at
    measured = false               # true only for a measurement of this very headset
    source = "..."                 # where the figure comes from
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from audio_engine.errors import CalibrationError, ConfigError
from audio_engine.resources import calibration_dir

#: Schema string every profile file carries.
SCHEMA = "audio_engine.headset_profile/1"

#: Plausible full-scale sensitivities of a headset receiver, dB SPL. Below 70 dB SPL a headset
#: could not reproduce normal speech; above 140 dB SPL (the threshold of pain and the peak limit
#: of the EU noise directive 2003/10/EC, art. 3: 140 dB(C) peak) the figure is a mistake.
SENSITIVITY_RANGE_DB_SPL = (70.0, 140.0)

#: Reference points of ITU-T P.57 where ear levels are stated.
REFERENCE_POINTS = ("DRP", "ERP")

#: Where the example profiles live: calibration/headsets in a checkout, its installed copy otherwise.
PROFILE_DIR = calibration_dir() / "headsets"

#: Profile used when none is named: a typical office USB headset (an example, not a measurement).
DEFAULT_PROFILE_NAME = "generic-usb-office"


@dataclass(frozen=True)
class HeadsetProfile:
    """Electro-acoustic figures of one headset, turning sample values into ear levels.

    Parameters
    ----------
    name : str
        Short identifier (file stem of its TOML file).
    sensitivity_db_spl : float
        dB SPL at the ear for a 1 kHz sine of peak amplitude 1.0 (0 dBFS), in
        :data:`SENSITIVITY_RANGE_DB_SPL`.
    reference_point : {"DRP", "ERP"}
        Where the level is stated (ITU-T P.57: drum reference point or ear reference point).
    system_volume_percent : float
        Operating-system output volume at which the sensitivity holds (0..100).
    measured : bool
        True when the figure is a measurement of this headset, False for a typical value.
    source : str
        Where the figure comes from.
    description : str
        Free text.
    """

    name: str
    sensitivity_db_spl: float
    reference_point: str = "DRP"
    system_volume_percent: float = 100.0
    measured: bool = False
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        low, high = SENSITIVITY_RANGE_DB_SPL
        s = self.sensitivity_db_spl
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
            raise ConfigError(
                f"sensitivity_db_spl={s!r} is not a finite number in {low:g}..{high:g} dB SPL"
            )
        if not low <= s <= high:
            raise ConfigError(
                f"sensitivity_db_spl={s!r} is outside {low:g}..{high:g} dB SPL "
                "(dB SPL at the ear for a 0 dBFS 1 kHz sine)"
            )
        if self.reference_point not in REFERENCE_POINTS:
            raise ConfigError(
                f"reference_point={self.reference_point!r} is not one of {list(REFERENCE_POINTS)}"
            )
        v = self.system_volume_percent
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v <= 100.0:
            raise ConfigError(f"system_volume_percent={v!r} is not a number in (0, 100]")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name={self.name!r} is not a non-empty string")
        # A string such as "no" would be truthy: only a real boolean says "measured".
        if not isinstance(self.measured, bool):
            raise ConfigError(f"measured={self.measured!r} is not true or false")
        for key in ("source", "description"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise ConfigError(f"{key}={value!r} is not a string")

    def amplitude_for_db_spl(self, level_db_spl: float) -> float:
        """Peak sample amplitude of a sine that reaches ``level_db_spl`` at the ear."""
        return 10.0 ** ((level_db_spl - self.sensitivity_db_spl) / 20.0)

    def db_spl_of_rms(self, rms: float) -> float:
        """Sine-equivalent ear level (dB SPL) of a signal with sample RMS ``rms``."""
        return 20.0 * math.log10(max(rms, 1e-12) * math.sqrt(2.0)) + self.sensitivity_db_spl


def _profile_from_mapping(data: dict, origin: str) -> HeadsetProfile:
    schema = data.get("schema")
    if schema != SCHEMA:
        raise CalibrationError(f"{origin}: schema={schema!r} is not {SCHEMA!r}")
    known = {
        "name",
        "sensitivity_db_spl",
        "reference_point",
        "system_volume_percent",
        "measured",
        "source",
        "description",
    }
    unknown = sorted(set(data) - known - {"schema", "measurement"})
    if unknown:
        raise CalibrationError(f"{origin}: unknown keys {unknown}; allowed: {sorted(known)}")
    if "sensitivity_db_spl" not in data:
        raise CalibrationError(f"{origin}: sensitivity_db_spl is missing")
    try:
        return HeadsetProfile(**{k: v for k, v in data.items() if k in known})
    except ConfigError as exc:
        raise CalibrationError(f"{origin}: {exc}") from None


def load_profile(path: str | os.PathLike) -> HeadsetProfile:
    """Load and validate one headset profile TOML file.

    Raises
    ------
    CalibrationError
        If the file is missing, not TOML, of another schema, or a value is out of range.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # missing, a folder, or not UTF-8 text
        raise CalibrationError(f"headset profile {str(path)!r} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"headset profile {str(path)!r} is not valid TOML: {exc}") from None
    if "name" not in data:
        data["name"] = path.stem
    return _profile_from_mapping(data, f"headset profile {str(path)!r}")


def available_profiles(directory: str | os.PathLike | None = None) -> list[str]:
    """Names (file stems) of the profiles in ``directory`` (the packaged examples by default)."""
    folder = Path(directory) if directory is not None else PROFILE_DIR
    return sorted(p.stem for p in folder.glob("*.toml"))


def get_profile(name_or_path: str | os.PathLike | None = None) -> HeadsetProfile:
    """A profile by name (one of :func:`available_profiles`) or by path to a TOML file.

    ``None`` gives :data:`DEFAULT_PROFILE_NAME`.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_PROFILE_NAME
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_profile(candidate)
    path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ConfigError(
            f"headset profile {str(name_or_path)!r} is not known; allowed: {available_profiles()} "
            "or a path to a .toml file"
        )
    return load_profile(path)


def resolve_profile(profile: HeadsetProfile | str | os.PathLike | None) -> HeadsetProfile:
    """``profile`` itself if it is a :class:`HeadsetProfile`, else :func:`get_profile` of it.

    Raises
    ------
    ConfigError
        If ``profile`` is neither a profile, a name, a path nor None.
    """
    if isinstance(profile, HeadsetProfile):
        return profile
    if profile is None or isinstance(profile, str | os.PathLike):
        return get_profile(profile)
    raise ConfigError(f"profile={profile!r} is not a HeadsetProfile, a profile name or a path")
