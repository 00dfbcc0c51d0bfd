"""Office noises for the simulated office: white, pink, HVAC, keyboard clicks and babble.

All generators take a ``numpy.random.Generator`` so every signal is reproducible from a seed,
and return mono ``float32`` with RMS 1 unless stated otherwise (callers set levels).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from audio_engine.office.speech import demo_speech, espeak, have_espeak


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def white(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, RMS 1."""
    return rng.standard_normal(frames).astype(np.float32)


def shaped(
    frames: int, rng: np.random.Generator, sample_rate: int, slope_db_per_octave: float
) -> np.ndarray:
    """Gaussian noise with a power slope in dB/octave (−3 is pink, −6 brown), RMS 1.

    Shaped in the frequency domain over the whole length, so the slope is exact and the noise
    has no period shorter than ``frames``.
    """
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    f = np.fft.rfftfreq(frames, 1.0 / sample_rate)
    f[0] = f[1]
    spectrum *= (f / 1000.0) ** (slope_db_per_octave / (20.0 * np.log10(2.0)))
    spectrum[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, frames))


def pink(frames: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Pink noise (−3 dB/octave), RMS 1."""
    return shaped(frames, rng, sample_rate, -3.0)


def hvac(
    frames: int, rng: np.random.Generator, sample_rate: int, mains_hz: float = 50.0
) -> np.ndarray:
    """Air-handling noise: brown-ish rumble, a slowly wavering fan band and mains hum, RMS 1."""
    t = np.arange(frames) / sample_rate
    rumble = shaped(frames, rng, sample_rate, -6.0)
    fan = sosfilt(
        butter(2, [150.0, 600.0], "bandpass", fs=sample_rate, output="sos"), white(frames, rng)
    )
    fan *= 1.0 + 0.2 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    hum = sum(
        np.sin(2 * np.pi * mains_hz * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3)
    )
    return _unit_rms(rumble + 0.5 * _unit_rms(fan) + 0.3 * hum)


def keyboard(
    frames: int, rng: np.random.Generator, sample_rate: int, keys_per_second: float = 6.0
) -> np.ndarray:
    """Keyboard typing: short broadband clicks (key down and up) at random times, RMS 1.

    Each keystroke is a 3–8 ms burst of high-passed noise with a fast exponential decay,
    followed 40–90 ms later by a weaker release click; bursts of typing alternate with pauses.
    """
    out = np.zeros(frames, np.float64)
    hp = butter(2, 1000.0, "highpass", fs=sample_rate, output="sos")
    t = rng.exponential(1.0 / keys_per_second) * sample_rate
    while t < frames:
        for delay_s, gain in ((0.0, 1.0), (rng.uniform(0.04, 0.09), 0.4)):
            start = int(t + delay_s * sample_rate)
            length = int(rng.uniform(0.003, 0.008) * sample_rate)
            if start + length >= frames:
                break
            burst = sosfilt(hp, rng.standard_normal(length)) * np.exp(
                -np.arange(length) / (0.0015 * sample_rate)
            )
            out[start : start + length] += gain * rng.uniform(0.5, 1.0) * burst
        gap = rng.exponential(1.0 / keys_per_second)
        if rng.uniform() < 0.05:  # a pause to think
            gap += rng.uniform(0.5, 2.0)
        t += gap * sample_rate
    return _unit_rms(out)


#: Sentences for babble talkers (neutral call-centre phrases; English and Korean).
BABBLE_LINES = (
    (
        "en-us",
        "Thank you for calling, can I have your reference number please. I will check that for you now.",
    ),
    (
        "en-gb",
        "The bin collection on your street has moved to Thursday, and the new schedule starts next week.",
    ),
    ("ko", "네, 고객님 성함과 주소를 말씀해 주시겠어요? 확인 후 바로 처리해 드리겠습니다."),
    (
        "en-us+f3",
        "I understand this is frustrating. Let me transfer you to the parking enforcement team.",
    ),
    ("ko", "불편을 드려 죄송합니다. 담당 부서에 전달해서 삼 일 안에 연락드리겠습니다."),
    (
        "en-gb+m3",
        "Your permit application was received on Monday and it is being processed at the moment.",
    ),
)


def reverberate(
    x: np.ndarray, rng: np.random.Generator, sample_rate: int, rt60_s: float = 0.5
) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail: a distant talker in an office."""
    n = int(rt60_s * sample_rate)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0
    from scipy.signal import fftconvolve

    return fftconvolve(x, ir)[: len(x)].astype(np.float32)


def babble(frames: int, rng: np.random.Generator, sample_rate: int, talkers: int = 4) -> np.ndarray:
    """Neighbours' voices: ``talkers`` reverberant talkers summed, RMS 1.

    Uses espeak-ng voices when installed, otherwise time-shifted copies of the packaged speech.
    """
    mix = np.zeros(frames, np.float64)
    for k in range(talkers):
        if have_espeak():
            voice, text = BABBLE_LINES[
                (k + int(rng.integers(len(BABBLE_LINES)))) % len(BABBLE_LINES)
            ]
            talk = espeak(
                text, voice=voice, sample_rate=sample_rate, pitch=int(rng.integers(30, 70))
            )
        else:
            talk = demo_speech(sample_rate)
        talk = np.roll(
            np.tile(talk, frames // len(talk) + 1)[:frames], int(rng.integers(len(talk)))
        )
        mix += _unit_rms(reverberate(talk, rng, sample_rate))
    return _unit_rms(mix)


def db_to_gain(gain_db: float) -> float:
    """Amplitude ratio of a level difference in dB."""
    return float(10.0 ** (gain_db / 20.0))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that speech power / noise power over the whole signal is ``snr_db``.

    Speech power is taken over active frames only (above −40 dB of the peak frame energy), the
    usual convention for mixing speech corpora, so pauses do not lower the speech level.
    """
    n = min(len(speech), len(noise))
    s, v = speech[:n].astype(np.float64), noise[:n].astype(np.float64)
    frame = 256
    e = np.array([np.mean(s[i : i + frame] ** 2) for i in range(0, n - frame, frame)])
    active = e[e > e.max() * 1e-4]
    p_speech = float(active.mean()) if active.size else float(np.mean(s**2))
    p_noise = float(np.mean(v**2))
    return (v * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10.0)))).astype(np.float32)


def headset_room_noise(
    speech: np.ndarray, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """What a headset boom microphone hears of the open office besides the agent's own voice.

    Neighbours' babble 8 dB below the agent, HVAC 18 dB below, keyboard clicks 15 dB below and
    the masking noise (−5 dB/octave) 20 dB below: the boom sits a few centimetres from the
    agent's mouth and a metre or more from everything else. Levels are relative to ``speech``
    (:func:`mix_at_snr`), so the mix keeps its balance at any speech level.

    Returns
    -------
    ndarray, shape like ``speech``, float32
    """
    frames = len(speech)
    return (
        mix_at_snr(speech, babble(frames, rng, sample_rate), 8.0)
        + mix_at_snr(speech, hvac(frames, rng, sample_rate), 18.0)
        + mix_at_snr(speech, keyboard(frames, rng, sample_rate), 15.0)
        + mix_at_snr(speech, shaped(frames, rng, sample_rate, -5.0), 20.0)
    ).astype(np.float32)
