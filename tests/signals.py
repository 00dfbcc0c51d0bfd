"""The one place tests get their signals: seeded noise and real speech.

Every test that needs a random or speech signal takes it from here, so seeds and levels are
consistent across the suite.
"""

from __future__ import annotations

import functools

import numpy as np

from audio_engine.office import noise as office_noise
from audio_engine.office.speech import demo_speech, espeak, have_espeak

SEED = 20261129


def rng(offset: int = 0) -> np.random.Generator:
    """A seeded generator; ``offset`` gives independent streams."""
    return np.random.default_rng(SEED + offset)


def white(frames: int, channels: int = 1, offset: int = 0, rms: float = 0.1) -> np.ndarray:
    """Seeded white noise, float32 (frames, channels), at the given RMS."""
    return (rms * rng(offset).standard_normal((frames, channels))).astype(np.float32)


def sine(
    frequency_hz: float, sample_rate: int, seconds: float, amplitude: float = 0.5
) -> np.ndarray:
    """A sine, float32 (frames,)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _speech(lang: str, sample_rate: int) -> np.ndarray:
    if lang == "demo" or not have_espeak():
        return demo_speech(sample_rate)
    text = {
        "en": "The council will repair the road on Tuesday. Please keep your reference number, "
        "and call us again if the problem comes back.",
        "ko": "안녕하세요. 주차 단속 관련 민원은 교통과에서 처리합니다. 잠시만 기다려 주세요.",
    }[lang]
    voice = {"en": "en-us", "ko": "ko"}[lang]
    x = espeak(text, voice=voice, sample_rate=sample_rate)
    return (0.25 * x / np.max(np.abs(x))).astype(np.float32)


def speech(lang: str = "en", sample_rate: int = 16000) -> np.ndarray:
    """Real speech (espeak-ng, English or Korean; the packaged recording if espeak-ng is missing),
    mono float32 with a peak of 0.25. A fresh copy each call."""
    return _speech(lang, sample_rate).copy()


def office_noise_signal(kind: str, frames: int, sample_rate: int, offset: int = 0) -> np.ndarray:
    """One of the simulated office's noises, RMS 1: white, pink, hvac, keyboard, babble."""
    g = rng(100 + offset)
    if kind == "white":
        return office_noise.white(frames, g)
    if kind == "pink":
        return office_noise.pink(frames, g, sample_rate)
    if kind == "hvac":
        return office_noise.hvac(frames, g, sample_rate)
    if kind == "keyboard":
        return office_noise.keyboard(frames, g, sample_rate)
    if kind == "babble":
        return office_noise.babble(frames, g, sample_rate)
    raise ValueError(f"unknown noise kind {kind!r}")


def db(x: float) -> float:
    """Power ratio in dB."""
    return float(10.0 * np.log10(max(x, 1e-30)))


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS."""
    return db(float(np.mean(np.square(x, dtype=np.float64))))


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB, of equal-length 1-D signals."""
    r = reference.astype(np.float64) - np.mean(reference)
    e = estimate.astype(np.float64) - np.mean(estimate)
    alpha = np.dot(e, r) / max(np.dot(r, r), 1e-30)
    target = alpha * r
    return db(np.dot(target, target) / max(np.dot(e - target, e - target), 1e-30))


def delay_by_xcorr(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """Lag in samples (0..max_lag) at which ``delayed`` best matches ``reference``."""
    r = reference.astype(np.float64)
    d = delayed.astype(np.float64)
    n = len(r) - max_lag
    scores = [np.dot(r[:n], d[lag : lag + n]) for lag in range(max_lag + 1)]
    return int(np.argmax(scores))
