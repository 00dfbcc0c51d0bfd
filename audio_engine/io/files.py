"""Audio files through soundfile (libsndfile): any rate and channel count it reads.

Errors are :class:`audio_engine.errors.AudioFileError` naming the file and what went wrong;
nothing here raises a bare ``soundfile`` or ``OSError`` traceback at a user.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_engine.errors import AudioFileError


def _describe(path: Path) -> str:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "it is a folder"
    if path.stat().st_size == 0:
        return "the file is empty"
    return "not an audio file soundfile can read (WAV, FLAC, OGG, AIFF...) or truncated"


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return ``(sample_rate, channels, frames)`` of an audio file, or raise AudioFileError."""
    p = Path(path)
    try:
        info = sf.info(str(p))
    except Exception as exc:  # soundfile raises several types; all mean "cannot read"
        raise AudioFileError(f"cannot read audio file '{p}': {_describe(p)} ({exc})") from None
    if info.frames <= 0:
        raise AudioFileError(f"cannot read audio file '{p}': it holds no audio frames")
    return int(info.samplerate), int(info.channels), int(info.frames)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file as ``float32`` of shape (frames, channels) and its sample rate."""
    p = Path(path)
    audio_info(p)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(f"cannot read audio file '{p}': {_describe(p)} ({exc})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"cannot read audio file '{p}': it holds no audio frames")
    return np.ascontiguousarray(data), int(rate)


def write_audio(
    path: str | os.PathLike, data: np.ndarray, sample_rate: int, subtype: str = "FLOAT"
) -> None:
    """Write ``data`` (frames[, channels]) to ``path``; WAV float32 unless ``subtype`` says otherwise."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), np.asarray(data, dtype=np.float32), int(sample_rate), subtype=subtype)
    except Exception as exc:
        raise AudioFileError(f"cannot write audio file '{p}': {exc}") from None


class FileSource:
    """Streams blocks from an audio file into the simulated clock; silence after its end.

    The read uses a preallocated block (``SoundFile.read(out=...)``), so long files never sit in
    memory whole.
    """

    def __init__(self, path: str | os.PathLike, block_size: int):
        self.path = Path(path)
        self.sample_rate, self.channels, self.frames = audio_info(self.path)
        self._file = sf.SoundFile(str(self.path))
        self._buffer = np.zeros((block_size, self.channels), np.float32)

    def __call__(self, block: np.ndarray) -> None:
        n = block.shape[0]
        got = self._file.read(n, dtype="float32", always_2d=True, out=self._buffer[:n])
        k = got.shape[0]
        block[:k] = got
        block[k:] = 0.0

    def close(self) -> None:
        self._file.close()


class FileSink:
    """Writes output blocks to an audio file (WAV float32 by default), at most ``frames`` frames."""

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        channels: int,
        frames: int | None = None,
        subtype: str = "FLOAT",
    ):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                str(self.path), "w", int(sample_rate), int(channels), subtype=subtype
            )
        except Exception as exc:
            raise AudioFileError(f"cannot write audio file '{self.path}': {exc}") from None
        self.remaining = frames

    def __call__(self, block: np.ndarray) -> None:
        if self.remaining is None:
            self._file.write(block)
            return
        n = min(block.shape[0], self.remaining)
        if n > 0:
            self._file.write(block[:n])
            self.remaining -= n

    def close(self) -> None:
        self._file.close()
