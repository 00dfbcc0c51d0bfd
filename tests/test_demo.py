"""The main job on its built-in default: `audio-engine demo`, as README's first command runs it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from audio_engine.io.files import read_audio
from tests import signals
from tests.conftest import CLI


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = subprocess.run(
        [*CLI, "demo", "--seconds", "8", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_demo_prints_a_latency_report_per_pipeline(demo_run):
    out, stdout = demo_run
    for name in ("masking", "headset", "receive"):
        assert f"Latency report — {name}" in stdout
    assert str(out.resolve()) in stdout
    data = json.loads((out / "latency_report.json").read_text())
    assert set(data["pipelines"]) == {"masking", "headset", "receive"}
    headset = data["pipelines"]["headset"]
    # The run is latency-compensated: it feeds latency_samples extra frames, block by block.
    latency = sum(st["algorithmic_latency_samples"] for st in headset["stages"])
    assert headset["blocks"] == -(-(8 * 16000 + latency) // 80)
    assert headset["total_latency_ms"] <= 10.0


def test_demo_audio_is_finite_and_the_call_is_cleaner(demo_run):
    out, _ = demo_run
    clean, rate = read_audio(out / "headset_clean_speech.wav")
    noisy, _ = read_audio(out / "headset_mic_noisy.wav")
    cleaned, _ = read_audio(out / "headset_to_softphone.wav")
    assert rate == 16000 and clean.shape == noisy.shape == cleaned.shape
    assert np.isfinite(cleaned).all()
    before = signals.si_sdr_db(clean[:, 0], noisy[:, 0])
    after = signals.si_sdr_db(clean[:, 0], cleaned[:, 0])
    assert after > before - 0.5, f"SI-SDR {before:.1f} dB -> {after:.1f} dB"
    # In the agent's pauses only the office remains: the suppressor must take it down.
    frame = 320
    energy = [
        np.mean(np.square(x[: len(x) // frame * frame, 0]).reshape(-1, frame), axis=1)
        for x in (clean, noisy, cleaned)
    ]
    pause = energy[0] < 1e-7
    assert pause.mean() > 0.05
    reduction_db = signals.db(energy[2][pause].sum() / energy[1][pause].sum())
    assert reduction_db < -3.0, f"noise in pauses only {reduction_db:.1f} dB"


def test_demo_masking_has_one_channel_per_zone_and_stays_quiet(demo_run):
    out, _ = demo_run
    zones, rate = read_audio(out / "masking_zones.wav")
    assert rate == 48000 and zones.shape[1] == 4
    assert np.isfinite(zones).all()
    # The example site plays 40-42 dBA through offsets near 90 dB: far below full scale.
    assert np.abs(zones).max() < 0.1


def test_demo_receive_path_holds_the_limit(demo_run):
    out, stdout = demo_run
    ear, _ = read_audio(out / "receive_to_ear.wav")
    assert np.isfinite(ear).all()
    assert "peak at the ear with protection" in stdout


def test_demo_runs_without_portaudio_or_espeak(tmp_path):
    """README's first command must work on a machine with neither PortAudio nor espeak-ng: the
    demo never imports sounddevice and speaks from the packaged recording."""
    import os
    import sys

    code = (
        "import sys; sys.modules['sounddevice'] = None\n"  # any `import sounddevice` now fails
        "from audio_engine.office.speech import have_espeak\n"
        "assert not have_espeak()\n"
        "from audio_engine.cli import main\n"
        f"raise SystemExit(main(['demo', '--seconds', '2', '--out', {str(tmp_path)!r}]))\n"
    )
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))  # no espeak-ng on PATH
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "headset_to_softphone.wav").is_file()
