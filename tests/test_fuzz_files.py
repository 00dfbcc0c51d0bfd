"""Audio files that are empty, truncated, damaged, unsupported or garbage, through the file API
and ``audio-engine denoise``.

Each either works (a truncated WAV is read up to where its data ends) or fails with one line on
stderr, ``audio-engine denoise: error: ...`` naming the file, exit status 2 — never a traceback —
and an existing OUT file is left as it was (nothing half-written in its place). The file API
(``audio_info``, ``read_audio``, ``FileSource``) raises :class:`~audio_engine.errors.AudioFileError`
and nothing else. Garbage is drawn by hypothesis (``AUDIO_ENGINE_FUZZ_EXAMPLES``, default 60).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_engine.cli import main
from audio_engine.errors import AudioFileError
from audio_engine.io.files import FileSource, audio_info, read_audio
from tests.signals import white

SAMPLE_RATE = 16000
OLD_OUTPUT = b"RIFF the previous cleaned call, must survive a failed run"

FUZZ = settings(
    max_examples=int(os.environ.get("AUDIO_ENGINE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def good_wav(seconds: float = 1.0) -> bytes:
    """A valid 32-bit float mono WAV of seeded noise, as bytes."""
    import io

    buffer = io.BytesIO()
    sf.write(
        buffer, white(int(seconds * SAMPLE_RATE), 1, rms=0.1), SAMPLE_RATE, "FLOAT", format="WAV"
    )
    return buffer.getvalue()


def good_flac(seconds: float = 3.0) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(
        buffer, white(int(seconds * SAMPLE_RATE), 1, rms=0.1), SAMPLE_RATE, "PCM_16", format="FLAC"
    )
    return buffer.getvalue()


def _with_format_tag(wav: bytes, tag: int) -> bytes:
    """The WAV with its fmt chunk's format tag replaced (0x55 = MPEG layer 3, not PCM/float)."""
    raw = bytearray(wav)
    raw[20:22] = tag.to_bytes(2, "little")
    return bytes(raw)


#: Inputs that must be refused before anything is written: name -> bytes.
REFUSED = {
    "empty.wav": lambda: b"",
    "header-only.wav": lambda: good_wav()[:44],
    "header-cut.wav": lambda: good_wav()[:20],
    "mp3-in-wav.wav": lambda: _with_format_tag(good_wav(), 0x55),
    "text.wav": lambda: b"this is not audio\n" * 50,
    "zeros.wav": lambda: bytes(4096),
}


def run_denoise(capfd, source, out) -> tuple[int, str]:
    """Run the command in-process; return (exit status, stderr as the file descriptor saw it:
    C libraries writing to fd 2 count too)."""
    status = main(["denoise", str(source), str(out), "--quiet"])
    captured = capfd.readouterr()
    return status, captured.err


def assert_one_line_error(err: str, path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("audio-engine denoise: error: "), lines[0]
    assert str(path) in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_input_is_one_line_exit_2_and_old_output_kept(tmp_path, capfd, name):
    source = tmp_path / name
    source.write_bytes(REFUSED[name]())
    out = tmp_path / "clean.wav"
    out.write_bytes(OLD_OUTPUT)
    status, err = run_denoise(capfd, source, out)
    assert status == 2
    assert_one_line_error(err, source)
    assert out.read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "clean.wav"])


def test_missing_input_and_folder_input_are_named(tmp_path, capfd):
    out = tmp_path / "clean.wav"
    status, err = run_denoise(capfd, tmp_path / "nope.wav", out)
    assert status == 2
    assert_one_line_error(err, tmp_path / "nope.wav")
    assert "no such file" in err
    status, err = run_denoise(capfd, tmp_path, out)
    assert status == 2
    assert "it is a folder" in err
    assert not out.exists()


def test_unsupported_rate_is_refused_with_the_rates_allowed(tmp_path, capfd):
    source = tmp_path / "call.wav"
    sf.write(str(source), white(22050, 1), 22050)
    out = tmp_path / "clean.wav"
    out.write_bytes(OLD_OUTPUT)
    status, err = run_denoise(capfd, source, out)
    assert status == 2
    assert_one_line_error(err, source)
    assert "22050 Hz" in err and "[8000, 16000, 24000, 32000, 44100, 48000]" in err
    assert out.read_bytes() == OLD_OUTPUT


def test_unwritable_output_is_one_line_exit_2(tmp_path, capfd):
    source = tmp_path / "call.wav"
    source.write_bytes(good_wav())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    out = blocker / "clean.wav"
    status, err = run_denoise(capfd, source, out)
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write audio file" in lines[0] and str(out) in lines[0]


