"""Microphone-array geometry from the site config: positions, channel mapping, gains, target.

An array is one TOML table. Each microphone is an entry of its ``mics`` array of tables::

    [array]
    name = "desk-4"
    mouth_m = [0.0, 0.40, 0.25]        # or look_azimuth_deg = 90.0 (far field)
    [[array.mics]]
    position_m = [-0.06, 0.0, 0.0]     # metres, the array's own frame
    channel = 1                        # device input channel, 1-based (as sounddevice's mapping)
    gain_db = 0.0                      # trim that equalises this capsule to the others
    sensitivity_dbfs = -26.0           # optional: dBFS at 94 dB SPL (1 Pa, 1 kHz)

Coordinates are right-handed: x to the agent's right, y from the array towards the agent, z up.
The far-field look direction is ``(cos el cos az, cos el sin az, sin el)``, azimuth counted from
+x towards +y (the convention of pyroomacoustics), so ``look_azimuth_deg = 90`` looks at the agent.

:func:`parse_array` checks one table (the site config calls it for each of its arrays);
:func:`load_array` reads a TOML file; :func:`check_device_channels` checks that a capture
device has every channel the array maps. Errors are :class:`ConfigError` (bad table) and
:class:`DeviceError` (device too small) naming the key, its value and the allowed range.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_engine.dsp.base import MAX_CHANNELS
from audio_engine.errors import ConfigError, DeviceError

#: Speed of sound in air at 20 °C, m/s (ISO 9613-1:1993, c = 343.2 m/s at 20 °C).
SPEED_OF_SOUND_M_S = 343.0

#: Range a site may set the speed of sound to: air from about -50 °C to +130 °C.
SPEED_OF_SOUND_RANGE_M_S = (300.0, 400.0)

#: Largest coordinate magnitude, m: ceiling arrays may be given in room coordinates.
MAX_COORDINATE_M = 100.0

#: Microphones closer than this are the same capsule listed twice (a config mistake).
MIN_MIC_SPACING_M = 1e-3

#: The mouth must be at least this far from every capsule (the near-field model breaks down).
MIN_MOUTH_DISTANCE_M = 0.01

#: Allowed per-channel trim, dB.
GAIN_RANGE_DB = (-40.0, 40.0)

#: Allowed capsule sensitivity, dBFS at 94 dB SPL: MEMS and electret capsules span -50..-20 dBFS.
SENSITIVITY_RANGE_DBFS = (-80.0, 0.0)

_ARRAY_KEYS = {
    "name",
    "mics",
    "mouth_m",
    "look_azimuth_deg",
    "look_elevation_deg",
    "speed_of_sound_m_s",
}
_MIC_KEYS = {"position_m", "channel", "gain_db", "sensitivity_dbfs"}


@dataclass(frozen=True)
class ArrayConfig:
    """A validated microphone array.

    Attributes
    ----------
    name : str
        Used in messages and reports.
    positions_m : ndarray, shape (mics, 3), float64
        Capsule positions in metres.
    device_channels : tuple of int
        1-based device input channel of each microphone, in microphone order.
    gains_db : ndarray, shape (mics,)
        Per-channel trim applied on capture, dB.
    sensitivities_dbfs : ndarray, shape (mics,)
        dBFS a 94 dB SPL tone reads on each capsule before its trim; NaN where not given.
    mouth_m : ndarray, shape (3,), or None
        Near-field target (the agent's mouth), metres.
    look_direction : ndarray, shape (3,), or None
        Far-field target, unit vector; exactly one of ``mouth_m`` / ``look_direction`` or
        neither (an ambient-only array, such as a ceiling array).
    speed_of_sound_m_s : float
    """

    name: str
    positions_m: np.ndarray
    device_channels: tuple[int, ...]
    gains_db: np.ndarray
    sensitivities_dbfs: np.ndarray
    mouth_m: np.ndarray | None
    look_direction: np.ndarray | None
    speed_of_sound_m_s: float = SPEED_OF_SOUND_M_S

    @property
    def mics(self) -> int:
        """Number of microphones."""
        return self.positions_m.shape[0]

    @property
    def has_target(self) -> bool:
        """True if a mouth position or a look direction is configured."""
        return self.mouth_m is not None or self.look_direction is not None

    def target_arrivals(self) -> tuple[np.ndarray, np.ndarray, int]:
        """How the target reaches each capsule, relative to the capsule it reaches first.

        Returns
        -------
        delays_s : ndarray, shape (mics,)
            Arrival time after the reference capsule's, seconds, >= 0.
        amplitudes : ndarray, shape (mics,)
            Direct-path amplitude relative to the reference capsule (spherical spreading,
            ``r_ref / r_m``; all ones in the far field).
        reference_mic : int
            Index of the capsule the target reaches first (the closest to the mouth).

        Raises
        ------
        ConfigError
            If the array has no target.
        """
        if self.mouth_m is not None:
            distances_m = np.linalg.norm(self.positions_m - self.mouth_m, axis=1)
            reference = int(np.argmin(distances_m))
            delays_s = (distances_m - distances_m[reference]) / self.speed_of_sound_m_s
            amplitudes = distances_m[reference] / distances_m
            return delays_s, amplitudes, reference
        if self.look_direction is not None:
            # A plane wave from direction u reaches p earlier the further p lies along u.
            lead_m = self.positions_m @ self.look_direction
            reference = int(np.argmax(lead_m))
            delays_s = (lead_m[reference] - lead_m) / self.speed_of_sound_m_s
            return delays_s, np.ones(self.mics), reference
        raise ConfigError(
            f"array {self.name!r} has no target: set mouth_m = [x, y, z] (metres) or "
            "look_azimuth_deg (0..360) for a beamformer"
        )

    def sensitivity_offsets_db(self) -> np.ndarray:
        """dB to add to a trimmed channel's dBFS level to get dB SPL; NaN where uncalibrated.

        A 94 dB SPL tone reads ``sensitivity_dbfs + gain_db`` dBFS after the trim.
        """
        return 94.0 - (self.sensitivities_dbfs + self.gains_db)


def _where(name: str, key: str) -> str:
    return f"array {name!r}: {key}"


def _number(value: object, name: str, key: str, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{_where(name, key)}={value!r} is not a number; allowed {low:g}..{high:g} {unit}"
        )
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(
            f"{_where(name, key)}={value!r} is out of range; allowed {low:g}..{high:g} {unit}"
        )
    return float(value)


def _point(value: object, name: str, key: str) -> np.ndarray:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ConfigError(
            f"{_where(name, key)}={value!r} is not a point [x, y, z] of 3 numbers in metres"
        )
    return np.array(
        [
            _number(v, name, f"{key}[{i}]", -MAX_COORDINATE_M, MAX_COORDINATE_M, "m")
            for i, v in enumerate(value)
        ]
    )


def _unknown(table: dict, allowed: set[str], name: str, where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(
            f"array {name!r}: unknown key {where}{extra[0]!r}; allowed: {sorted(allowed)}"
        )


def parse_array(table: object, name: str) -> ArrayConfig:
    """Validate one array table (a dict parsed from TOML) and return its :class:`ArrayConfig`.

    Parameters
    ----------
    table : dict
        The array's table, with a ``mics`` list of tables (see the module docstring).
    name : str
        The array's name for messages, used when the table has no ``name`` key.

    Raises
    ------
    ConfigError
        Naming the array, the key and the allowed range, for any missing, unknown or
        out-of-range value, duplicate channel, coincident capsules or ambiguous target.

    Examples
    --------
    >>> cfg = parse_array({"mics": [{"position_m": [0, 0, 0], "channel": 1},
    ...                             {"position_m": [0.05, 0, 0], "channel": 2}],
    ...                    "look_azimuth_deg": 90.0}, "pair")
    >>> cfg.mics, cfg.device_channels
    (2, (1, 2))
    """
    if not isinstance(table, dict):
        raise ConfigError(f"array {name!r} is {type(table).__name__}, not a table")
    if "name" in table:
        if not isinstance(table["name"], str) or not table["name"].strip():
            raise ConfigError(f"array {name!r}: name={table['name']!r} is not a non-empty string")
        name = table["name"]
    _unknown(table, _ARRAY_KEYS, name, "")
    mics = table.get("mics")
    if not isinstance(mics, list) or not mics:
        raise ConfigError(
            f"{_where(name, 'mics')} is missing or empty; give 1..{MAX_CHANNELS} [[mics]] tables "
            "with position_m and channel"
        )
    if len(mics) > MAX_CHANNELS:
        raise ConfigError(
            f"{_where(name, 'mics')} has {len(mics)} microphones; allowed 1..{MAX_CHANNELS}"
        )
    positions, channels, gains, sensitivities = [], [], [], []
    for i, mic in enumerate(mics):
        key = f"mics[{i}]"
        if not isinstance(mic, dict):
            raise ConfigError(f"{_where(name, key)} is {type(mic).__name__}, not a table")
        _unknown(mic, _MIC_KEYS, name, f"{key}.")
        if "position_m" not in mic:
            raise ConfigError(f"{_where(name, key)}.position_m is missing; give [x, y, z] metres")
        positions.append(_point(mic["position_m"], name, f"{key}.position_m"))
        channel = mic.get("channel")
        if (
            isinstance(channel, bool)
            or not isinstance(channel, int)
            or not 1 <= channel <= MAX_CHANNELS
        ):
            raise ConfigError(
                f"{_where(name, key)}.channel={channel!r} is not a device channel number "
                f"1..{MAX_CHANNELS} (1-based)"
            )
        if channel in channels:
            raise ConfigError(
                f"{_where(name, key)}.channel={channel} is already used by "
                f"mics[{channels.index(channel)}]; each microphone needs its own channel"
            )
        channels.append(channel)
        gains.append(_number(mic.get("gain_db", 0.0), name, f"{key}.gain_db", *GAIN_RANGE_DB, "dB"))
        s = mic.get("sensitivity_dbfs")
        sensitivities.append(
            np.nan
            if s is None
            else _number(s, name, f"{key}.sensitivity_dbfs", *SENSITIVITY_RANGE_DBFS, "dBFS")
        )
    positions_m = np.array(positions)
    for i in range(len(positions)):
        for j in range(i):
            gap_m = float(np.linalg.norm(positions_m[i] - positions_m[j]))
            if gap_m < MIN_MIC_SPACING_M:
                raise ConfigError(
                    f"{_where(name, f'mics[{i}].position_m')} is {1e3 * gap_m:.2f} mm from "
                    f"mics[{j}]; capsules must be at least {1e3 * MIN_MIC_SPACING_M:g} mm apart"
                )
    speed = _number(
        table.get("speed_of_sound_m_s", SPEED_OF_SOUND_M_S),
        name,
        "speed_of_sound_m_s",
        *SPEED_OF_SOUND_RANGE_M_S,
        "m/s",
    )
    mouth_m = look = None
    if "mouth_m" in table and "look_azimuth_deg" in table:
        raise ConfigError(
            f"array {name!r}: give either mouth_m (near field) or look_azimuth_deg (far field), "
            "not both"
        )
    if "look_elevation_deg" in table and "look_azimuth_deg" not in table:
        raise ConfigError(f"{_where(name, 'look_elevation_deg')} needs look_azimuth_deg too")
    if "mouth_m" in table:
        mouth_m = _point(table["mouth_m"], name, "mouth_m")
        nearest_m = float(np.min(np.linalg.norm(positions_m - mouth_m, axis=1)))
        if nearest_m < MIN_MOUTH_DISTANCE_M:
            raise ConfigError(
                f"{_where(name, 'mouth_m')} is {1e3 * nearest_m:.1f} mm from a capsule; "
                f"allowed >= {1e3 * MIN_MOUTH_DISTANCE_M:g} mm"
            )
    if "look_azimuth_deg" in table:
        azimuth = math.radians(
            _number(table["look_azimuth_deg"], name, "look_azimuth_deg", -360.0, 360.0, "degrees")
        )
        elevation = math.radians(
            _number(
                table.get("look_elevation_deg", 0.0),
                name,
                "look_elevation_deg",
                -90.0,
                90.0,
                "degrees",
            )
        )
        look = np.array(
            [
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            ]
        )
    return ArrayConfig(
        name=name,
        positions_m=positions_m,
        device_channels=tuple(channels),
        gains_db=np.array(gains),
        sensitivities_dbfs=np.array(sensitivities),
        mouth_m=mouth_m,
        look_direction=look,
        speed_of_sound_m_s=speed,
    )


def load_array(path: str | os.PathLike, name: str | None = None) -> ArrayConfig:
    """Read an array from a TOML file: its ``[array]`` table, or ``[arrays.NAME]``.

    Parameters
    ----------
    path : path-like
        The TOML file.
    name : str, optional
        Which ``[arrays.NAME]`` table to read when the file holds several.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or the table is missing or invalid.
    """
    p = Path(path)
    try:
        document = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"array config '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"array config '{p}' cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"array config '{p}' is not valid TOML: {exc}") from None
    arrays = document.get("arrays", {})
    if name is not None:
        if name not in arrays:
            raise ConfigError(
                f"array config '{p}' has no [arrays.{name}] table; it has: {sorted(arrays)}"
            )
        return parse_array(arrays[name], name)
    if "array" in document:
        return parse_array(document["array"], p.stem)
    if isinstance(arrays, dict) and len(arrays) == 1:
        (only,) = arrays
        return parse_array(arrays[only], only)
    raise ConfigError(
        f"array config '{p}' needs an [array] table or exactly one [arrays.NAME] table "
        f"(found arrays: {sorted(arrays) if isinstance(arrays, dict) else arrays!r}); "
        "pass name= to choose"
    )


def check_device_channels(
    config: ArrayConfig, device_channels: int, device_name: str = "the device"
) -> None:
    """Raise DeviceError unless a device with ``device_channels`` inputs has every mapped channel.

    Parameters
    ----------
    config : ArrayConfig
    device_channels : int
        The device's input channel count (``sounddevice.query_devices(...)['max_input_channels']``).
    device_name : str
        For the message.

    Raises
    ------
    DeviceError
        Naming the microphone, the channel it maps to and the device's channel count.
    """
    if isinstance(device_channels, bool) or not isinstance(device_channels, int | np.integer):
        raise DeviceError(f"{device_name} reports {device_channels!r} input channels")
    highest = max(config.device_channels)
    if highest > device_channels:
        mic = config.device_channels.index(highest)
        raise DeviceError(
            f"array {config.name!r} maps mics[{mic}] to input channel {highest}, but "
            f"{device_name} has {int(device_channels)} input channel"
            f"{'' if device_channels == 1 else 's'} (allowed channels 1..{int(device_channels)}); "
            "choose a device with more inputs or fix the channel numbers"
        )


def check_file_channels(config: ArrayConfig, file_channels: int, path: str | os.PathLike) -> None:
    """Raise ConfigError unless a recording has one channel per microphone of ``config``.

    A multichannel file for the array path holds the microphones in the config's order (the
    device mapping does not apply to files).

    Raises
    ------
    ConfigError
        Naming the file, its channel count and the array's microphone count.
    """
    if file_channels != config.mics:
        raise ConfigError(
            f"'{path}' has {file_channels} channel{'' if file_channels == 1 else 's'} but array "
            f"{config.name!r} has {config.mics} microphones; allowed: a {config.mics}-channel "
            "file, one channel per microphone in the order of the config's [[mics]]"
        )
