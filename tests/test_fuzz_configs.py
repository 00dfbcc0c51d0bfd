"""Site configs, calibration files, headset profiles and array configs, mangled every way.

Each loader must either return a valid object or raise its documented error — ``ConfigError``
for site and array configs, ``CalibrationError`` for calibration files and headset profiles —
whose message names the file and the offending key; never a ``KeyError``, ``TypeError``,
``AttributeError`` or a traceback from deep inside. A refused file leaves the previous one in
force: in the holder (``SiteConfigHolder``, ``CalibrationHolder``), on disk
(``save_calibration`` never writes what it would refuse) and in the running generator.

Mutations start from the documented examples (``calibration/example_site.toml``,
``calibration/example_array.toml``, ``calibration/headsets/generic-usb-office.toml`` and a
calibration written by ``to_toml``): one value replaced by a value of another type or out of
range, one key deleted, one unknown key added; plus truncation at any byte and garbage bytes.
Budget: ``AUDIO_ENGINE_FUZZ_EXAMPLES`` (default 60 per test, a few seconds each).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audio_engine.array_config import load_array, parse_array
from audio_engine.calibration import (
    Calibration,
    CalibrationHolder,
    ZoneCalibration,
    apply_to_generator,
    backup_path,
    load_calibration,
    save_calibration,
    to_toml,
)
from audio_engine.errors import CalibrationError, ConfigError
from audio_engine.headset_profile import load_profile
from audio_engine.pipelines import build_masking_pipeline
from audio_engine.site import SiteConfigHolder, load_site_config

CALIBRATION_DIR = Path(__file__).resolve().parent.parent / "calibration"
EXAMPLE_SITE = CALIBRATION_DIR / "example_site.toml"
EXAMPLE_ARRAY = CALIBRATION_DIR / "example_array.toml"
EXAMPLE_PROFILE = CALIBRATION_DIR / "headsets" / "generic-usb-office.toml"

FUZZ = settings(
    max_examples=int(os.environ.get("AUDIO_ENGINE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# -- a small TOML writer (the standard library reads TOML but does not write it) -----------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, the rest raw."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps_toml(doc: dict, prefix: str = "") -> str:
    """TOML text of ``doc`` (tables, arrays of tables, scalars, lists, dates)."""
    lines = []
    for k, v in doc.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in doc.items():
        name = f"{prefix}{_key(k)}"
        if isinstance(v, dict):
            lines.append(f"\n[{name}]")
            lines.append(dumps_toml(v, name + "."))
        elif _is_table_array(v):
            for item in v:
                lines.append(f"\n[[{name}]]")
                lines.append(dumps_toml(item, name + "."))
    return "\n".join(lines)


def leaf_paths(node, path=()):
    """Every path (tuple of keys and indices) to a scalar or a list of scalars."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaf_paths(v, (*path, k))
    elif _is_table_array(node):
        for i, v in enumerate(node):
            yield from leaf_paths(v, (*path, i))
    else:
        yield path


def table_paths(node, path=()):
    """Every path to a table (where an unknown key can be added)."""
    if isinstance(node, dict):
        yield path
        for k, v in node.items():
            yield from table_paths(v, (*path, k))
    elif _is_table_array(node):
        for i, v in enumerate(node):
            yield from table_paths(v, (*path, i))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


#: Values of the wrong type or out of any sensible range.
wrong_values = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(), max_size=2),
    st.sampled_from([-1, 0, 1e9, -1e9, "", "48000", [], {}]),
)


#: Values that are not tables (an empty table would only mean "all defaults").
not_tables = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-5, 5), max_size=3),
)


@st.composite
def mutations(draw, doc: dict, kinds=("replace", "delete", "unknown")):
    """(kind, path, value, mutated document) with one change to ``doc``: a value replaced, a key
    deleted, an unknown key added, or a table replaced by a value of another type."""
    mutated = json.loads(json.dumps(doc, default=str))  # a deep copy; dates become strings
    _restore_dates(mutated, doc)
    kind = draw(st.sampled_from(kinds))
    if kind == "retype-table":  # a whole table (or one entry of an array of tables) mistyped
        path = draw(st.sampled_from([p for p in table_paths(doc) if p]))
        _get(mutated, path[:-1])[path[-1]] = draw(not_tables)
        return kind, path, None, mutated
    if kind == "unknown":
        path = draw(st.sampled_from(list(table_paths(doc))))
        key = draw(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True))
        assume(key not in _get(doc, path))
        _get(mutated, path)[key] = draw(wrong_values)
        return kind, (*path, key), None, mutated
    path = draw(st.sampled_from(list(leaf_paths(doc))))
    parent = _get(mutated, path[:-1])
    if kind == "delete":
        del parent[path[-1]]
        return kind, path, None, mutated
    value = draw(wrong_values)
    parent[path[-1]] = value
    return kind, path, value, mutated


