"""Site config: the example loads, every bad key is refused by name, reloads never break a
running config; the schedule, install ramp-in and supervisor follow the config."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from audio_engine.dsp.masking import MaskingGenerator
from audio_engine.errors import ConfigError
from audio_engine.schedule import (
    MaskingSupervisor,
    install_offset_db,
    planned_level_dba,
    schedule_offset_db,
)
from audio_engine.site import SiteConfigHolder, load_site_config, load_target_curve

CALIBRATION = Path(__file__).resolve().parent.parent / "calibration"
EXAMPLE = CALIBRATION / "example_site.toml"
EXAMPLE_TEXT = EXAMPLE.read_text()


def write_site(tmp_path: Path, old: str = "", new: str = "", text: str | None = None) -> Path:
    """The example config with ``old`` replaced by ``new`` (once, and it must be there)."""
    text = EXAMPLE_TEXT if text is None else text
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    shutil.copy(CALIBRATION / "masking_target_default.csv", tmp_path)
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_example_site_is_the_documented_office():
    site = load_site_config(EXAMPLE)
    assert len(site.zones) == 4
    assert [z.output_channel for z in site.zones] == [1, 2, 3, 4]
    assert all(z.ceiling_dba == 48.0 for z in site.zones)
    assert all(z.min_dba <= z.level_dba <= z.max_dba <= z.ceiling_dba for z in site.zones)
    assert site.adaptive.enabled and site.adaptive_array.mics == 2
    assert site.schedule.weekdays == (0, 1, 2, 3, 4)
    assert (site.schedule.start_minute, site.schedule.end_minute) == (8 * 60 + 30, 18 * 60 + 30)
    assert site.install_ramp.days == 14.0
    assert site.target_nominal_hz[0] == 100 and site.target_nominal_hz[-1] == 8000


def test_default_target_curve_is_smooth_and_covers_100hz_to_8khz():
    nominal, level = load_target_curve(CALIBRATION / "masking_target_default.csv")
    assert nominal[0] <= 100 and nominal[-1] >= 8000
    assert np.max(np.abs(np.diff(level))) <= 2.0


BAD = [
    (
        "ceiling_dba = 48.0\nmicrophones = [2]",
        "ceiling_dba = 60.0\nmicrophones = [2]",
        r"zones\[1\]\.ceiling_dba=60.0 is out of range; allowed 20..55 dBA",
    ),
    (
        'name = "Corridor"\noutput_channel = 4',
        'name = "Corridor"\noutput_channel = 2',
        r"zones\[3\]\.output_channel=2 is already used by zones\[1\]",
    ),
    (
        "level_dba = 41.0",
        "level_dba = 50.0",
        r"zones\[2\]\.level_dba=50.0 is out of range; allowed 20..48 dBA",
    ),
    (
        "max_dba = 46.0\nceiling_dba = 48.0\nmicrophones = [1]",
        "max_dba = 41.0\nceiling_dba = 48.0\nmicrophones = [1]",
        r"zones\[0\]\.level_dba=42.0 is outside min_dba..max_dba = 40..41 dBA",
    ),
    ("level_dba = 40.0\n", "", r"zones\[3\]\.level_dba is missing"),
    (
        "mic_coupling_db = [0.0, -9.0]",
        "mic_coupling_db = [0.0]",
        r"zones\[0\]\.mic_coupling_db=\[0.0\] is not 2 numbers",
    ),
    ("microphones = [1]", "microphones = [3]", r"zones\[0\]\.microphones=\[3\] is not"),
    ('start = "08:30"', 'start = "8h30"', r"schedule\.start='8h30' is not a time of day"),
    ('end = "18:30"', 'end = "07:00"', r"schedule\.end='07:00' is not after schedule\.start"),
    ('outside = "off"', 'outside = "dim"', r"schedule\.outside='dim' is not 'off' or 'reduced'"),
    ('"fri"]', '"fry"]', r"schedule\.weekdays=.* is not a list of day names"),
    (
        "fall_db_per_min = 0.25",
        "fall_db_per_min = 1.0",
        r"adaptive\.fall_db_per_min=1.0 is faster than rise_db_per_min=0.5",
    ),
    (
        "rise_db_per_min = 0.5",
        "rise_db_per_min = 5.0",
        r"adaptive\.rise_db_per_min=5.0 is out of range; allowed 0.01..2 dB/min",
    ),
    ('array = "ceiling"', 'array = "floor"', r"adaptive\.array='floor' is not one of"),
    ("ramp_s = 2.0", "ramp_s = 0.2", r"masking\.ramp_s=0.2 is out of range; allowed 1..600 s"),
    ("seed = 1", "seed = -1", r"masking\.seed=-1 is not an integer in 0..2147483647"),
    (
        'target_curve = "masking_target_default.csv"',
        'target_curve = "missing.csv"',
        r"masking\.target_curve='missing.csv': no such file",
    ),
    ("sample_rate = 48000", "sample_rate = 22050", r"site\.sample_rate=22050 is not one of"),
    ("[site]\n", "[site]\nvolume = 11\n", r"site\.volume is not a known key"),
    (
        "start_offset_db = -8.0",
        "start_offset_db = -30.0",
        r"install_ramp\.start_offset_db=-30.0 is out of range; allowed -20..0 dB",
    ),
    (
        "2.7]\nchannel = 2\nsensitivity_dbfs = -26.0",
        "2.7]\nchannel = 2",
        r"arrays\.ceiling\.mics\[1\]\.sensitivity_dbfs is missing",
    ),
    (
        "2.7]\nchannel = 2",
        "2.7]\nchannel = 1",
        r"arrays\.ceiling: array 'ceiling': mics\[1\]\.channel=1 is already used",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_bad_values_are_refused_naming_key_and_range(tmp_path, old, new, message):
    path = write_site(tmp_path, old, new)
    with pytest.raises(ConfigError, match=message):
        load_site_config(path)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"site config '.*nothing.toml' does not exist"):
        load_site_config(tmp_path / "nothing.toml")
    path = write_site(tmp_path, text="[site\nname=")
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load_site_config(path)
    bad_curve = tmp_path / "curve.csv"
    bad_curve.write_text("nominal_hz,level_db\n100,0\n160,0\n")
    with pytest.raises(ConfigError, match=r"are not at least 2 consecutive one-third-octave"):
        load_target_curve(bad_curve)
    bad_curve.write_text("nominal_hz,level_db\n100,0\n110,0\n")
    with pytest.raises(ConfigError, match=r"row 2 nominal_hz=110 is not a one-third-octave"):
        load_target_curve(bad_curve)


def test_invalid_reload_keeps_the_running_config(tmp_path):
    path = write_site(tmp_path)
    holder = SiteConfigHolder.from_path(path)
    running = holder.config
    path.write_text(EXAMPLE_TEXT.replace("\nceiling_dba = 48.0", "\nceiling_dba = 70.0", 1))
    assert holder.reload() is False
    assert holder.config is running
    assert "zones[0].ceiling_dba=70.0 is out of range" in holder.last_error
    fewer = (
        EXAMPLE_TEXT[: EXAMPLE_TEXT.index('[[zones]]\nname = "Corridor"')]
        + EXAMPLE_TEXT[EXAMPLE_TEXT.index("[schedule]") :]
    )
    path.write_text(fewer)
    assert holder.reload() is False and holder.config is running
    assert "changes the number of zones (4 -> 3)" in holder.last_error
    path.write_text(EXAMPLE_TEXT.replace("level_dba = 42.0", "level_dba = 43.0", 1))
    assert holder.reload() is True
    assert holder.config.zones[0].level_dba == 43.0 and holder.generation == 1


# -- schedule and install ramp-in -------------------------------------------------------------
MONDAY = dt.date(2026, 11, 30)


def at(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm))


def test_schedule_offsets_over_a_week():
    s = load_site_config(EXAMPLE).schedule
    assert schedule_offset_db(s, at(MONDAY, 8, 0)) == (-10.0, False)
    assert schedule_offset_db(s, at(MONDAY, 8, 30)) == (-10.0, True)
    assert schedule_offset_db(s, at(MONDAY, 8, 45)) == pytest.approx((-5.0, True))
    assert schedule_offset_db(s, at(MONDAY, 12, 0)) == (0.0, True)
    assert schedule_offset_db(s, at(MONDAY, 18, 15)) == pytest.approx((-5.0, True))
    assert schedule_offset_db(s, at(MONDAY, 18, 30)) == (-10.0, False)
    saturday = MONDAY + dt.timedelta(days=5)
    assert schedule_offset_db(s, at(saturday, 12, 0)) == (-10.0, False)


def test_install_ramp_in_over_days():
    r = load_site_config(EXAMPLE).install_ramp  # 2026-11-23, 14 days, from -8 dB
    assert install_offset_db(r, at(dt.date(2026, 11, 20), 12, 0)) == -8.0
    assert install_offset_db(r, at(dt.date(2026, 11, 30), 0, 0)) == pytest.approx(-4.0)
    assert install_offset_db(r, at(dt.date(2026, 12, 7), 0, 0)) == 0.0
    days = [at(dt.date(2026, 11, 23) + dt.timedelta(days=d), 12, 0) for d in range(16)]
    offsets = [install_offset_db(r, t) for t in days]
    assert np.all(np.diff(offsets) >= 0) and np.max(np.diff(offsets)) <= 8.0 / 14 + 1e-9


def test_planned_level_never_above_ceiling():
    site = load_site_config(EXAMPLE)
    zone = site.zones[0]
    level, playing = planned_level_dba(
        zone, site.schedule, site.install_ramp, at(dt.date(2027, 1, 4), 12, 0), 60.0
    )
    assert (level, playing) == (zone.ceiling_dba, True)


def test_supervisor_runs_a_simulated_monday():
    """A simulated Monday at control rate: zones start at 08:30, reach full level after the
    ramp, fade out at 18:30; the level set never exceeds the ceiling."""
    site = load_site_config(EXAMPLE)
    g = MaskingGenerator(
        16000,
        320,
        len(site.zones),
        site.target_nominal_hz[:-1],
        site.target_level_db[:-1],
        level_dba=[z.level_dba for z in site.zones],
        ceiling_dba=[z.ceiling_dba for z in site.zones],
        start=False,
    )
    sup = MaskingSupervisor(site, g)
    day = dt.date(2027, 1, 4)  # a Monday, after the install ramp-in
    levels, playing = [], []
    t = at(day, 7, 0)
    while t < at(day, 20, 0):
        sup.tick(t, 60.0)
        levels.append(g.level_dba.copy())
        playing.append(g.running.copy())
        t += dt.timedelta(minutes=1)
    levels, playing = np.array(levels), np.array(playing)
    minutes = np.arange(levels.shape[0]) + 7 * 60
    assert not playing[minutes < 8 * 60 + 30].any()
    assert playing[(minutes >= 8 * 60 + 30) & (minutes < 18 * 60 + 30)].all()
    assert not playing[minutes >= 18 * 60 + 30].any()
    noon = minutes == 12 * 60
    np.testing.assert_array_equal(levels[noon][0], [z.level_dba for z in site.zones])
    assert np.all(levels <= 48.0)
    # Gentle ramps: per minute at most one 0.5 dB step (10 dB over 30 min is 0.33 dB/min).
    assert np.max(np.abs(np.diff(levels[playing.all(axis=1)], axis=0))) <= 0.5