def test_truncated_wav_is_read_up_to_its_end(tmp_path, capfd):
    """A WAV cut mid-data (its header still says the full length) is a recording that stopped:
    the audio that is there is cleaned, the output has exactly that length and is finite."""
    whole = good_wav(3.0)
    cut = whole[: len(whole) // 2 + 3]  # mid-sample, too
    source = tmp_path / "cut.wav"
    source.write_bytes(cut)
    present = (len(cut) - (whole.index(b"data") + 8)) // 4  # float32 mono frames after "data"
    out = tmp_path / "clean.wav"
    status, err = run_denoise(capfd, source, out)
    assert status == 0, err
    y, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    assert y.shape[0] == present
    assert np.all(np.isfinite(y))


def test_nan_and_inf_samples_in_a_file_come_out_finite(tmp_path, capfd):
    x = white(SAMPLE_RATE * 2, 1, rms=0.1)
    x[100:300] = np.nan
    x[5000] = np.inf
    x[9000:9100] = -3.0e38
    source = tmp_path / "bad-samples.wav"
    sf.write(str(source), x, SAMPLE_RATE, subtype="FLOAT")
    out = tmp_path / "clean.wav"
    status, err = run_denoise(capfd, source, out)
    assert status == 0, err
    y, _ = sf.read(str(out), dtype="float32", always_2d=True)
    assert y.shape == x.shape
    assert np.all(np.isfinite(y)) and float(np.abs(y).max()) <= 1.0


@pytest.mark.parametrize("damage", ["cut", "zeroed-middle"])
def test_flac_damaged_mid_stream_is_one_line_and_old_output_kept(tmp_path, capfd, damage):
    flac = good_flac(3.0)
    half = len(flac) // 2
    source = tmp_path / "call.flac"
    source.write_bytes(
        flac[:half] if damage == "cut" else flac[:half] + bytes(2000) + flac[half + 2000 :]
    )
    out = tmp_path / "clean.wav"
    out.write_bytes(OLD_OUTPUT)
    status, err = run_denoise(capfd, source, out)
    assert status == 2
    assert_one_line_error(err, source)
    assert "damaged or cut after" in err
    assert out.read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.flac", "clean.wav"]


def test_interrupted_run_keeps_the_old_output_and_leaves_no_partial_file(tmp_path):
    """Ctrl-C (or any exception) mid-run: OUT as it was, the temporary file deleted; a run
    that completes replaces OUT and leaves nothing else."""
    from audio_engine.dsp.base import Gain
    from audio_engine.engine import run_file
    from audio_engine.pipeline import Pipeline

    source = tmp_path / "call.wav"
    source.write_bytes(good_wav(2.0))
    out = tmp_path / "clean.wav"
    out.write_bytes(OLD_OUTPUT)

    def interrupt(done, total):
        if done > total // 2:
            raise KeyboardInterrupt

    pipeline = Pipeline([Gain(SAMPLE_RATE, 160, 1)])
    with pytest.raises(KeyboardInterrupt):
        run_file(pipeline, source, out, progress=interrupt)
    assert out.read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav", "clean.wav"]
    run_file(pipeline, source, out)
    y, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE and y.shape == (2 * SAMPLE_RATE, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav", "clean.wav"]


def test_garbage_that_looks_like_mpeg_is_still_one_line(tmp_path, capfd):
    source = tmp_path / "garbage.wav"
    # These 4000 bytes (numpy's stream 1) make libmpg123 take them for an MPEG stream.
    source.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out = tmp_path / "clean.wav"
    status, err = run_denoise(capfd, source, out)
    assert status == 2
    assert_one_line_error(err, source)


@FUZZ
@given(garbage=st.binary(max_size=2048))
def test_garbage_bytes_are_refused_by_the_file_api(tmp_path, garbage):
    """Any bytes: audio_info and read_audio either read audio or raise AudioFileError naming
    the file (never another exception type)."""
    source = tmp_path / "garbage.wav"
    source.write_bytes(garbage)
    for read in (audio_info, read_audio):
        try:
            read(source)
        except AudioFileError as exc:
            assert str(source) in str(exc)


@FUZZ
@given(cut=st.integers(0, 2000), flip=st.tuples(st.integers(0, 2000), st.integers(0, 255)))
def test_damaged_wav_through_the_file_source_reads_or_is_refused(tmp_path, cut, flip):
    """A WAV truncated or with one byte changed: FileSource opens it or raises AudioFileError;
    what it streams is float32 of the stated channels, with silence after the data ends."""
    raw = bytearray(good_wav(0.1))
    raw = raw[: len(raw) - cut] if cut < len(raw) else raw[:0]
    if raw and flip[0] < len(raw):
        raw[flip[0]] = flip[1]
    source = tmp_path / "damaged.wav"
    source.write_bytes(bytes(raw))
    try:
        stream = FileSource(source, 160)
    except AudioFileError as exc:
        assert str(source) in str(exc)
        return
    try:
        block = np.empty((160, stream.channels), np.float32)
        for _ in range(stream.frames // 160 + 2):
            stream(block)
            assert block.dtype == np.float32
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--attenuation-db", "nan", r"attenuation_db=nan is not a number in 0\.\.60 dB"),
        ("--attenuation-db", "inf", r"attenuation_db=inf is not a number in 0\.\.60 dB"),
        ("--attenuation-db", "-5", r"attenuation_db=-5\.0 is not a number in 0\.\.60 dB"),
        ("--block-size", "-3", r"block_size=-3 is not an integer in 1\.\.65536"),
        ("--block-size", "100000", r"block_size=100000 is not an integer in 1\.\.65536"),
        ("--block-size", "0", r"block_size=0 is not an integer in 1\.\.65536"),
    ],
)
def test_bad_options_are_one_line_exit_2_and_old_output_kept(
    tmp_path, capfd, option, value, message
):
    source = tmp_path / "call.wav"
    source.write_bytes(good_wav())
    out = tmp_path / "clean.wav"
    out.write_bytes(OLD_OUTPUT)
    status = main(["denoise", str(source), str(out), "--quiet", option, value])
    err = capfd.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert out.read_bytes() == OLD_OUTPUT