def _restore_dates(copy, original):
    if isinstance(original, dict):
        for k, v in original.items():
            if isinstance(v, dt.date | dt.time):
                copy[k] = v
            else:
                _restore_dates(copy[k], v)
    elif isinstance(original, list):
        for i, v in enumerate(original):
            if isinstance(v, dt.date | dt.time):
                copy[i] = v
            else:
                _restore_dates(copy[i], v)


def _named_key(path) -> str:
    """The last named key of a path (indices skipped): what the error message must name."""
    return next(str(p) for p in reversed(path) if isinstance(p, str))


#: A message names a key when it shows ``key=value``, ``key is missing`` or ``key ...`` for a
#: key path like ``zones[0].microphones``: deleting a key can make another one wrong (a default
#: takes its place), and then that one is the key to name.
_NAMES_A_KEY = re.compile(r"[a-z_]+(\[\d+\])?(\.[a-z_]+)*(=| is missing| is not)")


def names_the_key(kind: str, key: str, message: str) -> bool:
    """Whether an error message names the changed key (or, after a deletion, a key)."""
    if key in message:
        return True
    return kind == "delete" and _NAMES_A_KEY.search(message) is not None


def site_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    shutil.copy(CALIBRATION_DIR / "masking_target_default.csv", folder)
    return folder


# -- site configs ----------------------------------------------------------------------------------
SITE_DOC = tomllib.loads(EXAMPLE_SITE.read_text(encoding="utf-8"))


def test_toml_writer_round_trips_the_examples():
    """The writer the mutations go through changes nothing by itself."""
    for path in (EXAMPLE_SITE, EXAMPLE_ARRAY, EXAMPLE_PROFILE):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        assert tomllib.loads(dumps_toml(doc)) == doc


@FUZZ
@given(change=mutations(SITE_DOC))
def test_mutated_site_config_loads_or_names_the_key(tmp_path, change):
    kind, path, value, doc = change
    target = site_folder(tmp_path) / "site.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    try:
        config = load_site_config(target)
    except ConfigError as exc:
        message = str(exc)
        assert str(target) in message, message
        key = _named_key(path)
        assert names_the_key(kind, key, message), (
            f"{kind} {path}={value!r}: message does not name {key!r}: {message}"
        )
        return
    assert kind != "unknown", f"unknown key {path} accepted"
    # what was accepted is within the documented ranges
    assert config.sample_rate in (8000, 16000, 24000, 32000, 44100, 48000)
    for zone in config.zones:
        assert 0.0 <= zone.ceiling_dba <= 55.0
        assert 40.0 <= zone.spl_offset_db <= 140.0
        assert all(math.isfinite(v) and abs(v) <= 20.0 for v in zone.eq_db)


@FUZZ
@given(cut=st.integers(0, len(EXAMPLE_SITE.read_bytes())))
def test_truncated_site_config_loads_or_is_refused(tmp_path, cut):
    target = site_folder(tmp_path) / "site.toml"
    target.write_bytes(EXAMPLE_SITE.read_bytes()[:cut])
    try:
        load_site_config(target)
    except ConfigError as exc:
        assert str(target) in str(exc)


@FUZZ
@given(garbage=st.binary(max_size=512))
def test_garbage_site_config_is_refused(tmp_path, garbage):
    target = site_folder(tmp_path) / "site.toml"
    target.write_bytes(garbage)
    with pytest.raises(ConfigError, match=re.escape(str(target))):
        load_site_config(target)


@FUZZ
@given(change=mutations(SITE_DOC, kinds=("retype-table",)))
def test_site_config_with_a_mistyped_table_is_refused_by_name(tmp_path, change):
    _, path, _, doc = change
    target = site_folder(tmp_path) / "site.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_site_config(target)
    assert _named_key(path) in str(refused.value), str(refused.value)


@pytest.mark.parametrize("value", [[1], {"a": 1}])
def test_site_config_adaptive_array_of_the_wrong_type_is_refused(tmp_path, value):
    doc = json.loads(json.dumps(SITE_DOC, default=str))
    _restore_dates(doc, SITE_DOC)
    doc["adaptive"]["array"] = value
    target = site_folder(tmp_path) / "site.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"adaptive\.array"):
        load_site_config(target)


