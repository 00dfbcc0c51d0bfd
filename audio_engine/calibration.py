"""The calibration file: per-zone EQ and level offset, microphone sensitivities, who and when.

A calibration is a small, readable, versioned TOML file (``calibration/<site>.calibration.toml``
by default, or any path)::

    schema = "audio_engine.calibration"
    version = 1
    site = "Call centre, floor 3"
    created = "2026-11-29T16:10:00+00:00"
    measured_by = "A. Kim, facilities"
    method = "audio-engine calibrate (simulated office 'open-plan')"
    sample_rate = 48000
    bands_hz = [100.0, 125.0, ...]          # the site's target-curve bands

    [[zones]]
    name = "North desks"
    spl_offset_db = 83.4     # dBA at the reference listener for 0 dBFS RMS at the zone output
    eq_db = [1.2, -0.4, ...] # per band, on bands_hz
    level_dba = 42.0         # the target it was set to
    passed = true
    iterations = 2

    [[mics]]
    name = "measurement mic"
    spl_offset_db = 124.0    # dB SPL for 0 dB re digital full-scale RMS
    sensitivity_dbfs_per_pa = -30.0
    calibrator_db_spl = 94.0
    calibrated = "2026-11-29T16:02:00+00:00"

    # sha256 = "..."          (last line: checksum of everything above it)

:func:`save_calibration` writes it atomically (a temporary file in the same folder, fsync,
``os.replace``) after copying the previous file to ``<name>.bak``; :func:`load_calibration`
refuses a corrupt file (not TOML, wrong schema or version, a missing or out-of-range value,
a checksum that does not match because the file was truncated or damaged) with a
:class:`~audio_engine.errors.CalibrationError` that names the problem, and
:class:`CalibrationHolder` keeps the calibration in force when a reload fails.

The contract with masking (:mod:`audio_engine.dsp.masking`, :mod:`audio_engine.site`):
``spl_offset_db`` and ``eq_db`` mean exactly what the site config's zone keys of the same
names mean; :func:`apply_to_site` returns the site config with them replaced, and
:func:`apply_to_generator` pushes them into a running ``MaskingGenerator``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import shutil
import threading
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audio_engine.dsp.bands import NOMINAL_HZ
from audio_engine.dsp.base import SUPPORTED_SAMPLE_RATES
from audio_engine.errors import CalibrationError

SCHEMA = "audio_engine.calibration"
VERSION = 1

#: Ranges accepted when loading (the same as the site config's zone keys, and a microphone
#: range that covers everything from a MEMS capsule on a hot preamp to a 1/2" on line input).
ZONE_OFFSET_RANGE_DB = (40.0, 140.0)
MAX_EQ_DB = 20.0
MIC_OFFSET_RANGE_DB = (60.0, 200.0)

_CHECKSUM_PREFIX = "# sha256 = "


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ZoneCalibration:
    """One zone's calibration (see the module docstring for the meaning of each field)."""

    name: str
    spl_offset_db: float
    eq_db: tuple[float, ...]
    level_dba: float | None = None
    passed: bool | None = None
    iterations: int | None = None


@dataclass(frozen=True)
class MicCalibrationRecord:
    """One measurement microphone's calibration against an acoustic calibrator."""

    name: str
    spl_offset_db: float
    sensitivity_dbfs_per_pa: float
    calibrator_db_spl: float = 94.0
    calibrated: str = ""


@dataclass(frozen=True)
class Calibration:
    """A whole calibration file."""

    site: str
    sample_rate: int
    bands_hz: tuple[float, ...]
    zones: tuple[ZoneCalibration, ...]
    mics: tuple[MicCalibrationRecord, ...] = ()
    created: str = field(default_factory=now_iso)
    measured_by: str = "unknown"
    method: str = ""
    version: int = VERSION

    def zone(self, name: str) -> ZoneCalibration:
        """The zone called ``name``; CalibrationError if there is none."""
        for z in self.zones:
            if z.name == name:
                return z
        raise CalibrationError(
            f"calibration has no zone {name!r}; it has {[z.name for z in self.zones]}"
        )

    def mic(self, name: str) -> MicCalibrationRecord | None:
        """The microphone called ``name``, or None."""
        return next((m for m in self.mics if m.name == name), None)

    def with_mic(self, record: MicCalibrationRecord) -> Calibration:
        """A copy with ``record`` added or replacing the microphone of the same name."""
        mics = tuple(m for m in self.mics if m.name != record.name) + (record,)
        return replace(self, mics=mics)


