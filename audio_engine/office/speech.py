"""Real speech for the demo, tests and evaluations.

The package ships a short espeak-ng recording (English then Korean, 16 kHz) so the demo works
on a machine without espeak-ng. :func:`espeak` speaks any text with espeak-ng when it is
installed (tests and the evaluation corpus use it for fresh sentences and voices).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from audio_engine.errors import AudioEngineError

DEMO_SPEECH = "demo_speech_en_ko_16k.flac"


def resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (offline use only: files and corpora, never the path)."""
    if from_rate == to_rate:
        return np.asarray(signal, np.float32)
    g = np.gcd(int(from_rate), int(to_rate))
    return resample_poly(signal, to_rate // g, from_rate // g, axis=0).astype(np.float32)


def demo_speech(sample_rate: int = 16000) -> np.ndarray:
    """The packaged speech (about 25 s, English then Korean) as mono float32 at ``sample_rate``."""
    import soundfile as sf

    with resources.as_file(resources.files("audio_engine") / "data" / DEMO_SPEECH) as path:
        data, rate = sf.read(str(path), dtype="float32")
    return resample(data, rate, sample_rate)


def have_espeak() -> bool:
    """True if the ``espeak-ng`` program is on PATH."""
    return shutil.which("espeak-ng") is not None


def espeak(
    text: str,
    voice: str = "en-us",
    sample_rate: int = 16000,
    words_per_minute: int = 150,
    pitch: int = 50,
) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return mono float32 at ``sample_rate``.

    Raises
    ------
    AudioEngineError
        If espeak-ng is not installed (``apt-get install espeak-ng``) or fails.
    """
    import soundfile as sf

    if not have_espeak():
        raise AudioEngineError(
            "espeak-ng is not installed; install it with: apt-get install espeak-ng"
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(words_per_minute),
            "-p",
            str(pitch),
            "-w",
            str(wav),
            text,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or not wav.exists():
            raise AudioEngineError(f"espeak-ng failed for voice {voice!r}: {result.stderr.strip()}")
        data, rate = sf.read(str(wav), dtype="float32")
    return resample(data, rate, sample_rate)


def loop_with_pauses(signal: np.ndarray, frames: int, pause_frames: int) -> np.ndarray:
    """Repeat ``signal`` with ``pause_frames`` of silence between repeats, cut to ``frames``.

    The pauses give suppressors and meters noise-only stretches, as a real call has.
    """
    unit = np.concatenate([np.asarray(signal, np.float32), np.zeros(pause_frames, np.float32)])
    return np.tile(unit, frames // len(unit) + 1)[:frames]