def test_refused_site_reload_keeps_the_running_config(tmp_path):
    target = site_folder(tmp_path) / "site.toml"
    good = EXAMPLE_SITE.read_text(encoding="utf-8")
    target.write_text(good, encoding="utf-8")
    holder = SiteConfigHolder.from_path(target)
    running = holder.config
    for bad in (
        good.replace("ceiling_dba = 48.0", "ceiling_dba = 96.0", 1),
        good.replace("level_dba = 42.0", 'level_dba = "loud"', 1),
        good[: len(good) // 2],
        "\x00\xff garbage",
        good + "\n[surprise]\nkey = 1\n",
    ):
        target.write_text(bad, encoding="utf-8", errors="surrogateescape")
        assert holder.reload() is False
        assert holder.config is running
        assert holder.generation == 0
        assert str(target) in holder.last_error
    target.write_text(good.replace("level_dba = 42.0", "level_dba = 43.0", 1), encoding="utf-8")
    assert holder.reload() is True
    assert holder.config.zones[0].level_dba == 43.0


# -- calibration files ---------------------------------------------------------------------------
def example_calibration() -> Calibration:
    site = load_site_config(EXAMPLE_SITE)
    bands = tuple(float(f) for f in site.target_nominal_hz)
    return Calibration(
        site=site.name,
        sample_rate=site.sample_rate,
        bands_hz=bands,
        zones=tuple(
            ZoneCalibration(
                name=z.name,
                spl_offset_db=82.0 + i,
                eq_db=tuple(0.5 * ((j % 5) - 2) for j in range(len(bands))),
                level_dba=z.level_dba,
                passed=True,
                iterations=2,
            )
            for i, z in enumerate(site.zones)
        ),
        created="2026-11-29T16:10:00+00:00",
        measured_by="fuzz",
        method="test",
    )


CALIBRATION_TEXT = to_toml(example_calibration())
CALIBRATION_DOC = tomllib.loads(CALIBRATION_TEXT)


def with_checksum(body: str) -> str:
    """A calibration text with a valid checksum line, as the module docstring specifies it."""
    body = body.rstrip("\n") + "\n"
    return body + f'\n# sha256 = "{hashlib.sha256(body.encode("utf-8")).hexdigest()}"\n'


@FUZZ
@given(change=mutations(CALIBRATION_DOC))
def test_mutated_calibration_loads_or_names_the_key(tmp_path, change):
    """Mutations behind a valid checksum reach the value checks (a wrong checksum alone would
    hide them)."""
    kind, path, value, doc = change
    target = tmp_path / "site.calibration.toml"
    target.write_text(with_checksum(dumps_toml(doc)), encoding="utf-8")
    try:
        calibration = load_calibration(target)
    except CalibrationError as exc:
        message = str(exc)
        assert str(target) in message, message
        key = _named_key(path)
        assert names_the_key(kind, key, message) or "[[zones]]" in message, (
            f"{kind} {path}={value!r}: message does not name {key!r}: {message}"
        )
        return
    # what was accepted is within the documented ranges
    assert calibration.sample_rate in (8000, 16000, 24000, 32000, 44100, 48000)
    for zone in calibration.zones:
        assert 40.0 <= zone.spl_offset_db <= 140.0
        assert len(zone.eq_db) == len(calibration.bands_hz)
        assert all(math.isfinite(v) and abs(v) <= 20.0 for v in zone.eq_db)


@FUZZ
@given(change=mutations(CALIBRATION_DOC, kinds=("retype-table",)))
def test_calibration_with_a_mistyped_table_is_refused_by_name(tmp_path, change):
    _, path, _, doc = change
    target = tmp_path / "site.calibration.toml"
    target.write_text(with_checksum(dumps_toml(doc)), encoding="utf-8")
    with pytest.raises(CalibrationError, match=_named_key(path)):
        load_calibration(target)


@FUZZ
# (cutting only the closing quote and newline of the checksum line loses nothing: allowed)
@given(cut=st.integers(0, len(CALIBRATION_TEXT.encode()) - 3), flip=st.integers(0, 255))
def test_truncated_or_damaged_calibration_is_refused(tmp_path, cut, flip):
    target = tmp_path / "site.calibration.toml"
    raw = bytearray(CALIBRATION_TEXT.encode())
    target.write_bytes(bytes(raw[:cut]))
    with pytest.raises(CalibrationError, match=re.escape(str(target))):
        load_calibration(target)
    position = cut % len(raw)
    if raw[position] != flip:
        raw[position] = flip
        target.write_bytes(bytes(raw))
        with pytest.raises(CalibrationError, match=re.escape(str(target))):
            load_calibration(target)


@FUZZ
@given(garbage=st.binary(max_size=512))
def test_garbage_calibration_is_refused(tmp_path, garbage):
    target = tmp_path / "site.calibration.toml"
    target.write_bytes(garbage)
    with pytest.raises(CalibrationError, match=re.escape(str(target))):
        load_calibration(target)


def test_refused_calibration_leaves_the_previous_one_on_disk_in_force_and_running(tmp_path):
    site = load_site_config(EXAMPLE_SITE)
    target = tmp_path / "site.calibration.toml"
    good = example_calibration()
    save_calibration(target, good)
    on_disk = target.read_bytes()
    holder = CalibrationHolder(load_calibration(target), target)
    generator = build_masking_pipeline(site, site.sample_rate, site.block_size).stages[0]
    apply_to_generator(generator, site, holder.calibration)
    offsets = generator.spl_offset_db.copy()
    ceilings = generator.ceiling.ceiling_dbfs.copy()

    # 1. writing an invalid calibration is refused before anything on disk changes
    bad_zone = ZoneCalibration("North desks", spl_offset_db=300.0, eq_db=good.zones[0].eq_db)
    bad = Calibration(**{**good.__dict__, "zones": (bad_zone, *good.zones[1:])})
    with pytest.raises(CalibrationError, match=r"spl_offset_db=300\.0 is out of range"):
        save_calibration(target, bad)
    assert target.read_bytes() == on_disk
    assert not backup_path(target).exists()  # nothing was rotated either

    # 2. a damaged file on disk is refused by the holder; the old one stays in force
    for damage in (
        on_disk[: len(on_disk) // 2],
        b"\x00garbage\xff",
        on_disk.replace(b"82.0", b"92.0"),
    ):
        target.write_bytes(damage)
        assert holder.reload() is False
        assert holder.calibration == good
        assert str(target) in holder.last_error
        # ...and the running generator is untouched (the mask command applies only on success)
        np.testing.assert_array_equal(generator.spl_offset_db, offsets)
        np.testing.assert_array_equal(generator.ceiling.ceiling_dbfs, ceilings)


# -- headset profiles ----------------------------------------------------------------------------
PROFILE_DOC = tomllib.loads(EXAMPLE_PROFILE.read_text(encoding="utf-8"))


@FUZZ
@given(change=mutations(PROFILE_DOC))
def test_mutated_headset_profile_loads_or_names_the_key(tmp_path, change):
    kind, path, value, doc = change
    target = tmp_path / "headset.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    try:
        profile = load_profile(target)
    except CalibrationError as exc:
        message = str(exc)
        assert str(target) in message
        key = _named_key(path)
        assert key in message, f"{kind} {path}={value!r}: message does not name {key!r}: {message}"
        return
    assert kind != "unknown", f"unknown key {path} accepted"
    assert 70.0 <= profile.sensitivity_db_spl <= 140.0


@pytest.mark.parametrize(
    ("key", "value"), [("measured", "no"), ("source", 5), ("description", [1])]
)
def test_headset_profile_refuses_wrongly_typed_text_fields(tmp_path, key, value):
    doc = {**PROFILE_DOC, key: value}
    target = tmp_path / "headset.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    with pytest.raises(CalibrationError, match=key):
        load_profile(target)


@FUZZ
@given(garbage=st.text(max_size=256))
def test_garbage_headset_profile_is_refused(tmp_path, garbage):
    target = tmp_path / "headset.toml"
    target.write_text(garbage, encoding="utf-8")
    with pytest.raises(CalibrationError, match=re.escape(repr(str(target)))):
        load_profile(target)


def test_non_utf8_headset_profile_is_refused(tmp_path):
    target = tmp_path / "headset.toml"
    target.write_bytes(b"\x80\xff binary")
    with pytest.raises(CalibrationError, match=r"cannot be read"):
        load_profile(target)


# -- array configs -------------------------------------------------------------------------------
ARRAY_DOC = tomllib.loads(EXAMPLE_ARRAY.read_text(encoding="utf-8"))


@FUZZ
@given(change=mutations(ARRAY_DOC))
def test_mutated_array_config_loads_or_names_the_key(tmp_path, change):
    kind, path, value, doc = change
    target = tmp_path / "array.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    try:
        config = load_array(target)
    except ConfigError as exc:
        message = str(exc)
        key = _named_key(path)
        if path[:1] != ("array",):
            assert "needs an [array] table" in message or key in message, message
            return
        assert key in message or (key == "name" and "array" in message), (
            f"{kind} {path}={value!r}: message does not name {key!r}: {message}"
        )
        return
    assert kind != "unknown" or path[0] != "array", f"unknown key {path} accepted"
    assert config.mics >= 1


@FUZZ
@given(change=mutations(ARRAY_DOC, kinds=("retype-table",)))
def test_array_config_with_a_mistyped_table_is_refused_by_name(tmp_path, change):
    _, path, _, doc = change
    target = tmp_path / "array.toml"
    target.write_text(dumps_toml(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_array(target)
    message = str(refused.value)
    assert _named_key(path) in message or "needs an [array] table" in message, message


@FUZZ
@given(
    table=st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=4),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(["mics", "position_m", "channel", "mouth_m", "gain_db", "x"]),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_parse_array_never_raises_anything_but_config_error(table):
    with pytest.raises(ConfigError):
        parse_array(table, "fuzz")
