"""Audio files through soundfile (libsndfile): any rate and channel count it reads.

Errors are :class:`audio_engine.errors.AudioFileError` naming the file and what went wrong;
nothing here raises a bare ``soundfile`` or ``OSError`` traceback at a user.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Send file descriptor 2 to the null device while libsndfile opens or probes a file.

    Why: libsndfile's MPEG decoder (libmpg123) writes its own warnings straight to fd 2 when
    garbage looks like an MPEG stream ("a one-frame stream? Duh..."), ahead of the engine's
    one-line error. Python's ``sys.stderr`` is flushed first and fd 2 is restored in any case.
    Only for opening files at the edges (never while audio runs): for that instant, other
    threads' writes to fd 2 are lost too.
    """
    saved = None
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:  # no fd 2 (a service without stderr): nothing to silence
        pass
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return ``(sample_rate, channels, frames)`` of an audio file, or raise AudioFileError."""
    p = Path(path)
    try:
        with _quiet_c_stderr():
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
        with _quiet_c_stderr():
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
        try:
            with _quiet_c_stderr():
                self._file = sf.SoundFile(str(self.path))
        except Exception as exc:
            raise AudioFileError(
                f"cannot read audio file '{self.path}': {_describe(self.path)} ({exc})"
            ) from None
        self._buffer = np.zeros((block_size, self.channels), np.float32)

        self.position = 0  # frames read so far

    def __call__(self, block: np.ndarray) -> None:
        """Fill ``block`` (frames, channels) with the next frames, silence after the end.

        Raises
        ------
        AudioFileError
            If the file cannot be read on (a FLAC or OGG damaged or cut mid-stream opens fine
            and fails only here), naming the file and where its audio stopped.
        """
        n = block.shape[0]
        try:
            got = self._file.read(n, dtype="float32", always_2d=True, out=self._buffer[:n])
        except Exception as exc:  # soundfile raises several types; all mean "cannot read on"
            seconds = self.position / self.sample_rate
            raise AudioFileError(
                f"cannot read audio file '{self.path}': damaged or cut after "
                f"{self.position} of {self.frames} frames ({seconds:.2f} s) ({exc})"
            ) from None
        k = got.shape[0]
        block[:k] = got
        block[k:] = 0.0
        self.position += k

    def close(self) -> None:
        self._file.close()


class FileSink:
    """Writes output blocks to an audio file (WAV float32 by default), at most ``frames`` frames.

    Parameters
    ----------
    path : path-like
        The file to write; its extension picks the format.
    sample_rate, channels : int
        Of the audio written.
    frames : int, optional
        Frames to keep at most (later blocks are cut); ``None`` keeps everything.
    subtype : str
        libsndfile subtype, ``"FLOAT"`` (32-bit float) by default.
    atomic : bool
        Write to a temporary file in ``path``'s folder and move it onto ``path`` only in
        :meth:`close`; :meth:`discard` deletes it. A failed run then leaves an existing
        ``path`` as it was, never half-written.

    Raises
    ------
    AudioFileError
        If the file cannot be created or written, naming ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        channels: int,
        frames: int | None = None,
        subtype: str = "FLOAT",
        atomic: bool = False,
    ):
        self.path = Path(path)
        # The temporary name keeps the extension, which tells libsndfile the format; the leading
        # dot hides it, the random part keeps two runs writing the same OUT apart.
        self._target = (
            self.path.with_name(
                f".{self.path.stem}.{uuid.uuid4().hex[:8]}.partial{self.path.suffix}"
            )
            if atomic
            else self.path
        )
        self._file = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                str(self._target), "w", int(sample_rate), int(channels), subtype=subtype
            )
        except Exception as exc:
            self._remove_partial()
            raise AudioFileError(f"cannot write audio file '{self.path}': {exc}") from None
        self.remaining = frames

    def __call__(self, block: np.ndarray) -> None:
        n = block.shape[0] if self.remaining is None else min(block.shape[0], self.remaining)
        if n <= 0:
            return
        try:
            self._file.write(block[:n])
        except Exception as exc:  # a full disk, a vanished folder
            raise AudioFileError(f"cannot write audio file '{self.path}': {exc}") from None
        if self.remaining is not None:
            self.remaining -= n

    def close(self) -> None:
        """Finish the file; with ``atomic``, move it onto ``path`` (replacing what was there)."""
        try:
            self._file.close()
            if self._target != self.path:
                os.replace(self._target, self.path)
        except Exception as exc:
            self._remove_partial()
            raise AudioFileError(f"cannot write audio file '{self.path}': {exc}") from None

    def discard(self) -> None:
        """Close and, with ``atomic``, delete the partial file: ``path`` stays as it was."""
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # noqa: S110 - the partial file is deleted whatever its state
            pass
        self._remove_partial()

    def _remove_partial(self) -> None:
        if self._target != self.path:
            try:
                os.unlink(self._target)
            except OSError:  # never created (no such file, OUT's folder is not a folder)
                pass
