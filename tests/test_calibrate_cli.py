"""`audio-engine calibrate --simulate` and `audio-engine measure`, headless, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_engine.calibration import backup_path, load_calibration
from audio_engine.cli import main

REPO = Path(__file__).resolve().parent.parent
TARGET_CURVE = REPO / "calibration" / "masking_target_default.csv"


def _site(tmp_path: Path) -> Path:
    """A two-zone site at 24 kHz (quick to simulate), adaptive off."""
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[site]
name = "Test floor"
sample_rate = 24000
block_size = 240

[masking]
target_curve = "{TARGET_CURVE.as_posix()}"
default_spl_offset_db = 90.0

[[zones]]
name = "Desks"
output_channel = 1
level_dba = 42.0

[[zones]]
name = "Leads"
output_channel = 2
level_dba = 40.0
""",
        encoding="utf-8",
    )
    return path


def _calibrate(tmp_path: Path, *extra: str) -> int:
    return main(
        ["calibrate", "--config", str(_site(tmp_path)), "--simulate", "--positions", "2",
         "--measure-s", "4", "--report", str(tmp_path / "report"), "--by", "test", *extra]
    )  # fmt: skip


def test_simulated_calibration_end_to_end(tmp_path, capsys):
    assert _calibrate(tmp_path) == 0
    out = capsys.readouterr().out
    assert "place the microphone at position 2 of zone 'Desks'" in out
    assert "RESULT: PASS" in out
    calibration = load_calibration(tmp_path / "site.calibration.toml")
    assert [z.name for z in calibration.zones] == ["Desks", "Leads"]
    assert all(z.passed and z.iterations <= 3 for z in calibration.zones)
    assert (
        calibration.measured_by == "test" and "simulated office 'open-plan'" in calibration.method
    )
    assert calibration.mic("measurement mic").spl_offset_db == pytest.approx(124.0, abs=0.05)
    report = json.loads((tmp_path / "report" / "calibration_report.json").read_text())
    assert report["passed"] and len(report["zones"]) == 2
    for zone in report["zones"]:
        assert max(abs(d) for d in zone["deviation_db"]) <= 1.0
        assert len(zone["laeq_masking_dba_per_position"]) == 2
        assert zone["privacy_per_position"][0]["privacy_class"] in {
            "confidential", "normal", "marginal", "none"}  # fmt: skip
    html = (tmp_path / "report" / "calibration_report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "PASS" in html

    # A second run starts from the saved calibration (its first reading is already near the
    # target, unlike the first run's flat start) and keeps the first file as the backup.
    first_reading_db = report["zones"][1]["max_deviation_history_db"][0]
    capsys.readouterr()
    assert _calibrate(tmp_path, "--zone", "Leads", "--reuse-mic") == 0
    assert (
        "microphone 'measurement mic': stored sensitivity -30.0 dBFS/Pa" in capsys.readouterr().out
    )
    assert load_calibration(backup_path(tmp_path / "site.calibration.toml")) == calibration
    again = load_calibration(tmp_path / "site.calibration.toml")
    assert again.zone("Desks") == calibration.zone("Desks")  # untouched zone kept
    rerun = json.loads((tmp_path / "report" / "calibration_report.json").read_text())
    assert [z["name"] for z in rerun["zones"]] == ["Leads"]
    assert rerun["zones"][0]["max_deviation_history_db"][0] <= 1.5 < first_reading_db


def test_hard_room_zone_and_corrupt_previous_file(tmp_path, capsys):
    (tmp_path / "site.calibration.toml").write_text("schema = 'garbage'\n")
    assert _calibrate(tmp_path, "--room", "hard", "--zone", "1") in (0, 1)
    out = capsys.readouterr().out
    assert "warning: the existing calibration is not used" in out and "checksum" in out
    assert "simulated office 'hard'" in out
    calibration = load_calibration(tmp_path / "site.calibration.toml")
    assert [z.name for z in calibration.zones] == ["Desks"]
    report = json.loads((tmp_path / "report" / "calibration_report.json").read_text())
    assert report["zones"][0]["passed"] == calibration.zones[0].passed


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert _calibrate(tmp_path, "--zone", "9") == 2
    assert "--zone='9' is not a zone number 1..2 or a zone name ['Desks', 'Leads']" in (
        capsys.readouterr().err
    )
    assert _calibrate(tmp_path, "--room", "cave") == 2
    assert "--room='cave' is not one of" in capsys.readouterr().err
    assert _calibrate(tmp_path, "--reuse-mic") == 2
    assert "--reuse-mic: microphone 'measurement mic' is not in" in capsys.readouterr().err


def test_measure_a_calibrator_then_a_recording(tmp_path, capsys):
    sample_rate = 48000
    t = np.arange(3 * sample_rate) / sample_rate
    tone = np.sqrt(2) * 10 ** (-30 / 20) * np.sin(2 * np.pi * 1000 * t)  # 94 dB at -30 dBFS
    sf.write(tmp_path / "cal.wav", tone.astype(np.float32), sample_rate, subtype="FLOAT")
    rng = np.random.default_rng(7)
    sf.write(tmp_path / "room.wav", (0.01 * rng.standard_normal(5 * sample_rate)).astype(
        np.float32), sample_rate, subtype="FLOAT")  # fmt: skip
    assert _calibrate(tmp_path, "--zone", "1", "--measure-s", "2", "--positions", "1") in (0, 1)
    cal_file = str(tmp_path / "site.calibration.toml")
    capsys.readouterr()
    assert main(["measure", "--file", str(tmp_path / "cal.wav"), "--calibrator",
                 "--calibration", cal_file, "--mic", "ref"]) == 0  # fmt: skip
    assert "SPL offset 124.00 dB" in capsys.readouterr().out
    assert load_calibration(cal_file).mic("ref").spl_offset_db == pytest.approx(124.0, abs=0.01)
    reading_path = tmp_path / "reading.json"
    assert main(["measure", "--file", str(tmp_path / "room.wav"), "--calibration", cal_file,
                 "--mic", "ref", "--json", str(reading_path)]) == 0  # fmt: skip
    reading = json.loads(reading_path.read_text())
    # White noise of RMS 0.01 (-40 dBFS) on a 124 dB mic: LZeq 84 dB SPL.
    assert reading["unit"] == "dB SPL"
    assert reading["LZeq"] == pytest.approx(84.0, abs=0.1)
    assert reading["LAF90"] <= reading["LAeq"] <= reading["LAF10"] + 0.5
    assert main(["measure", "--file", str(tmp_path / "room.wav"), "--calibration", cal_file,
                 "--mic", "nobody"]) == 2  # fmt: skip
    assert "--mic='nobody' is not in" in capsys.readouterr().err


def test_report_says_fail_plainly_with_the_reasons(tmp_path):
    from audio_engine.report_html import write_report

    bands = [100.0, 125.0, 160.0]
    zone = {
        "zone": 0, "name": "Corridor", "passed": False,
        "reasons": ["bands not measurable (within 3 dB of the background): 100 Hz"],
        "target_dba": 40.0, "spl_offset_db": 80.0, "iterations": 3,
        "max_deviation_history_db": [4.0, 2.0, 1.5], "bands_hz": bands,
        "target_db": [30.0, 31.0, 32.0], "predicted_db": [None, 31.4, 33.5],
        "deviation_db": [None, 0.4, 1.5], "eq_db": [0.0, -1.0, 2.0],
        "laeq_total_dba_per_position": [44.0], "laeq_masking_dba_per_position": [None],
        "background_dba_per_position": [43.0], "spatial_spread_db": 0.0,
        "privacy_per_position": [{"position": 1, "sii": 0.41, "privacy_index": 59.0,
                                  "privacy_class": "none"}],
    }  # fmt: skip
    html_path, json_path = write_report(tmp_path, [zone], {"site": "Test floor"})
    html = html_path.read_text()
    assert "Masking calibration report — <span class='FAIL'>FAIL</span>" in html
    assert "Corridor — <span class='FAIL'>FAIL</span>" in html
    assert "100 Hz" in html and "n/m" in html
    assert json.loads(json_path.read_text())["passed"] is False


class _FakeSoundDevice:
    """A sound card whose output channel 2 reaches the microphone on input channel 1 through
    a simple 'room' (a gain and a little noise), and a calibrator that plays 94 dB."""

    def __init__(self, mic_offset_db: float = 120.0, zone_offset_db: float = 80.0):
        self.mic_gain = 10 ** (-mic_offset_db / 20)
        self.zone_gain = 10 ** (zone_offset_db / 20)
        self.rng = np.random.default_rng(3)
        self.played_channels: set[int] = set()

    def _noise(self, frames: int) -> np.ndarray:
        return 10 ** (25 / 20) * self.rng.standard_normal(frames)  # 25 dB SPL of hiss

    def playrec(self, play, samplerate, input_mapping, device, dtype, blocking):
        assert input_mapping == [1] and device == (5, 7) and blocking
        self.played_channels |= {c for c in range(play.shape[1]) if np.any(play[:, c])}
        pressure = self.zone_gain * play[:, 1].astype(np.float64) + self._noise(len(play))
        return (self.mic_gain * pressure).astype(np.float32)[:, None]

    def rec(self, frames, samplerate, mapping, device, dtype, blocking):
        t = np.arange(frames) / samplerate
        tone = np.sqrt(2) * 10 ** (94 / 20) * np.sin(2 * np.pi * 1000 * t)
        return (self.mic_gain * (tone + self._noise(frames))).astype(np.float32)[:, None]


def test_sound_card_path_with_a_fake_device(tmp_path, monkeypatch, capsys):
    """The hardware path (no --simulate): devices resolved, zone 2 played on output channel 2,
    the mic recorded on input channel 1, prompts printed without waiting (no TTY)."""
    from audio_engine.io import device
    from audio_engine.io.device import Endpoint

    fake = _FakeSoundDevice()
    monkeypatch.setattr(device, "import_sounddevice", lambda: fake)
    monkeypatch.setattr(
        device,
        "resolve_device",
        lambda spec, kind: Endpoint(kind, 5 if kind == "input" else 7, f"fake {kind}", "ALSA", 8),
    )
    monkeypatch.setattr(device, "check_settings", lambda endpoint, rate, channels: None)
    code = main(["calibrate", "--config", str(_site(tmp_path)), "--zone", "Leads",
                 "--positions", "1", "--measure-s", "3", "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert fake.played_channels == {1}  # zone 'Leads' is output_channel 2
    assert "put the 94 dB / 1 kHz calibrator on microphone" in out
    assert "devices: input 5 'fake input' (ALSA), output 7 'fake output' (ALSA)" in out
    calibration = load_calibration(tmp_path / "site.calibration.toml")
    assert "input 5 'fake input' (ALSA)" in calibration.method
    assert calibration.mic("measurement mic").spl_offset_db == pytest.approx(120.0, abs=0.05)
    # A flat 'room' with an 80 dB gain: the offset is 80 dB plus the masking spectrum's own
    # A-weighting (its LAeq minus its unweighted level), and no EQ is needed.
    from audio_engine.autocal import MaskingRenderer
    from audio_engine.dsp.levels import leq_db
    from audio_engine.site import load_site_config

    site = load_site_config(tmp_path / "site.toml")
    noise = MaskingRenderer(24000, site.target_nominal_hz, site.target_level_db, 1)(
        0, np.zeros(len(site.target_nominal_hz)), -20.0, 10.0
    )
    a_minus_flat_db = leq_db(noise, 24000, "A") - leq_db(noise, 24000, "Z")
    leads = calibration.zone("Leads")
    assert leads.passed
    assert leads.spl_offset_db == pytest.approx(80.0 + a_minus_flat_db, abs=0.3)
    assert max(abs(v) for v in leads.eq_db) < 1.0


def test_measure_from_a_fake_microphone(tmp_path, monkeypatch, capsys):
    from audio_engine.io import device
    from audio_engine.io.device import Endpoint

    fake = _FakeSoundDevice(mic_offset_db=120.0)
    monkeypatch.setattr(device, "import_sounddevice", lambda: fake)
    monkeypatch.setattr(
        device, "resolve_device", lambda spec, kind: Endpoint(kind, 5, "fake mic", "ALSA", 2)
    )
    monkeypatch.setattr(device, "check_settings", lambda endpoint, rate, channels: None)
    # The fake calibrator plays 94 dB SPL: a mic offset of 120 dB must read 94 dB in 1 kHz.
    assert main(["measure", "--seconds", "2", "--offset-db", "120", "--low-hz", "1000",
                 "--high-hz", "1000", "--json", str(tmp_path / "m.json")]) == 0  # fmt: skip
    reading = json.loads((tmp_path / "m.json").read_text())
    assert reading["source"] == "device 5 'fake mic' (ALSA)"
    assert reading["band_levels"][0] == pytest.approx(94.0, abs=0.05)
    assert reading["LAeq"] == pytest.approx(94.0, abs=0.1)
    assert main(["measure", "--seconds", "2", "--channel", "3"]) == 2
    assert "--channel=3 is not in 1..2 of 5 'fake mic' (ALSA)" in capsys.readouterr().err
