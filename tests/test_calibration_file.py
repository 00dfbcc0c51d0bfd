"""The calibration file: round trip, atomic save with backup, corrupt files refused, site fit."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audio_engine.calibration import (
    Calibration,
    CalibrationHolder,
    MicCalibrationRecord,
    ZoneCalibration,
    apply_to_generator,
    apply_to_site,
    backup_path,
    load_calibration,
    save_calibration,
    to_toml,
)
from audio_engine.errors import CalibrationError
from audio_engine.site import load_site_config

EXAMPLE_SITE = Path(__file__).resolve().parent.parent / "calibration" / "example_site.toml"


def _calibration(offset: float = 83.5, site=None) -> Calibration:
    site = site or load_site_config(EXAMPLE_SITE)
    bands = tuple(float(f) for f in site.target_nominal_hz)
    zones = tuple(
        ZoneCalibration(
            name=z.name,
            spl_offset_db=offset + i,
            eq_db=tuple(np.round(np.linspace(-3, 3, len(bands)) * (i + 1) / 4, 4)),
            level_dba=z.level_dba,
            passed=True,
            iterations=2,
        )
        for i, z in enumerate(site.zones)
    )
    return Calibration(
        site=site.name,
        sample_rate=site.sample_rate,
        bands_hz=bands,
        zones=zones,
        mics=(MicCalibrationRecord("mic A", 124.0, -30.02, 94.0, "2026-11-29T10:00:00+00:00"),),
        measured_by="test suite",
        method="unit test",
    )


def test_round_trip_is_exact_and_readable(tmp_path):
    cal = _calibration()
    path = save_calibration(tmp_path / "site.calibration.toml", cal)
    text = path.read_text()
    assert 'schema = "audio_engine.calibration"' in text and "version = 1" in text
    assert tomllib.loads(text)["zones"][0]["name"] == "North desks"  # plain TOML
    assert load_calibration(path) == cal


def test_save_keeps_the_previous_file_as_backup(tmp_path):
    path = tmp_path / "cal.toml"
    first, second = _calibration(80.0), _calibration(85.0)
    save_calibration(path, first)
    assert not backup_path(path).exists()
    save_calibration(path, second)
    assert load_calibration(path) == second
    assert load_calibration(backup_path(path)) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.toml", "cal.toml.bak"]


def test_a_calibration_that_would_be_refused_is_never_written(tmp_path):
    path = tmp_path / "cal.toml"
    save_calibration(path, _calibration())
    bad = replace(_calibration(), zones=(replace(_calibration().zones[0], spl_offset_db=500.0),))
    with pytest.raises(
        CalibrationError, match=r"spl_offset_db=500.0 is out of range; allowed 40..140"
    ):
        save_calibration(path, bad)
    assert load_calibration(path) == _calibration()
    assert not backup_path(path).exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t[: len(t) // 2], r"checksum line is missing"),
        (lambda t: t.replace("83.5", "93.5", 1), r"does not match its checksum"),
        (lambda t: "", r"checksum line is missing"),
        (lambda t: "\x00\x01garbage", r"checksum line is missing"),
    ],
    ids=["truncated", "edited", "empty", "binary"],
)
def test_corrupt_files_are_refused_and_the_old_one_stays_in_force(tmp_path, damage, message):
    path = tmp_path / "cal.toml"
    save_calibration(path, _calibration())
    holder = CalibrationHolder(path=path)
    assert holder.reload()
    good = holder.calibration
    path.write_text(damage(path.read_text()))
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path)
    assert not holder.reload()
    assert holder.calibration is good
    assert message.replace("\\", "")[:12] in holder.last_error.replace("\\", "")


def _resign(text: str) -> str:
    """Re-compute the checksum after an edit, to reach the validation behind it."""
    import hashlib

    body = text.rpartition("# sha256 = ")[0].rstrip("\n") + "\n"
    return body + f'\n# sha256 = "{hashlib.sha256(body.encode()).hexdigest()}"\n'


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("version = 1", "version = 2"),
            r"version=2 is not supported; this engine reads version 1",
        ),
        (('schema = "audio_engine.calibration"', 'schema = "x"'), r"schema='x' is not"),
        (("sample_rate = 48000", "sample_rate = 47000"), r"sample_rate=47000 is not one of"),
        (
            ("spl_offset_db = 83.5", "spl_offset_db = 20.0"),
            r"zones\[0\]: spl_offset_db=20.0 is out of range",
        ),
        (("eq_db = [-0.75", "eq_db = [-30.0"), r"zones\[0\]: eq_db=\[-30.0.* within ±20 dB"),
        (('name = "South desks"', 'name = "North desks"'), r"zone names .* are not unique"),
        (("site = ", "site = 3\nx = "), r"site=3 is not a string"),
        (("[[zones]]", "[[zones]\n"), r"not valid TOML"),
    ],
    ids=["version", "schema", "rate", "offset", "eq", "duplicate", "type", "toml"],
)
def test_invalid_content_names_the_problem(tmp_path, edit, message):
    path = tmp_path / "cal.toml"
    save_calibration(path, _calibration())
    path.write_text(_resign(path.read_text().replace(*edit, 1)))
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CalibrationError, match=r"calibration file '.*nowhere.toml' does not exist"):
        load_calibration(tmp_path / "nowhere.toml")


def test_apply_to_site_and_generator():
    site = load_site_config(EXAMPLE_SITE)
    cal = _calibration()
    calibrated = apply_to_site(site, cal)
    for zone, zc in zip(calibrated.zones, cal.zones, strict=True):
        assert zone.spl_offset_db == zc.spl_offset_db and zone.eq_db == zc.eq_db
    from audio_engine.dsp.masking import MaskingGenerator

    generator = MaskingGenerator(
        site.sample_rate, site.block_size, len(site.zones), site.target_nominal_hz,
        site.target_level_db, level_dba=40.0, fade_in_s=0.0,
    )  # fmt: skip
    apply_to_generator(generator, site, cal)
    np.testing.assert_allclose(generator.spl_offset_db, [z.spl_offset_db for z in cal.zones])
    np.testing.assert_allclose(generator.eq_db[3], cal.zones[3].eq_db)
    other = replace(cal, bands_hz=cal.bands_hz[1:])
    with pytest.raises(CalibrationError, match=r"calibration bands .* are not the site's"):
        apply_to_site(site, other)
    stranger = replace(cal, zones=(replace(cal.zones[0], name="Basement"),))
    with pytest.raises(CalibrationError, match=r"zone 'Basement' is not a zone of the site"):
        apply_to_site(site, stranger)


def test_mic_records_are_replaced_by_name():
    cal = _calibration()
    newer = cal.with_mic(MicCalibrationRecord("mic A", 120.0, -26.0))
    assert len(newer.mics) == 1 and newer.mic("mic A").spl_offset_db == 120.0
    assert newer.mic("mic B") is None
    assert "mic A" in to_toml(newer)


def test_entries_that_are_not_tables_are_refused(tmp_path):
    path = tmp_path / "cal.toml"
    save_calibration(path, replace(_calibration(), mics=()))
    text = path.read_text()
    head = text[: text.index("[[zones]]")]
    path.write_text(_resign(head + 'zones = ["x"]\n# sha256 = ""\n'))
    with pytest.raises(CalibrationError, match=r"zones\[0\] is str, not a \[\[zones\]\] table"):
        load_calibration(path)
    path.write_text(_resign(text.replace("bands_hz = ", "mics = 3\nbands_hz = ")))
    with pytest.raises(CalibrationError, match=r"mics is int, not \[\[mics\]\] tables"):
        load_calibration(path)
