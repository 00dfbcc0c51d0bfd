"""Audio files: round trips, streaming, and clear errors for files that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_engine.dsp.base import Gain
from audio_engine.engine import run_file
from audio_engine.errors import AudioFileError
from audio_engine.io.files import FileSource, audio_info, read_audio, write_audio
from audio_engine.pipeline import Pipeline
from tests import signals


@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [(8000, 1, "PCM_16"), (44100, 3, "FLOAT"), (48000, 2, "PCM_24")],
)
def test_round_trip_keeps_rate_and_channels(tmp_path, rate, channels, subtype):
    x = signals.white(rate // 2, channels=channels, rms=0.1)
    path = tmp_path / "x.wav"
    write_audio(path, x, rate, subtype=subtype)
    y, got_rate = read_audio(path)
    assert got_rate == rate and y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=2.0**-15)


def test_flac_is_read(tmp_path):
    x = signals.white(4000, channels=1, rms=0.1)
    sf.write(tmp_path / "x.flac", x, 16000)
    assert audio_info(tmp_path / "x.flac") == (16000, 1, 4000)


def test_file_source_streams_blocks_then_silence(tmp_path):
    x = signals.white(1000, channels=2, rms=0.1)
    write_audio(tmp_path / "x.wav", x, 16000)
    src = FileSource(tmp_path / "x.wav", block_size=300)
    blocks = []
    for _ in range(4):
        b = np.zeros((300, 2), np.float32)
        src(b)
        blocks.append(b)
    src.close()
    got = np.concatenate(blocks)
    np.testing.assert_array_equal(got[:1000], x)
    assert not got[1000:].any()


def test_run_file_is_aligned_and_same_length(tmp_path):
    x = signals.white(16000, channels=1, rms=0.1)
    write_audio(tmp_path / "in.wav", x, 16000)
    report = run_file(
        Pipeline([Gain(16000, 160, 1, gain_db=-6.0)]), tmp_path / "in.wav", tmp_path / "out.wav"
    )
    y, rate = read_audio(tmp_path / "out.wav")
    assert rate == 16000 and y.shape == x.shape
    np.testing.assert_allclose(y, x * 10 ** (-6 / 20), atol=1e-6)
    assert report.blocks == 100


def test_missing_file(tmp_path):
    with pytest.raises(
        AudioFileError, match=r"cannot read audio file '.*nothing\.wav': no such file"
    ):
        read_audio(tmp_path / "nothing.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioFileError, match="the file is empty"):
        read_audio(tmp_path / "empty.wav")


def test_folder_is_refused(tmp_path):
    with pytest.raises(AudioFileError, match="it is a folder"):
        read_audio(tmp_path)


def test_garbage_and_truncated_files(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 3)
    with pytest.raises(AudioFileError, match="not an audio file soundfile can read"):
        read_audio(tmp_path / "junk.wav")
    write_audio(tmp_path / "ok.wav", signals.white(1000), 16000, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:30])
    with pytest.raises(AudioFileError, match="cannot read audio file"):
        read_audio(tmp_path / "cut.wav")


def test_header_only_wav_has_no_frames(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioFileError, match="holds no audio frames"):
        read_audio(tmp_path / "zero.wav")
