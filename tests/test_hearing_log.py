"""The persisted dose and event log: crash safety (SIGKILL), restart within the day, midnight."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from audio_engine.dsp.hearing import HearingProtector
from audio_engine.errors import ConfigError
from audio_engine.headset_profile import HeadsetProfile
from audio_engine.hearing_log import (
    HearingLog,
    day_energy_pa2s,
    log_path,
    read_records,
)

FS = 48000
PROFILE = HeadsetProfile("test-110", 110.0)


def loud_then_quiet(
    blocks: int, block_size: int = 480, loud_s: float = 0.3, quiet_s: float = 0.3
) -> np.ndarray:
    """A 1 kHz tone, ``loud_s`` at 110 dB SPL then ``quiet_s`` at 70 dB SPL, repeated."""
    t = np.arange(blocks * block_size) / FS
    loud = np.mod(t, loud_s + quiet_s) < loud_s
    amplitude = np.where(loud, 1.0, 0.01)
    return (amplitude * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)[:, None]


def run_blocks(p: HearingProtector, x: np.ndarray, block_size: int = 480) -> None:
    out = np.zeros((block_size, x.shape[1]), np.float32)
    for i in range(0, len(x) - block_size + 1, block_size):
        p.process(x[i : i + block_size], out)


def test_records_round_trip_and_dose_is_restored_on_restart(tmp_path):
    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(p, tmp_path, poll_interval_s=10.0, dose_interval_s=600.0) as log:
        run_blocks(p, loud_then_quiet(200))
        energy = p.dosimeter.day_energy_pa2s
    path = log_path(tmp_path, dt.date.today())
    records = read_records(path)
    assert [r["type"] for r in records][0] == "session"
    assert records[-1]["type"] == "dose"
    assert records[-1]["energy_pa2s"] == pytest.approx(energy)
    kinds = {r["kind"] for r in records if r["type"] == "event"}
    assert "startle" in kinds
    assert all(
        r["peak_db_spl"] == pytest.approx(110.0, abs=0.1) for r in records if r["type"] == "event"
    )
    assert log.records_written == len(records)
    # A restart within the day continues from the same dose.
    q = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(q, tmp_path) as log2:
        assert log2.restored_energy_pa2s == pytest.approx(energy)
        assert q.dosimeter.day_energy_pa2s == pytest.approx(energy)
        run_blocks(q, loud_then_quiet(100))
    assert day_energy_pa2s(path) > energy


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_clean(tmp_path):
    path = log_path(tmp_path, dt.date.today())
    whole = {"type": "dose", "time": "x", "energy_pa2s": 1.5, "lex_8h_dba": 40.0}
    path.write_text(json.dumps(whole) + "\n" + '{"type": "dose", "energy_pa2s": 99')
    assert day_energy_pa2s(path) == 1.5
    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(p, tmp_path):
        pass
    records = read_records(path)
    assert [r["type"] for r in records] == ["dose", "session", "dose"]
    assert records[-1]["energy_pa2s"] == pytest.approx(1.5)


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from audio_engine.dsp.hearing import HearingProtector
    from audio_engine.headset_profile import HeadsetProfile
    from audio_engine.hearing_log import HearingLog
    p = HearingProtector(48000, 480, 1, profile=HeadsetProfile("test-110", 110.0))
    log = HearingLog(p, sys.argv[1], poll_interval_s=0.02, dose_interval_s=0.05).start()
    t = np.arange(480) / 48000
    out = np.zeros((480, 1), np.float32)
    block = np.zeros((480, 1), np.float32)
    i = 0
    while True:  # until killed
        amplitude = 1.0 if (i // 30) % 2 == 0 else 0.01
        block[:, 0] = amplitude * np.sin(2 * np.pi * 1000.0 * (t + i * 0.01))
        p.process(block, out)
        i += 1
        time.sleep(0.002)
    """
)