# -- writing --------------------------------------------------------------------------------------
def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _toml_float(value: float) -> str:
    return repr(round(float(value), 4))


def _toml_floats(values) -> str:
    return "[" + ", ".join(_toml_float(v) for v in values) + "]"


def to_toml(calibration: Calibration) -> str:
    """The file text (with its checksum line) of a calibration."""
    c = calibration
    lines = [
        "# audio_engine calibration file: written by `audio-engine calibrate`, read by the masking",
        "# system. Readable, but do not edit: the checksum on the last line must match.",
        f"schema = {_toml_string(SCHEMA)}",
        f"version = {int(c.version)}",
        f"site = {_toml_string(c.site)}",
        f"created = {_toml_string(c.created)}",
        f"measured_by = {_toml_string(c.measured_by)}",
        f"method = {_toml_string(c.method)}",
        f"sample_rate = {int(c.sample_rate)}",
        f"bands_hz = {_toml_floats(c.bands_hz)}",
    ]
    for z in c.zones:
        lines += ["", "[[zones]]", f"name = {_toml_string(z.name)}"]
        lines.append(f"spl_offset_db = {_toml_float(z.spl_offset_db)}")
        lines.append(f"eq_db = {_toml_floats(z.eq_db)}")
        if z.level_dba is not None:
            lines.append(f"level_dba = {_toml_float(z.level_dba)}")
        if z.passed is not None:
            lines.append(f"passed = {'true' if z.passed else 'false'}")
        if z.iterations is not None:
            lines.append(f"iterations = {int(z.iterations)}")
    for m in c.mics:
        lines += [
            "",
            "[[mics]]",
            f"name = {_toml_string(m.name)}",
            f"spl_offset_db = {_toml_float(m.spl_offset_db)}",
            f"sensitivity_dbfs_per_pa = {_toml_float(m.sensitivity_dbfs_per_pa)}",
            f"calibrator_db_spl = {_toml_float(m.calibrator_db_spl)}",
            f"calibrated = {_toml_string(m.calibrated)}",
        ]
    body = "\n".join(lines) + "\n"
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return body + f'\n{_CHECKSUM_PREFIX}"{digest}"\n'


def backup_path(path: str | os.PathLike) -> Path:
    """Where :func:`save_calibration` keeps the previous file: ``<name>.bak``."""
    p = Path(path)
    return p.with_name(p.name + ".bak")


