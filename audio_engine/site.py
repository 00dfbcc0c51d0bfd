"""The site config of the office masking system: zones, ceilings, schedule, ramp-in, adaptive.

A site config is one TOML file (``calibration/example_site.toml`` is the documented example).
:func:`load_site_config` reads and validates all of it at once and returns a frozen
:class:`SiteConfig`; every error is a :class:`~audio_engine.errors.ConfigError` naming the file,
the key (``zones[2].ceiling_dba``) and the allowed range. :class:`SiteConfigHolder` keeps the
running config and swaps in a reloaded one only if it is valid, so a typo made while the system
runs never replaces a good config.

Microphone arrays (``[arrays.NAME]`` tables) are parsed by
:func:`audio_engine.array_config.parse_array`, the one array format of the project.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio_engine.array_config import ArrayConfig, parse_array
from audio_engine.dsp.bands import NOMINAL_HZ
from audio_engine.dsp.base import MAX_CHANNELS, SUPPORTED_SAMPLE_RATES
from audio_engine.dsp.masking import (
    DEFAULT_CEILING_DBA,
    DEFAULT_SPL_OFFSET_DB,
    MAX_CEILING_DBA,
    MAX_EQ_DB,
    MIN_RAMP_S,
)
from audio_engine.errors import ConfigError

#: Weekday names accepted in ``schedule.weekdays`` (Monday = 0, as ``datetime.weekday``).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Fastest adaptive rate a site may configure, dB/min: the issue asks for well under 1 dB/min by
#: default; 2 dB/min is the most a site may choose.
MAX_ADAPTIVE_RATE_DB_PER_MIN = 2.0

#: Default target curve, next to the example site config.
DEFAULT_TARGET_CURVE = "masking_target_default.csv"


@dataclass(frozen=True)
class ZoneConfig:
    """One masking zone (one amplifier channel).

    Attributes
    ----------
    name : str
    output_channel : int
        1-based output device channel.
    level_dba : float
        Nominal level at the reference listener position (schedule and adaptive move from it).
    ceiling_dba : float
        Hard ceiling, never exceeded.
    min_dba, max_dba : float
        Range the adaptive rule may move the level in (``max_dba <= ceiling_dba``).
    spl_offset_db : float
        dBA at the listener for 0 dBFS RMS output until calibration measures it.
    eq_db : tuple of float
        Per-band EQ on the target curve's bands (zeros until calibration).
    microphones : tuple of int
        0-based indices of the adaptive array's microphones that listen to this zone.
    mic_coupling_db : tuple of float
        Per microphone of the adaptive array: level of this zone's masking at that microphone
        minus its level at the reference listener position, dB (how loud it arrives there).
    """

    name: str
    output_channel: int
    level_dba: float
    ceiling_dba: float
    min_dba: float
    max_dba: float
    spl_offset_db: float
    eq_db: tuple[float, ...]
    microphones: tuple[int, ...]
    mic_coupling_db: tuple[float, ...]


@dataclass(frozen=True)
class ScheduleConfig:
    """Weekly operating hours: full level inside, reduced or off outside, ramps between."""

    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    start_minute: int = 8 * 60 + 30
    end_minute: int = 18 * 60 + 30
    outside: str = "off"  # "off" or "reduced"
    outside_offset_db: float = -10.0
    ramp_minutes: float = 30.0


@dataclass(frozen=True)
class InstallRampConfig:
    """Ramp-in after installation: the level starts ``start_offset_db`` low and rises over days."""

    start_date: dt.date | None = None
    days: float = 0.0
    start_offset_db: float = 0.0


@dataclass(frozen=True)
class AdaptiveConfig:
    """The adaptive level rule's settings (see :mod:`audio_engine.dsp.adaptive`)."""

    enabled: bool = False
    array: str | None = None
    update_s: float = 1.0
    averaging_s: float = 120.0
    rise_db_per_min: float = 0.5
    fall_db_per_min: float = 0.25
    hysteresis_db: float = 1.0
    slope_db_per_db: float = 0.5
    reference_ambient_dba: float = 45.0


