"""``audio-engine denoise``: files keep their rate, channels and length, come out cleaner and
aligned; bad files and values fail with one clear line and exit status 2."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, lfilter

from audio_engine.cli import main
from audio_engine.commands import denoise
from audio_engine.office.noise import mix_at_snr
from tests import signals


def noisy_file(path, sample_rate: int, channels: int, seconds: float | None = None):
    """Write speech + pink noise (10 dB SNR) to ``path``; return (clean, noisy) (frames, ch)."""
    s = signals.speech("en", sample_rate)
    if seconds is not None:
        s = np.resize(s, int(seconds * sample_rate))
    noise = mix_at_snr(s, signals.office_noise_signal("pink", len(s), sample_rate), 10.0)
    clean = np.stack([s * (0.5**c) for c in range(channels)], axis=1)
    noisy = clean + np.stack([noise * (0.5**c) for c in range(channels)], axis=1)
    sf.write(str(path), noisy, sample_rate, subtype="FLOAT")
    return clean, noisy


@pytest.mark.parametrize(("sample_rate", "channels"), [(16000, 1), (44100, 2)])
def test_denoise_keeps_format_aligns_and_cleans(tmp_path, capsys, sample_rate, channels):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    clean, noisy = noisy_file(src, sample_rate, channels)
    assert main(["denoise", str(src), str(dst), "--report", str(tmp_path / "r.json")]) == 0
    out, rate = sf.read(str(dst), dtype="float32", always_2d=True)
    assert rate == sample_rate and out.shape == noisy.shape
    for c in range(channels):
        # Aligned: the delay is compensated, so the best lag against the clean speech is 0.
        assert signals.delay_by_xcorr(clean[:, c], out[:, c], 200) == 0
        assert signals.si_sdr_db(clean[:, c], out[:, c]) > signals.si_sdr_db(
            clean[:, c], noisy[:, c]
        )
    text = capsys.readouterr().out
    assert "suppressor_mean_snr_db" in text and "wrote" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pipelines"]["denoise"]["sample_rate"] == sample_rate


def test_attenuation_zero_only_highpasses(tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    _, noisy = noisy_file(src, 16000, 1)
    assert main(["denoise", str(src), str(dst), "--attenuation-db", "0", "--quiet"]) == 0
    out, _ = sf.read(str(dst), dtype="float32", always_2d=True)
    # Unity spectral gain: the output is the input through the 50 Hz high-pass, aligned.
    b, a = butter(2, 50.0, "highpass", fs=16000)
    np.testing.assert_allclose(out[:, 0], lfilter(b, a, noisy[:, 0]), atol=2e-6)


def test_long_files_show_progress(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(denoise, "PROGRESS_MIN_S", 1.0)
    import rich.progress

    real_update = rich.progress.Progress.update

    def spy(self, task, **kwargs):
        calls.append(kwargs.get("completed"))
        return real_update(self, task, **kwargs)

    monkeypatch.setattr(rich.progress.Progress, "update", spy)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    noisy_file(src, 8000, 1, seconds=3.0)
    assert main(["denoise", str(src), str(dst)]) == 0
    assert calls and calls[-1] == 3 * 8000


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            "rate",
            [],
            r"^audio-engine denoise: error: '.*in\.wav' is sampled at 22050 Hz; the suppressor "
            r"runs natively at \[8000, 16000, 24000, 32000, 44100, 48000\] Hz",
        ),
        ("text", [], r"^audio-engine denoise: error: cannot read audio file '.*in\.wav'"),
        ("missing", [], r"^audio-engine denoise: error: cannot read audio file .*no such file"),
        (
            "ok",
            ["--attenuation-db", "-3"],
            r"^audio-engine denoise: error: attenuation_db=-3\.0 is not a number in 0\.\.60 dB$",
        ),
        ("ok-flac", [], r"^audio-engine denoise: error: OUT '.*out\.flac' must end in \.wav"),
        (
            "ok",
            ["--block-size", "0"],
            r"^audio-engine denoise: error: block_size=0 is not an integer in 1\.\.65536$",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, make, args, message):
    src = tmp_path / "in.wav"
    dst = tmp_path / ("out.flac" if make == "ok-flac" else "out.wav")
    if make == "rate":
        sf.write(str(src), signals.sine(440.0, 22050, 0.5), 22050)
    elif make == "text":
        src.write_text("not audio\n")
    elif make.startswith("ok"):
        noisy_file(src, 16000, 1, seconds=0.5)
    assert main(["denoise", str(src), str(dst), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(message, err.strip()), err
    assert not dst.exists()


def test_denoise_with_an_array_config_steers_to_the_agent(tmp_path):
    """`denoise --array`: a 4-mic office recording in, the agent's voice out (mono), cleaner
    than the reference microphone alone."""
    from audio_engine.io.files import read_audio, write_audio
    from audio_engine.resources import calibration_file
    from tests import signals

    config = calibration_file("example_array.toml")
    scene = signals.array_scene(config, sample_rate=16000, seconds=6.0)
    write_audio(tmp_path / "array.wav", scene["mixture"], 16000)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "array.wav"),
                str(tmp_path / "agent.wav"),
                "--array",
                str(config),
                "--quiet",
            ]
        )
        == 0
    )
    out, rate = read_audio(tmp_path / "agent.wav")
    assert rate == 16000 and out.shape == (scene["mixture"].shape[0], 1)
    ref = scene["reference_mic"]
    target = scene["target"][:, ref]
    before = signals.si_sdr_db(target, scene["mixture"][:, ref])
    after = signals.si_sdr_db(target, out[:, 0])
    assert after > before + 3.0, f"SI-SDR {before:.1f} -> {after:.1f} dB"


def test_denoise_array_refuses_a_file_with_the_wrong_channel_count(tmp_path, capsys):
    from audio_engine.io.files import write_audio
    from audio_engine.resources import calibration_file

    write_audio(tmp_path / "stereo.wav", np.zeros((16000, 2), np.float32), 16000)
    code = main(
        [
            "denoise",
            str(tmp_path / "stereo.wav"),
            str(tmp_path / "o.wav"),
            "--array",
            str(calibration_file("example_array.toml")),
        ]
    )
    assert code == 2
    assert "has 2 channels but array" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()