def save_calibration(path: str | os.PathLike, calibration: Calibration) -> Path:
    """Write ``calibration`` to ``path`` atomically, keeping the previous file as a backup.

    The text is validated by parsing it back before anything on disk changes. Then the old
    file (if any) is copied to :func:`backup_path`, the new text goes to a temporary file in the
    same folder, is flushed to disk, and replaces ``path`` in one ``os.replace``: a crash or
    power cut leaves either the old or the new calibration, never half of one.

    Returns
    -------
    Path
        ``path``.
    """
    p = Path(path)
    text = to_toml(calibration)
    parse_calibration(text, f"calibration to be written to '{p}'")  # never write what we refuse
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists():
        backup = backup_path(p)
        staging = backup.with_name(backup.name + ".tmp")
        shutil.copy2(p, staging)
        os.replace(staging, backup)
    temporary = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, p)
    finally:
        if temporary.exists():
            temporary.unlink()
    try:
        directory = os.open(p.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return p
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return p


# -- reading --------------------------------------------------------------------------------------
def _number(table: dict, key: str, where: str, lo: float, hi: float, unit: str) -> float:
    if key not in table:
        raise CalibrationError(f"{where}: {key} is missing; allowed {lo:g}..{hi:g} {unit}")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalibrationError(f"{where}: {key}={value!r} is not a number in {lo:g}..{hi:g} {unit}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise CalibrationError(
            f"{where}: {key}={value!r} is out of range; allowed {lo:g}..{hi:g} {unit}"
        )
    return float(value)


def _string(table: dict, key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise CalibrationError(f"{where}: {key}={value!r} is not a string")
    return value


def parse_calibration(text: str, source: str = "calibration") -> Calibration:
    """Validate the text of a calibration file (see :func:`load_calibration`)."""
    body, marker, tail = text.rpartition(_CHECKSUM_PREFIX)
    if not marker:
        raise CalibrationError(
            f"{source}: the checksum line is missing (the file is truncated or not a calibration)"
        )
    stated = tail.strip().strip('"')
    body_text = body.rstrip("\n") + "\n"
    actual = hashlib.sha256(body_text.encode("utf-8")).hexdigest()
    if stated != actual:
        raise CalibrationError(
            f"{source}: content does not match its checksum (the file was damaged, truncated or "
            "edited); re-run `audio-engine calibrate` or restore the .bak file"
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{source}: not valid TOML: {exc}") from None
    if doc.get("schema") != SCHEMA:
        raise CalibrationError(f"{source}: schema={doc.get('schema')!r} is not {SCHEMA!r}")
    version = doc.get("version")
    if version != VERSION:
        raise CalibrationError(
            f"{source}: version={version!r} is not supported; this engine reads version {VERSION}"
        )
    sample_rate = doc.get("sample_rate")
    if sample_rate not in SUPPORTED_SAMPLE_RATES or isinstance(sample_rate, bool):
        raise CalibrationError(
            f"{source}: sample_rate={sample_rate!r} is not one of {list(SUPPORTED_SAMPLE_RATES)}"
        )
    bands = doc.get("bands_hz")
    if (
        not isinstance(bands, list)
        or len(bands) < 2
        or not all(isinstance(b, int | float) and b in NOMINAL_HZ for b in bands)
    ):
        raise CalibrationError(
            f"{source}: bands_hz={bands!r} is not a list of one-third-octave nominal centres"
        )
    zones = []
    raw_zones = doc.get("zones", [])
    if not isinstance(raw_zones, list) or not raw_zones:
        raise CalibrationError(f"{source}: no [[zones]]; a calibration holds at least one zone")
    for i, z in enumerate(raw_zones):
        where = f"{source}: zones[{i}]"
        if not isinstance(z, dict):
            raise CalibrationError(f"{where} is {type(z).__name__}, not a [[zones]] table")
        name = _string(z, "name", where)
        eq = z.get("eq_db")
        if (
            not isinstance(eq, list)
            or len(eq) != len(bands)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in eq)
            or not all(math.isfinite(v) and abs(v) <= MAX_EQ_DB for v in eq)
        ):
            raise CalibrationError(
                f"{where}: eq_db={eq!r} is not {len(bands)} numbers (one per band) within "
                f"±{MAX_EQ_DB:g} dB"
            )
        level = z.get("level_dba")
        if level is not None:
            level = _number(z, "level_dba", where, 0.0, 140.0, "dBA")
        passed = z.get("passed")
        if passed is not None and not isinstance(passed, bool):
            raise CalibrationError(f"{where}: passed={passed!r} is not true or false")
        iterations = z.get("iterations")
        if iterations is not None and (
            isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0
        ):
            raise CalibrationError(f"{where}: iterations={iterations!r} is not an integer >= 0")
        zones.append(
            ZoneCalibration(
                name=name,
                spl_offset_db=_number(z, "spl_offset_db", where, *ZONE_OFFSET_RANGE_DB, "dB"),
                eq_db=tuple(float(v) for v in eq),
                level_dba=level,
                passed=passed,
                iterations=iterations,
            )
        )
    names = [z.name for z in zones]
    if len(set(names)) != len(names):
        raise CalibrationError(f"{source}: zone names {names} are not unique")
    mics = []
    raw_mics = doc.get("mics", [])
    if not isinstance(raw_mics, list):
        raise CalibrationError(f"{source}: mics is {type(raw_mics).__name__}, not [[mics]] tables")
    for i, m in enumerate(raw_mics):
        where = f"{source}: mics[{i}]"
        if not isinstance(m, dict):
            raise CalibrationError(f"{where} is {type(m).__name__}, not a [[mics]] table")
        mics.append(
            MicCalibrationRecord(
                name=_string(m, "name", where),
                spl_offset_db=_number(m, "spl_offset_db", where, *MIC_OFFSET_RANGE_DB, "dB"),
                sensitivity_dbfs_per_pa=_number(
                    m, "sensitivity_dbfs_per_pa", where, -120.0, 40.0, "dBFS/Pa"
                ),
                calibrator_db_spl=_number(m, "calibrator_db_spl", where, 60.0, 140.0, "dB SPL"),
                calibrated=_string(m, "calibrated", where, ""),
            )
        )
    return Calibration(
        site=_string(doc, "site", source),
        sample_rate=int(sample_rate),
        bands_hz=tuple(float(b) for b in bands),
        zones=tuple(zones),
        mics=tuple(mics),
        created=_string(doc, "created", source),
        measured_by=_string(doc, "measured_by", source),
        method=_string(doc, "method", source, ""),
        version=VERSION,
    )


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read and validate a calibration file.

    Raises
    ------
    CalibrationError
        If the file is missing or unreadable, not TOML, of another schema or version, fails its
        checksum, or has a missing or out-of-range value; the message names the file and the
        problem.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError(f"calibration file '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"calibration file '{p}' cannot be read: {exc}") from None
    return parse_calibration(text, f"calibration file '{p}'")


class CalibrationHolder:
    """The calibration in force; :meth:`reload` replaces it only with a valid file.

    Thread-safe like :class:`audio_engine.site.SiteConfigHolder`: readers take
    :attr:`calibration` (immutable, swapped atomically).
    """

    def __init__(
        self, calibration: Calibration | None = None, path: str | os.PathLike | None = None
    ):
        self._calibration = calibration
        self.path = Path(path) if path is not None else None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def calibration(self) -> Calibration | None:
        return self._calibration

    def reload(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default: the last one); on any error keep the old calibration, store
        the message in :attr:`last_error` and return False."""
        target = Path(path) if path is not None else self.path
        if target is None:
            self.last_error = "no calibration path to reload from"
            return False
        try:
            new = load_calibration(target)
        except CalibrationError as exc:
            self.last_error = str(exc)
            return False
        with self._lock:
            self._calibration = new
            self.path = target
        self.last_error = None
        return True


# -- the contract with the site config and the masking generator ----------------------------------
def check_fits_site(calibration: Calibration, site) -> None:
    """Raise CalibrationError unless the calibration's zones and bands match the site config."""
    site_bands = tuple(float(f) for f in np.asarray(site.target_nominal_hz))
    if calibration.bands_hz != site_bands:
        raise CalibrationError(
            f"calibration bands {list(calibration.bands_hz)} are not the site's target-curve "
            f"bands {list(site_bands)}; re-run `audio-engine calibrate`"
        )
    site_names = [z.name for z in site.zones]
    for z in calibration.zones:
        if z.name not in site_names:
            raise CalibrationError(
                f"calibration zone {z.name!r} is not a zone of the site; zones: {site_names}"
            )


def apply_to_site(site, calibration: Calibration):
    """The site config with each calibrated zone's ``spl_offset_db`` and ``eq_db`` replaced.

    Zones the calibration does not mention keep the site config's values.
    """
    check_fits_site(calibration, site)
    by_name = {z.name: z for z in calibration.zones}
    zones = tuple(
        replace(z, spl_offset_db=by_name[z.name].spl_offset_db, eq_db=by_name[z.name].eq_db)
        if z.name in by_name
        else z
        for z in site.zones
    )
    return replace(site, zones=zones)


def apply_to_generator(generator, site, calibration: Calibration) -> None:
    """Push the calibration into a running ``MaskingGenerator`` built from ``site``."""
    check_fits_site(calibration, site)
    for index, zone in enumerate(site.zones):
        try:
            cal = calibration.zone(zone.name)
        except CalibrationError:
            continue
        generator.set_zone_calibration(index, spl_offset_db=cal.spl_offset_db, eq_db=cal.eq_db)


def default_calibration_path(site) -> Path:
    """``<site folder>/<site file stem>.calibration.toml`` (next to the site config)."""
    if site.path is None:
        return Path("calibration") / "site.calibration.toml"
    p = Path(site.path)
    return p.with_name(p.stem + ".calibration.toml")
