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


# -- microphone-array scenes (beamformer tests and benchmarks/eval_array.py) ----------------------
#: Interfering talkers of the array scenes: (voice, text), espeak-ng.
ARRAY_INTERFERER_LINES = (
    ("en-gb+m3", "Your permit application was received on Monday and is being processed now."),
    ("en-us+f3", "I understand this is frustrating, let me transfer you to the parking team."),
    ("en-gb", "The bin collection on your street has moved to Thursday from next week."),
)


@functools.lru_cache(maxsize=8)
def _array_scene(
    config_path: str,
    sample_rate: int,
    seconds: float,
    interferer_azimuths_deg: tuple[float, ...],
    interferer_distance_m: float,
    rt60_s: float,
    sir_db: float,
    snr_db: float,
    sensor_snr_db: float,
) -> dict:
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    from audio_engine.array_config import load_array

    config = load_array(config_path)
    frames = int(round(seconds * sample_rate))
    room_m = np.array([6.0, 5.0, 2.7])
    centre_m = np.array([3.0, 2.0, 0.75])  # a desk in the middle of an open-plan bay
    mics_m = centre_m + config.positions_m
    mouth_m = centre_m + config.mouth_m
    # The agent: a pause (the beamformer's noise start-up), a sentence, a pause, a sentence.
    talk = _speech("en", sample_rate)
    pause = np.zeros(int(0.6 * sample_rate), np.float32)
    target = np.concatenate([pause, talk[: int(0.45 * len(talk))], pause[:-1], talk])[:frames]
    target = np.pad(target, (0, frames - len(target)))
    sources = [(mouth_m, target)]
    for k, azimuth in enumerate(interferer_azimuths_deg):
        voice, text = ARRAY_INTERFERER_LINES[k % len(ARRAY_INTERFERER_LINES)]
        if have_espeak():
            line = espeak(text, voice=voice, sample_rate=sample_rate, pitch=40 + 10 * k)
        else:
            line = demo_speech(sample_rate)
        line = np.tile(line, frames // len(line) + 1)
        start = int(rng(200 + k).integers(len(line) - frames))
        a = np.radians(azimuth)
        where = centre_m + interferer_distance_m * np.array([np.cos(a), np.sin(a), 0.0])
        where[2] = 1.2  # a seated neighbour's mouth
        sources.append((where, line[start : start + frames]))
    # Diffuse office noise: eight uncorrelated pink/HVAC sources in the room's corners, reverberant.
    noise_sources = []
    for k in range(8):
        corner = np.array([0.4 if k & 1 else 5.6, 0.4 if k & 2 else 4.6, 0.3 if k & 4 else 2.4])
        kind = "hvac" if k in (5, 7) else "pink"
        noise_sources.append((corner, office_noise_signal(kind, frames, sample_rate, 300 + k)))
    absorption, max_order = pra.inverse_sabine(rt60_s, room_m)
    room = pra.ShoeBox(
        room_m, fs=sample_rate, materials=pra.Material(absorption), max_order=max_order
    )
    for where, _ in sources + noise_sources:
        room.add_source(where)
    room.add_microphone_array(mics_m.T)
    room.compute_rir()

    def image(index: int, signal: np.ndarray) -> np.ndarray:
        return np.stack(
            [fftconvolve(signal, room.rir[m][index])[:frames] for m in range(config.mics)], 1
        )

    target_img = image(0, sources[0][1])
    talkers = sum(image(i, s) for i, (_, s) in enumerate(sources) if i > 0)
    noise = sum(image(len(sources) + i, s) for i, (_, s) in enumerate(noise_sources))
    _, _, reference = config.target_arrivals()
    power = float(np.mean(target_img[:, reference] ** 2))
    if len(sources) > 1:
        talkers *= np.sqrt(power / np.mean(talkers[:, reference] ** 2) / 10 ** (sir_db / 10))
    noise *= np.sqrt(power / np.mean(noise[:, reference] ** 2) / 10 ** (snr_db / 10))
    # Capsule self-noise, independent per microphone: what limits superdirective gain in practice.
    noise += np.sqrt(power / 10 ** (sensor_snr_db / 10)) * rng(400).standard_normal(noise.shape)
    return {
        "config": config,
        "target": target_img.astype(np.float32),
        "interference": (talkers + noise).astype(np.float32),
        "mixture": (target_img + talkers + noise).astype(np.float32),
        "reference_mic": reference,
    }


def array_scene(
    config_path: str,
    sample_rate: int = 16000,
    seconds: float = 6.0,
    interferer_azimuths_deg: tuple[float, ...] = (20.0, 150.0, 230.0),
    interferer_distance_m: float = 1.5,
    rt60_s: float = 0.3,
    sir_db: float = 0.0,
    snr_db: float = 15.0,
    sensor_snr_db: float = 30.0,
) -> dict:
    """A desk array in a simulated office (pyroomacoustics image sources), seeded.

    The agent talks from the config's ``mouth_m``; ``interferer_azimuths_deg`` neighbours
    (espeak-ng voices) talk continuously ``interferer_distance_m`` from the array, mouths 1.2 m
    high; eight pink/HVAC sources in the corners make a diffuse-ish noise floor. ``sir_db`` is
    target to all talkers and ``snr_db`` target to noise, both by power at the reference
    microphone (the one closest to the mouth) over the whole signal. Each capsule adds its own
    white self-noise ``sensor_snr_db`` below the target (30 dB: a 64 dB-SNR MEMS capsule, 30 dBA
    self-noise, hearing speech at about 60 dB SPL).

    Returns a dict: ``target``, ``interference`` and ``mixture`` (frames, mics) float32 images at
    the microphones (``mixture = target + interference``), ``config``, ``reference_mic``.
    Arrays are shared between calls with the same arguments: copy before modifying.
    """
    return _array_scene(
        str(config_path),
        int(sample_rate),
        float(seconds),
        tuple(float(a) for a in interferer_azimuths_deg),
        float(interferer_distance_m),
        float(rt60_s),
        float(sir_db),
        float(snr_db),
        float(sensor_snr_db),
    )


def free_field_array(
    signal: np.ndarray,
    positions_m: np.ndarray,
    source_m: np.ndarray,
    sample_rate: int,
    speed_of_sound_m_s: float = 343.0,
) -> np.ndarray:
    """A point source in free field at an array: exact fractional delays and 1/r spreading.

    Delays are applied in the frequency domain over a zero-padded copy, relative to the capsule
    closest to the source (which receives ``signal`` unchanged). Returns float32 (frames, mics).
    """
    x = np.asarray(signal, np.float64)
    distances = np.linalg.norm(np.asarray(positions_m) - np.asarray(source_m), axis=1)
    delays_s = (distances - distances.min()) / speed_of_sound_m_s
    n = len(x) + int(np.ceil(delays_s.max() * sample_rate)) + 64
    spectrum = np.fft.rfft(x, n)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    out = np.stack(
        [
            np.fft.irfft(spectrum * np.exp(-2j * np.pi * f * d), n)[: len(x)] * distances.min() / r
            for d, r in zip(delays_s, distances, strict=True)
        ],
        1,
    )
    return out.astype(np.float32)


def fast_mean_square(x: np.ndarray, sample_rate: int, time_constant_s: float = 0.125) -> np.ndarray:
    """Exponentially averaged mean square per channel, as a sound level meter's *Fast* weighting
    (125 ms, IEC 61672-1:2013, 5.8) reads it: ``ms[n] = a ms[n-1] + (1 - a) x[n]**2`` from 0.

    ``x`` is (frames[, channels]); returns float64 of the same shape.
    """
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (time_constant_s * sample_rate)))
    squared = np.square(np.asarray(x, dtype=np.float64))
    return lfilter([1.0 - a], [1.0, -a], squared, axis=0)