def test_dose_and_events_survive_sigkill_and_restart(tmp_path):
    """A process killed with SIGKILL (no cleanup, no atexit) leaves a log whose every whole
    record parses; a new process restores the last dose record's energy and goes on from it."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    logs = tmp_path / "logs"
    child = subprocess.Popen([sys.executable, str(script), str(logs)])
    path = log_path(logs, dt.date.today())
    try:
        deadline = time.monotonic() + 45.0
        while time.monotonic() < deadline:
            records = read_records(path)
            doses = [r for r in records if r["type"] == "dose"]
            events = [r for r in records if r["type"] == "event"]
            if len(doses) >= 5 and events:
                break
            assert child.poll() is None, "the child process died on its own"
            time.sleep(0.05)
        else:
            pytest.fail(f"the child wrote only {len(records)} records in 45 s")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    raw = path.read_bytes().split(b"\n")
    records = read_records(path)
    whole = [line for line in raw if line.strip()]
    assert len(whole) - len(records) <= 1  # at most the line being written when killed
    last_energy = [r for r in records if r["type"] == "dose"][-1]["energy_pa2s"]
    assert last_energy > 0.0
    assert any(r["type"] == "event" and r["peak_db_spl"] > 105.0 for r in records)

    q = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(q, logs) as log:
        assert log.restored_energy_pa2s == pytest.approx(last_energy)
        assert q.dose_percent == 0.0 or q.dosimeter.day_energy_pa2s >= last_energy
        run_blocks(q, loud_then_quiet(50))
        assert q.dosimeter.day_energy_pa2s > last_energy
    assert day_energy_pa2s(path) > last_energy


class FakeClock:
    def __init__(self, start: dt.datetime):
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def test_midnight_closes_the_day_and_starts_a_new_dose(tmp_path):
    start = dt.datetime(2026, 3, 2, 23, 59, 50)
    clock = FakeClock(start)
    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    log = HearingLog(p, tmp_path, dose_interval_s=600.0, clock=clock).start()
    try:
        run_blocks(p, loud_then_quiet(100))
        yesterday_energy = p.dosimeter.day_energy_pa2s
        clock.now += 20.0
        log.poll()
        assert p.dosimeter.day_energy_pa2s == 0.0
        run_blocks(p, loud_then_quiet(50))
        today_energy = p.dosimeter.day_energy_pa2s
    finally:
        log.stop()
    first = read_records(log_path(tmp_path, dt.date(2026, 3, 2)))
    second = read_records(log_path(tmp_path, dt.date(2026, 3, 3)))
    assert first[-1]["type"] == "dose"
    assert first[-1]["energy_pa2s"] == pytest.approx(yesterday_energy)
    assert second[0]["type"] == "session" and second[0]["restored_energy_pa2s"] == 0.0
    assert second[-1]["energy_pa2s"] == pytest.approx(today_energy)


def test_notify_hears_every_event(tmp_path):
    heard = []
    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(p, tmp_path, poll_interval_s=10.0, notify=heard.append):
        run_blocks(p, loud_then_quiet(200))
    written = [r for r in read_records(log_path(tmp_path, dt.date.today())) if r["type"] == "event"]
    assert heard == written and heard


def test_event_ring_overflow_is_counted_not_fatal():
    p = HearingProtector(
        FS, 480, 1, profile=PROFILE, event_capacity=8, startle=False, level_control=False
    )
    run_blocks(p, loud_then_quiet(2000, loud_s=0.1, quiet_s=0.9))  # 20 s: 20 limit events
    events = p.events.drain()
    assert len(events) == 8
    assert p.events.lost > 0
    # The 8 kept are the newest: the last one closed in the final seconds.
    assert max(e["start_sample"] for e in events) > p.samples_processed - 2 * FS
    assert all(np.isfinite(e["peak_db_spl"]) for e in events)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"poll_interval_s": 0.0}, r"poll_interval_s=0\.0 is not a number in 0\.01\.\.10 s"),
        ({"dose_interval_s": 1e4}, r"dose_interval_s=10000\.0 is not a number in 0\.05\.\.600 s"),
    ],
)
def test_bad_settings_are_pinned(tmp_path, kwargs, match):
    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    with pytest.raises(ConfigError, match=match):
        HearingLog(p, tmp_path, **kwargs)


def test_not_a_protector_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"is not a HearingProtector"):
        HearingLog(object(), tmp_path)


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    from audio_engine.hearing_log import default_log_dir

    monkeypatch.setenv("AUDIO_ENGINE_HEARING_DIR", str(tmp_path))
    assert default_log_dir() == tmp_path
    monkeypatch.delenv("AUDIO_ENGINE_HEARING_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_log_dir() == tmp_path / "audio_engine" / "hearing"


def test_hearing_report_summarises_a_day_as_text_and_html(tmp_path, capsys):
    from audio_engine.cli import main
    from audio_engine.dsp.dosimeter import lex_8h_from_energy

    p = HearingProtector(FS, 480, 1, profile=PROFILE)
    with HearingLog(p, tmp_path / "logs"):
        run_blocks(p, loud_then_quiet(300))
        energy = p.dosimeter.day_energy_pa2s
    html = tmp_path / "report.html"
    assert main(["hearing-report", "--dir", str(tmp_path / "logs"), "--html", str(html)]) == 0
    text = capsys.readouterr().out
    today = dt.date.today().isoformat()
    row = next(line for line in text.splitlines() if line.strip().startswith(today))
    assert f"{lex_8h_from_energy(energy):.1f}" in row
    assert "startle" in text and "110.0 dB SPL" in text
    page = html.read_text()
    assert "<img alt='dose and events plot' src='data:image/png;base64," in page
    assert today in page


def test_hearing_report_week_lists_seven_days_and_pins_errors(tmp_path, capsys):
    from audio_engine.cli import main

    (tmp_path / "logs").mkdir()
    html = tmp_path / "w.html"
    args = ["hearing-report", "--dir", str(tmp_path / "logs"), "--html", str(html)]
    assert main([*args, "--day", "2026-03-08", "--week"]) == 0
    text = capsys.readouterr().out
    assert "2026-03-02 .. 2026-03-08" in text
    assert sum(line.strip().startswith("2026-03-0") for line in text.splitlines()) == 7
    assert main([*args, "--day", "2026-13-01"]) == 2
    assert "--day='2026-13-01' is not a date YYYY-MM-DD" in capsys.readouterr().err
    assert main(["hearing-report", "--dir", str(tmp_path / "absent")]) == 2
    assert "is not a folder with hearing logs" in capsys.readouterr().err
