"""Array geometry from TOML (parsing, target geometry, device channel checks, pinned errors) and
the array's ambient level for the masking controller."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from audio_engine.array_config import (
    SPEED_OF_SOUND_M_S,
    check_device_channels,
    load_array,
    parse_array,
)
from audio_engine.errors import ConfigError, DeviceError
from tests import signals

EXAMPLE = Path(__file__).resolve().parents[1] / "calibration" / "example_array.toml"


def table(**changes) -> dict:
    """A valid 3-mic line along x, mouth 0.4 m in front, with ``changes`` applied."""
    base = {
        "name": "line",
        "mouth_m": [0.0, 0.4, 0.0],
        "mics": [
            {"position_m": [-0.05, 0.0, 0.0], "channel": 1},
            {"position_m": [0.0, 0.0, 0.0], "channel": 2, "gain_db": 1.5},
            {"position_m": [0.05, 0.0, 0.0], "channel": 3, "sensitivity_dbfs": -38.0},
        ],
    }
    base.update(changes)
    return base


def test_example_desk_array_loads():
    config = load_array(EXAMPLE)
    assert config.name == "desk-4"
    assert config.mics == 4
    assert config.device_channels == (1, 2, 3, 4)
    assert config.positions_m.shape == (4, 3)
    # 8 cm square: every side 8 cm, both diagonals 8*sqrt(2) cm.
    gaps = np.linalg.norm(config.positions_m[:, None] - config.positions_m[None], axis=2)
    assert sorted(np.round(gaps[np.triu_indices(4, 1)], 6)) == pytest.approx(
        [0.08] * 4 + [0.08 * np.sqrt(2)] * 2
    )
    np.testing.assert_allclose(config.sensitivity_offsets_db(), 94.0 + 26.0)


def test_near_field_arrivals_follow_distance_to_the_mouth():
    config = parse_array(table(), "line")
    delays_s, amplitudes, reference = config.target_arrivals()
    distances = np.linalg.norm(config.positions_m - config.mouth_m, axis=1)
    assert reference == 1  # the middle capsule is closest to a mouth straight ahead
    np.testing.assert_allclose(delays_s, (distances - 0.4) / SPEED_OF_SOUND_M_S, rtol=1e-12)
    np.testing.assert_allclose(amplitudes, 0.4 / distances, rtol=1e-12)


def test_far_field_look_direction_delays_along_the_line():
    # Looking along +x (azimuth 0): the capsule at +5 cm hears first, the one at -5 cm last.
    t = table(look_azimuth_deg=0.0)
    del t["mouth_m"]
    delays_s, amplitudes, reference = parse_array(t, "line").target_arrivals()
    assert reference == 2
    np.testing.assert_allclose(delays_s, np.array([0.10, 0.05, 0.0]) / SPEED_OF_SOUND_M_S)
    np.testing.assert_array_equal(amplitudes, 1.0)
    # Broadside (azimuth 90): all at once.
    t["look_azimuth_deg"] = 90.0
    np.testing.assert_allclose(parse_array(t, "line").target_arrivals()[0], 0.0, atol=1e-15)


def test_gains_and_sensitivities_and_speed():
    config = parse_array(table(speed_of_sound_m_s=340.0), "x")
    assert config.name == "line"  # the table's own name wins over the caller's label
    np.testing.assert_array_equal(config.gains_db, [0.0, 1.5, 0.0])
    assert np.isnan(config.sensitivities_dbfs[0])
    assert config.sensitivity_offsets_db()[2] == pytest.approx(94.0 + 38.0)
    assert config.speed_of_sound_m_s == 340.0


def test_ambient_only_array_has_no_target():
    t = table()
    del t["mouth_m"]
    config = parse_array(t, "ceiling")
    assert not config.has_target
    with pytest.raises(ConfigError, match=r"array 'line' has no target: set mouth_m"):
        config.target_arrivals()


def _mic(i: int, **changes) -> dict:
    t = table()
    t["mics"] = copy.deepcopy(t["mics"])
    t["mics"][i].update(changes)
    return t


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"mics": []}, r"array 'line': mics is missing or empty; give 1\.\.64"),
        ({"mics": [{"channel": 1}] * 65}, r"mics has 65 microphones; allowed 1\.\.64"),
        ({"colour": "red"}, r"unknown key 'colour'; allowed: \["),
        (
            {"speed_of_sound_m_s": 500},
            r"speed_of_sound_m_s=500 is out of range; allowed 300\.\.400 m/s",
        ),
        ({"mouth_m": [0, 0.4]}, r"mouth_m=\[0, 0\.4\] is not a point \[x, y, z\]"),
        ({"mouth_m": [0.0, 0.0, 0.005]}, r"mouth_m is 5\.0 mm from a capsule; allowed >= 10 mm"),
        ({"look_azimuth_deg": 10.0}, r"either mouth_m \(near field\) or look_azimuth_deg"),
        ({"look_elevation_deg": 10.0}, r"look_elevation_deg needs look_azimuth_deg too"),
        ({"name": ""}, r"array 'line': name='' is not a non-empty string"),
    ],
)
def test_array_errors_name_the_key_and_range(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_array(table(**bad), "line")


@pytest.mark.parametrize(
    ("mic", "changes", "match"),
    [
        (0, {"position_m": [0, 0, "up"]}, r"mics\[0\]\.position_m\[2\]='up' is not a number"),
        (
            0,
            {"position_m": [0, 0, 1e3]},
            r"mics\[0\]\.position_m\[2\]=1000\.0 is out of range; allowed -100\.\.100 m",
        ),
        (
            1,
            {"position_m": [-0.0505, 0.0, 0.0]},
            r"mics\[1\]\.position_m is 0\.50 mm from mics\[0\]",
        ),
        (
            1,
            {"channel": 0},
            r"mics\[1\]\.channel=0 is not a device channel number 1\.\.64 \(1-based\)",
        ),
        (1, {"channel": 1.0}, r"mics\[1\]\.channel=1\.0 is not a device channel number"),
        (2, {"channel": 1}, r"mics\[2\]\.channel=1 is already used by mics\[0\]"),
        (1, {"gain_db": 41}, r"mics\[1\]\.gain_db=41 is out of range; allowed -40\.\.40 dB"),
        (1, {"gain_db": float("nan")}, r"mics\[1\]\.gain_db=nan is out of range"),
        (
            2,
            {"sensitivity_dbfs": 3},
            r"mics\[2\]\.sensitivity_dbfs=3 is out of range; allowed -80\.\.0 dBFS",
        ),
        (0, {"gian_db": 3}, r"unknown key mics\[0\]\.'gian_db'"),
    ],
)
def test_mic_errors_name_the_microphone(mic, changes, match):
    with pytest.raises(ConfigError, match=match):
        parse_array(_mic(mic, **changes), "line")


def test_missing_position_and_non_table():
    t = _mic(0)
    del t["mics"][0]["position_m"]
    with pytest.raises(ConfigError, match=r"mics\[0\]\.position_m is missing"):
        parse_array(t, "line")
    with pytest.raises(ConfigError, match=r"array 'desk' is list, not a table"):
        parse_array([], "desk")


def test_device_channel_check():
    config = parse_array(_mic(2, channel=6), "line")
    check_device_channels(config, 6)
    check_device_channels(config, 8)
    with pytest.raises(
        DeviceError,
        match=r"array 'line' maps mics\[2\] to input channel 6, but USB Array has 4 input "
        r"channels \(allowed channels 1\.\.4\)",
    ):
        check_device_channels(config, 4, "USB Array")
    with pytest.raises(DeviceError, match=r"has 1 input channel \(allowed channels 1\.\.1\)"):
        check_device_channels(config, 1)


def test_load_array_files(tmp_path):
    with pytest.raises(ConfigError, match=r"array config '.*nothing\.toml' does not exist"):
        load_array(tmp_path / "nothing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[array\nname = 1")
    with pytest.raises(ConfigError, match=r"broken\.toml' is not valid TOML"):
        load_array(broken)
    two = tmp_path / "site.toml"
    mic = "[[arrays.{0}.mics]]\nposition_m = [0, 0, 0]\nchannel = 1\n"
    two.write_text(mic.format("north") + mic.format("south"))
    assert load_array(two, "south").name == "south"
    with pytest.raises(
        ConfigError, match=r"has no \[arrays\.east\] table; it has: \['north', 'south'\]"
    ):
        load_array(two, "east")
    with pytest.raises(
        ConfigError, match=r"needs an \[array\] table or exactly one \[arrays\.NAME\]"
    ):
        load_array(two)
    one = tmp_path / "one.toml"
    one.write_text(mic.format("only"))
    assert load_array(one).name == "only"


# -- the array's ambient level for the masking controller -----------------------------------------
def test_ambient_levels_per_capsule_and_energetic_average():
    from audio_engine.dsp.array_ambient import ArrayAmbient

    config = load_array(EXAMPLE)  # every capsule -26 dBFS at 94 dB SPL, no trim
    sample_rate = 48000
    ambient = ArrayAmbient(sample_rate, 480, config)
    # A 1 kHz tone (A-weighting 0 dB there, IEC 61672-1) at a different level on each capsule.
    tone_dbfs = np.array([-30.0, -33.0, -36.0, -40.0])
    tone = np.sqrt(2.0) * signals.sine(1000.0, sample_rate, 2.0, amplitude=1.0)
    x = (tone[:, None] * 10 ** (tone_dbfs / 20)).astype(np.float32)
    out = np.zeros((480, 1), np.float32)
    for start in range(0, len(x), 480):
        ambient.process(x[start : start + 480], out)
    reading = ambient.measure()
    # The A-weighting filter's start-up transient is a few ms of 2 s: under 0.05 dB.
    np.testing.assert_allclose(reading.levels_dba, tone_dbfs + 94.0 + 26.0, atol=0.05)
    expected = 10 * np.log10(np.mean(10 ** ((tone_dbfs + 120.0) / 10)))
    assert reading.average_dba == pytest.approx(expected, abs=0.05)
    assert reading.live.all()
    assert ambient.measure() is None  # nothing since the last reading
    assert np.all(out == 0.0)


def test_ambient_leaves_a_dead_capsule_out():
    from audio_engine.dsp.array_ambient import ArrayAmbient, spatial_average_dba

    config = load_array(EXAMPLE)
    ambient = ArrayAmbient(16000, 160, config, input_channels=8)
    x = np.zeros((16000, 8), np.float32)
    x[:, :4] = signals.white(16000, 4, 9, rms=0.01)
    x[:, 2] = 0.0  # mic 2 (device channel 3) unplugged
    out = np.zeros((160, 1), np.float32)
    for start in range(0, 16000, 160):
        ambient.process(x[start : start + 160], out)
    reading = ambient.measure()
    assert reading.live.tolist() == [True, True, False, True]
    live_levels = reading.levels_dba[[0, 1, 3]]
    assert reading.average_dba == pytest.approx(10 * np.log10(np.mean(10 ** (live_levels / 10))))
    assert reading.levels_for_rule_dba[2] == reading.average_dba
    average, live = spatial_average_dba(np.array([50.0, np.nan, 49.0, 20.0]))
    assert live.tolist() == [True, False, True, False]
    assert average == pytest.approx(10 * np.log10((10**5 + 10**4.9) / 2))
    assert np.isnan(spatial_average_dba(np.array([np.nan, np.inf]))[0])


def test_ambient_needs_calibrated_capsules():
    from audio_engine.dsp.array_ambient import ArrayAmbient

    with pytest.raises(ConfigError, match=r"array 'line': mics\[0, 1\] have no sensitivity_dbfs"):
        ArrayAmbient(16000, 160, parse_array(table(), "line"))
    with pytest.raises(ConfigError, match=r"dead_margin_db=1 is out of range; allowed 3\.\.60 dB"):
        ArrayAmbient(16000, 160, load_array(EXAMPLE), dead_margin_db=1)


def test_file_channel_check():
    from audio_engine.array_config import check_file_channels

    config = load_array(EXAMPLE)
    check_file_channels(config, 4, "call.wav")
    with pytest.raises(
        ConfigError,
        match=r"'call\.wav' has 2 channels but array 'desk-4' has 4 microphones; allowed: a "
        r"4-channel file",
    ):
        check_file_channels(config, 2, "call.wav")


def test_ambient_process_allocates_nothing():
    import tracemalloc

    from audio_engine.dsp.array_ambient import ArrayAmbient

    ambient = ArrayAmbient(48000, 480, load_array(EXAMPLE), input_channels=6)
    x = signals.white(480, 6, 4)
    out = np.zeros((480, 1), np.float32)
    ambient.process(x, out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(100):
        ambient.process(x, out)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 2048, f"process() left {grown} bytes allocated"