@dataclass(frozen=True)
class SiteConfig:
    """A validated site config (see the module docstring and ``calibration/example_site.toml``)."""

    path: Path | None
    name: str
    sample_rate: int
    block_size: int
    output_device: str | int | None
    input_device: str | int | None
    seed: int
    ramp_s: float
    fade_in_s: float
    fade_out_s: float
    target_curve: Path | None
    target_nominal_hz: np.ndarray
    target_level_db: np.ndarray
    zones: tuple[ZoneConfig, ...]
    schedule: ScheduleConfig
    install_ramp: InstallRampConfig
    adaptive: AdaptiveConfig
    arrays: dict[str, ArrayConfig] = field(default_factory=dict)

    @property
    def adaptive_array(self) -> ArrayConfig | None:
        """The array the adaptive rule listens to, if adaptive is enabled."""
        if not self.adaptive.enabled or self.adaptive.array is None:
            return None
        return self.arrays[self.adaptive.array]


# -- small validators ---------------------------------------------------------------------------
class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str):
        raise ConfigError(f"{self.source}: {key}{message}")

    def number(self, table: dict, key: str, where: str, lo: float, hi: float, unit: str, default):
        value = table.get(key, default)
        full = f"{where}{key}"
        if value is None:
            self.fail(full, f" is missing; allowed {lo:g}..{hi:g} {unit}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(full, f"={value!r} is not a number; allowed {lo:g}..{hi:g} {unit}")
        if not math.isfinite(value) or not lo <= value <= hi:
            self.fail(full, f"={value!r} is out of range; allowed {lo:g}..{hi:g} {unit}")
        return float(value)

    def integer(self, table: dict, key: str, where: str, lo: int, hi: int, default):
        value = table.get(key, default)
        full = f"{where}{key}"
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(full, f"={value!r} is not an integer in {lo}..{hi}")
        return int(value)

    def unknown(self, table: dict, allowed: set[str], where: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            self.fail(f"{where}{extra[0]}", f" is not a known key; allowed: {sorted(allowed)}")

    def table(self, document: dict, key: str, where: str = "") -> dict:
        value = document.get(key, {})
        if not isinstance(value, dict):
            self.fail(f"{where}{key}", f" is {type(value).__name__}, not a table")
        return value


def _clock(check: _Checker, value, key: str) -> int:
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            h, m = int(parts[0]), int(parts[1])
            if 0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 24 * 60:
                return h * 60 + m
    check.fail(key, f"={value!r} is not a time of day 'HH:MM' in 00:00..24:00")
    raise AssertionError  # unreachable


def load_target_curve(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a target curve CSV (``nominal_hz,level_db``; ``#`` comment lines).

    Returns
    -------
    nominal_hz, level_db : ndarray (bands,)

    Raises
    ------
    ConfigError
        If the file is missing, a row is malformed, a frequency is not a one-third-octave
        nominal centre, the bands are not consecutive or fewer than 2.
    """
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise ConfigError(f"target curve '{p}' cannot be read: {exc}") from None
    rows = [ln for ln in lines if not ln.lstrip().startswith("#")]
    reader = list(csv.reader(rows))
    if not reader or [c.strip() for c in reader[0]] != ["nominal_hz", "level_db"]:
        raise ConfigError(f"target curve '{p}': first row must be the header 'nominal_hz,level_db'")
    freqs, levels = [], []
    for i, row in enumerate(reader[1:], start=1):
        try:
            f, level = float(row[0]), float(row[1])
        except (ValueError, IndexError):
            raise ConfigError(
                f"target curve '{p}': row {i} {row!r} is not two numbers 'nominal_hz,level_db'"
            ) from None
        if f not in NOMINAL_HZ:
            raise ConfigError(
                f"target curve '{p}': row {i} nominal_hz={f:g} is not a one-third-octave nominal "
                f"frequency; allowed: {list(NOMINAL_HZ)}"
            )
        if not math.isfinite(level) or not -60.0 <= level <= 60.0:
            raise ConfigError(
                f"target curve '{p}': row {i} level_db={level!r} is not in -60..60 dB"
            )
        freqs.append(f)
        levels.append(level)
    index = [NOMINAL_HZ.index(f) for f in freqs]
    if len(index) < 2 or any(b - a != 1 for a, b in zip(index, index[1:], strict=False)):
        raise ConfigError(
            f"target curve '{p}': frequencies {freqs} are not at least 2 consecutive "
            "one-third-octave bands in ascending order"
        )
    return np.array(freqs), np.array(levels)


_TOP_KEYS = {
    "site",
    "masking",
    "zones",
    "schedule",
    "install_ramp",
    "adaptive",
    "arrays",
}
_SITE_KEYS = {"name", "sample_rate", "block_size", "output_device", "input_device"}
_MASKING_KEYS = {
    "target_curve",
    "seed",
    "ramp_s",
    "fade_in_s",
    "fade_out_s",
    "default_spl_offset_db",
    "default_ceiling_dba",
}
_ZONE_KEYS = {
    "name",
    "output_channel",
    "level_dba",
    "ceiling_dba",
    "min_dba",
    "max_dba",
    "spl_offset_db",
    "eq_db",
    "microphones",
    "mic_coupling_db",
}
_SCHEDULE_KEYS = {"weekdays", "start", "end", "outside", "outside_offset_db", "ramp_minutes"}
_RAMP_KEYS = {"start_date", "days", "start_offset_db"}
_ADAPTIVE_KEYS = {
    "enabled",
    "array",
    "update_s",
    "averaging_s",
    "rise_db_per_min",
    "fall_db_per_min",
    "hysteresis_db",
    "slope_db_per_db",
    "reference_ambient_dba",
}


def parse_site_config(document: dict, source: str = "site config", base_dir: Path | None = None):
    """Validate a parsed TOML document and return a :class:`SiteConfig` (see the module doc)."""
    c = _Checker(source)
    if not isinstance(document, dict):
        c.fail("", "is not a TOML table")
    c.unknown(document, _TOP_KEYS, "")
    site = c.table(document, "site")
    c.unknown(site, _SITE_KEYS, "site.")
    name = site.get("name", "masking site")
    if not isinstance(name, str) or not name.strip():
        c.fail("site.name", f"={name!r} is not a non-empty string")
    sample_rate = site.get("sample_rate", 48000)
    if sample_rate not in SUPPORTED_SAMPLE_RATES or isinstance(sample_rate, bool):
        c.fail("site.sample_rate", f"={sample_rate!r} is not one of {list(SUPPORTED_SAMPLE_RATES)}")
    block_size = c.integer(site, "block_size", "site.", 16, 8192, 480)
    devices = []
    for key in ("output_device", "input_device"):
        value = site.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            c.fail(f"site.{key}", f"={value!r} is not a device name (string) or index (integer)")
        devices.append(value)

    masking = c.table(document, "masking")
    c.unknown(masking, _MASKING_KEYS, "masking.")
    curve_name = masking.get("target_curve", DEFAULT_TARGET_CURVE)
    if not isinstance(curve_name, str):
        c.fail("masking.target_curve", f"={curve_name!r} is not a file name")
    curve_path = Path(curve_name)
    if not curve_path.is_absolute():
        curve_path = (base_dir or Path.cwd()) / curve_path
    if not curve_path.is_file():
        c.fail("masking.target_curve", f"='{curve_name}': no such file ({curve_path})")
    try:
        nominal, levels = load_target_curve(curve_path)
    except ConfigError as exc:
        c.fail("masking.target_curve", f": {exc}")
    if nominal[-1] * 2 ** (1 / 6) >= sample_rate / 2:
        c.fail(
            "masking.target_curve",
            f" reaches {nominal[-1]:g} Hz, above Nyquist at {sample_rate} Hz",
        )
    seed = c.integer(masking, "seed", "masking.", 0, 2**31 - 1, 1)
    ramp_s = c.number(masking, "ramp_s", "masking.", MIN_RAMP_S, 600.0, "s", 2.0)
    fade_in_s = c.number(masking, "fade_in_s", "masking.", 0.5, 600.0, "s", 5.0)
    fade_out_s = c.number(masking, "fade_out_s", "masking.", 0.5, 600.0, "s", 3.0)
    default_offset = c.number(
        masking, "default_spl_offset_db", "masking.", 40.0, 140.0, "dB", DEFAULT_SPL_OFFSET_DB
    )
    default_ceiling = c.number(
        masking,
        "default_ceiling_dba",
        "masking.",
        20.0,
        MAX_CEILING_DBA,
        "dBA",
        DEFAULT_CEILING_DBA,
    )

    arrays_table = c.table(document, "arrays")
    arrays: dict[str, ArrayConfig] = {}
    for array_name, table in arrays_table.items():
        try:
            arrays[array_name] = parse_array(table, array_name)
        except ConfigError as exc:
            c.fail(f"arrays.{array_name}", f": {exc}")

    adaptive_t = c.table(document, "adaptive")
    c.unknown(adaptive_t, _ADAPTIVE_KEYS, "adaptive.")
    enabled = adaptive_t.get("enabled", False)
    if not isinstance(enabled, bool):
        c.fail("adaptive.enabled", f"={enabled!r} is not true or false")
    array_name = adaptive_t.get("array")
    if array_name is not None and not isinstance(array_name, str):
        # Checked before the name is looked up: a list or table is unhashable.
        c.fail(
            "adaptive.array",
            f"={array_name!r} is not the name of one of the [arrays.*] tables {sorted(arrays)}",
        )
    if enabled:
        if array_name is None and len(arrays) == 1:
            array_name = next(iter(arrays))
        if array_name not in arrays:
            c.fail(
                "adaptive.array",
                f"={array_name!r} is not one of the [arrays.*] tables {sorted(arrays)}",
            )
    rise = c.number(
        adaptive_t,
        "rise_db_per_min",
        "adaptive.",
        0.01,
        MAX_ADAPTIVE_RATE_DB_PER_MIN,
        "dB/min",
        0.5,
    )
    fall = c.number(
        adaptive_t,
        "fall_db_per_min",
        "adaptive.",
        0.01,
        MAX_ADAPTIVE_RATE_DB_PER_MIN,
        "dB/min",
        0.25,
    )
    if fall > rise:
        c.fail(
            "adaptive.fall_db_per_min",
            f"={fall!r} is faster than rise_db_per_min={rise!r}; allowed 0.01..{rise:g} dB/min "
            "(the level must fall slower than it rises)",
        )
    adaptive = AdaptiveConfig(
        enabled=enabled,
        array=array_name,
        update_s=c.number(adaptive_t, "update_s", "adaptive.", 0.1, 60.0, "s", 1.0),
        averaging_s=c.number(adaptive_t, "averaging_s", "adaptive.", 1.0, 3600.0, "s", 120.0),
        rise_db_per_min=rise,
        fall_db_per_min=fall,
        hysteresis_db=c.number(adaptive_t, "hysteresis_db", "adaptive.", 0.0, 6.0, "dB", 1.0),
        slope_db_per_db=c.number(
            adaptive_t, "slope_db_per_db", "adaptive.", 0.0, 1.0, "dB/dB", 0.5
        ),
        reference_ambient_dba=c.number(
            adaptive_t, "reference_ambient_dba", "adaptive.", 20.0, 90.0, "dBA", 45.0
        ),
    )
    mic_count = arrays[array_name].mics if enabled else 0
    if enabled and not np.all(np.isfinite(arrays[array_name].sensitivities_dbfs)):
        missing = int(np.argmin(np.isfinite(arrays[array_name].sensitivities_dbfs)))
        c.fail(
            f"arrays.{array_name}.mics[{missing}].sensitivity_dbfs",
            " is missing; the adaptive rule needs every microphone's sensitivity "
            "(dBFS at 94 dB SPL, -80..0 dBFS)",
        )

    zones_list = document.get("zones")
    if not isinstance(zones_list, list) or not zones_list:
        c.fail("zones", f" is missing or empty; give 1..{MAX_CHANNELS} [[zones]] tables")
    if len(zones_list) > MAX_CHANNELS:
        c.fail("zones", f" has {len(zones_list)} zones; allowed 1..{MAX_CHANNELS}")
    zones = []
    used_channels: dict[int, int] = {}
    for i, z in enumerate(zones_list):
        w = f"zones[{i}]."
        if not isinstance(z, dict):
            c.fail(f"zones[{i}]", f" is {type(z).__name__}, not a table")
        c.unknown(z, _ZONE_KEYS, w)
        zname = z.get("name", f"zone {i + 1}")
        if not isinstance(zname, str) or not zname.strip():
            c.fail(f"{w}name", f"={zname!r} is not a non-empty string")
        channel = c.integer(z, "output_channel", w, 1, MAX_CHANNELS, i + 1)
        if channel in used_channels:
            c.fail(
                f"{w}output_channel",
                f"={channel} is already used by zones[{used_channels[channel]}]; each zone needs its own channel",
            )
        used_channels[channel] = i
        ceiling = c.number(z, "ceiling_dba", w, 20.0, MAX_CEILING_DBA, "dBA", default_ceiling)
        level = c.number(
            z, "level_dba", w, 20.0, ceiling, "dBA (up to the zone's ceiling_dba)", None
        )
        max_dba = c.number(
            z, "max_dba", w, 20.0, ceiling, "dBA (up to ceiling_dba)", min(level + 4.0, ceiling)
        )
        min_dba = c.number(
            z, "min_dba", w, 20.0, max_dba, "dBA (up to max_dba)", min(level - 4.0, max_dba)
        )
        if not min_dba <= level <= max_dba:
            c.fail(
                f"{w}level_dba",
                f"={level!r} is outside min_dba..max_dba = {min_dba:g}..{max_dba:g} dBA",
            )
        offset = c.number(z, "spl_offset_db", w, 40.0, 140.0, "dB", default_offset)
        eq = z.get("eq_db", [0.0] * len(nominal))
        if (
            not isinstance(eq, list)
            or len(eq) != len(nominal)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in eq)
            or not all(math.isfinite(v) and abs(v) <= MAX_EQ_DB for v in eq)
        ):
            c.fail(
                f"{w}eq_db",
                f"={eq!r} is not {len(nominal)} numbers (one per target band) within ±{MAX_EQ_DB:g} dB",
            )
        mics = z.get("microphones", list(range(1, mic_count + 1)))
        if (
            not isinstance(mics, list)
            or not all(
                isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= max(mic_count, 0)
                for m in mics
            )
            or (enabled and not mics)
        ):
            c.fail(
                f"{w}microphones",
                f"={mics!r} is not a non-empty list of microphone numbers 1..{mic_count} of the "
                f"adaptive array"
                if enabled
                else f"={mics!r}: adaptive is off, so no microphones apply",
            )
        coupling = z.get("mic_coupling_db", [0.0] * mic_count)
        if (
            not isinstance(coupling, list)
            or len(coupling) != mic_count
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in coupling)
            or not all(math.isfinite(v) and -80.0 <= v <= 20.0 for v in coupling)
        ):
            c.fail(
                f"{w}mic_coupling_db",
                f"={coupling!r} is not {mic_count} numbers (one per microphone of the adaptive array) in -80..20 dB",
            )
        zones.append(
            ZoneConfig(
                name=zname,
                output_channel=channel,
                level_dba=level,
                ceiling_dba=ceiling,
                min_dba=min_dba,
                max_dba=max_dba,
                spl_offset_db=offset,
                eq_db=tuple(float(v) for v in eq),
                microphones=tuple(m - 1 for m in mics),
                mic_coupling_db=tuple(float(v) for v in coupling),
            )
        )

    sched = c.table(document, "schedule")
    c.unknown(sched, _SCHEDULE_KEYS, "schedule.")
    days = sched.get("weekdays", list(WEEKDAYS[:5]))
    if not isinstance(days, list) or not all(
        isinstance(d, str) and d.lower() in WEEKDAYS for d in days
    ):
        c.fail("schedule.weekdays", f"={days!r} is not a list of day names from {list(WEEKDAYS)}")
    start = _clock(c, sched.get("start", "08:30"), "schedule.start")
    end = _clock(c, sched.get("end", "18:30"), "schedule.end")
    if end <= start:
        c.fail(
            "schedule.end",
            f"={sched.get('end')!r} is not after schedule.start={sched.get('start')!r}",
        )
    outside = sched.get("outside", "off")
    if outside not in ("off", "reduced"):
        c.fail("schedule.outside", f"={outside!r} is not 'off' or 'reduced'")
    schedule = ScheduleConfig(
        weekdays=tuple(sorted({WEEKDAYS.index(d.lower()) for d in days})),
        start_minute=start,
        end_minute=end,
        outside=outside,
        outside_offset_db=c.number(
            sched, "outside_offset_db", "schedule.", -40.0, 0.0, "dB", -10.0
        ),
        ramp_minutes=c.number(sched, "ramp_minutes", "schedule.", 1.0, 240.0, "min", 30.0),
    )
    if schedule.ramp_minutes > end - start:
        c.fail(
            "schedule.ramp_minutes",
            f"={schedule.ramp_minutes:g} is longer than the working day ({end - start} min)",
        )

    ramp_t = c.table(document, "install_ramp")
    c.unknown(ramp_t, _RAMP_KEYS, "install_ramp.")
    start_date = ramp_t.get("start_date")
    if start_date is not None and (
        isinstance(start_date, dt.datetime) or not isinstance(start_date, dt.date)
    ):
        c.fail("install_ramp.start_date", f"={start_date!r} is not a TOML date like 2026-11-23")
    install = InstallRampConfig(
        start_date=start_date,
        days=c.number(ramp_t, "days", "install_ramp.", 0.0, 90.0, "days", 0.0),
        start_offset_db=c.number(ramp_t, "start_offset_db", "install_ramp.", -20.0, 0.0, "dB", 0.0),
    )

    return SiteConfig(
        path=None,
        name=name,
        sample_rate=int(sample_rate),
        block_size=block_size,
        output_device=devices[0],
        input_device=devices[1],
        seed=seed,
        ramp_s=ramp_s,
        fade_in_s=fade_in_s,
        fade_out_s=fade_out_s,
        target_curve=curve_path,
        target_nominal_hz=nominal,
        target_level_db=levels,
        zones=tuple(zones),
        schedule=schedule,
        install_ramp=install,
        adaptive=adaptive,
        arrays=arrays,
    )


def load_site_config(path: str | os.PathLike) -> SiteConfig:
    """Read and validate a site config TOML file.

    Relative file names inside it (``masking.target_curve``) are relative to the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing, not TOML, or any key is missing, unknown or out of range; the
        message names the file, the key and the allowed range.
    """
    p = Path(path)
    try:
        document = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"site config '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"site config '{p}' cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"site config '{p}' is not valid TOML: {exc}") from None
    config = parse_site_config(document, f"site config '{p}'", p.resolve().parent)
    return _with_path(config, p)


def _with_path(config: SiteConfig, path: Path) -> SiteConfig:
    from dataclasses import replace

    return replace(config, path=path)


class SiteConfigHolder:
    """The running site config; :meth:`reload` swaps in a new one only if it validates.

    Parameters
    ----------
    config : SiteConfig
        The config the system starts with (already valid).

    Notes
    -----
    Thread-safe: readers take :attr:`config` (an immutable object, replaced atomically);
    :meth:`reload` validates outside the lock and only then replaces it.
    """

    def __init__(self, config: SiteConfig):
        self._config = config
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.generation = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> SiteConfigHolder:
        """Load ``path``; raise :class:`ConfigError` if it is invalid (there is nothing to keep)."""
        return cls(load_site_config(path))

    @property
    def config(self) -> SiteConfig:
        """The config in force."""
        return self._config

    def reload(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default: the current config's file); return whether it replaced it.

        On any error the running config stays in force, :attr:`last_error` holds the message
        and False is returned; nothing is raised, so a bad edit cannot stop the system.
        """
        target = path if path is not None else self._config.path
        if target is None:
            self.last_error = "no path to reload from"
            return False
        try:
            new = load_site_config(target)
        except ConfigError as exc:
            self.last_error = str(exc)
            return False
        if len(new.zones) != len(self._config.zones) or new.sample_rate != self._config.sample_rate:
            self.last_error = (
                f"site config '{target}' changes the number of zones ({len(self._config.zones)} -> "
                f"{len(new.zones)}) or the sample rate; allowed only on a restart"
            )
            return False
        with self._lock:
            self._config = new
            self.generation += 1
        self.last_error = None
        return True
