"""The headset noise suppressor on real speech: attenuation, speech kept, latency, bad samples,
block-size invariance, controls, telemetry and the no-allocation contract."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from audio_engine.dsp.base import SUPPORTED_SAMPLE_RATES
from audio_engine.dsp.suppressor import NoiseSuppressor, asymmetric_windows
from audio_engine.engine import run_array
from audio_engine.errors import ConfigError
from audio_engine.office.noise import mix_at_snr
from audio_engine.pipeline import Pipeline
from tests import signals


def run(ns: NoiseSuppressor, x: np.ndarray, block: int | None = None) -> np.ndarray:
    """Stream ``x`` (frames,) or (frames, channels) through ``ns`` in blocks; return the output."""
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    block = block or ns.block_size
    y = np.zeros_like(x)
    for i in range(0, len(x), block):
        ns.process(x[i : i + block], y[i : i + block])
    return y


def highpassed(x: np.ndarray, sample_rate: int, cutoff_hz: float = 50.0) -> np.ndarray:
    b, a = butter(2, cutoff_hz, "highpass", fs=sample_rate)
    return lfilter(b, a, x.astype(np.float64))


def speech_in_noise(kind: str, snr_db: float, sample_rate: int = 16000, lead_s: float = 1.5):
    """(clean, noise, mix): speech with ``lead_s`` of noise before and after it."""
    s = signals.speech("en", sample_rate)
    pad = np.zeros(int(lead_s * sample_rate), np.float32)
    clean = np.concatenate([pad, s, pad])
    noise = mix_at_snr(clean, signals.office_noise_signal(kind, len(clean), sample_rate), snr_db)
    return clean, noise, (clean + noise).astype(np.float32)


# -- STFT and latency -------------------------------------------------------------------------
@pytest.mark.parametrize(("frame_length", "hop"), [(256, 40), (768, 120), (706, 110), (80, 40)])
def test_windows_reconstruct_perfectly(frame_length, hop):
    analysis, synthesis = asymmetric_windows(frame_length, hop)
    product = analysis[-2 * hop :] * synthesis
    # Overlap-add of the product at hop R must be exactly 1 (periodic Hann of 2R).
    np.testing.assert_allclose(product[:hop] + product[hop:], 1.0, atol=1e-12)


@pytest.mark.parametrize("sample_rate", SUPPORTED_SAMPLE_RATES)
def test_unity_gain_is_the_highpassed_input_delayed_by_latency(sample_rate):
    ns = NoiseSuppressor(sample_rate, 256, attenuation_db=0.0)
    x = signals.white(sample_rate // 2, rms=0.1)[:, 0]
    y = run(ns, x)[:, 0]
    d = ns.latency_samples
    assert d == 2 * ns.hop - 1
    # Total latency (delay + one 5 ms block) within the 10 ms budget at every rate.
    assert 1e3 * (d + ns.hop) / sample_rate <= 10.0
    ref = highpassed(x, sample_rate)
    # float32 output: 1e-6 of a 0.1-RMS signal is ~-140 dB, far below any audible error.
    np.testing.assert_allclose(y[d:], ref[: len(ref) - d], atol=2e-6)


@pytest.mark.parametrize("sample_rate", (8000, 16000, 44100, 48000))
def test_latency_measured_by_cross_correlation_on_noisy_speech(sample_rate):
    clean, _, mix = speech_in_noise("pink", 10.0, sample_rate, lead_s=0.3)
    ns = NoiseSuppressor(sample_rate, 480)
    y = run(ns, mix)[:, 0]
    assert signals.delay_by_xcorr(clean, y, 4 * ns.hop) == ns.latency_samples


def test_disabled_is_an_exact_delayed_bypass():
    x = signals.white(8000, rms=0.2)[:, 0]
    ns = NoiseSuppressor(16000, 160, enabled=False)
    y = run(ns, x)[:, 0]
    d = ns.latency_samples
    np.testing.assert_array_equal(y[d:], x[:-d])


# -- physics on real speech -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["white", "pink", "hvac"])
@pytest.mark.parametrize("attenuation_db", [12.0, 25.0])
def test_stationary_noise_in_pauses_is_attenuated_to_the_limit(kind, attenuation_db):
    clean, noise, mix = speech_in_noise(kind, 5.0)
    ns = NoiseSuppressor(16000, 160, attenuation_db=attenuation_db)
    y = run(ns, mix)[:, 0]
    d = ns.latency_samples
    fs = 16000
    # Pauses: the trailing noise from 0.5 s after the speech to the end (tracker settled), and
    # the leading noise after 0.5 s of start-up. Compare with the high-passed noise, so the
    # figure is the suppressor's attenuation, not the high-pass's removal of rumble.
    ref = highpassed(noise, fs)
    segments = [(int(0.5 * fs), int(1.4 * fs)), (len(mix) - int(1.0 * fs), len(mix) - d)]
    out_power = sum(np.sum(y[a + d : b + d].astype(np.float64) ** 2) for a, b in segments)
    in_power = sum(np.sum(ref[a:b] ** 2) for a, b in segments)
    measured_db = 10 * np.log10(in_power / out_power)
    assert measured_db >= attenuation_db - 1.0, f"{kind}: {measured_db:.1f} dB"
    # And the floor is a floor: no more than the limit plus 1 dB.
    assert measured_db <= attenuation_db + 1.0, f"{kind}: {measured_db:.1f} dB"


@pytest.mark.parametrize(("kind", "lang"), [("pink", "en"), ("white", "ko"), ("hvac", "en")])
def test_speech_is_kept_and_improved(kind, lang):
    fs = 16000
    s = signals.speech(lang, fs)
    noise = mix_at_snr(s, signals.office_noise_signal(kind, len(s), fs), 5.0)
    mix = (s + noise).astype(np.float32)
    ns = NoiseSuppressor(fs, 160)
    y = run(ns, mix)[:, 0]
    d = ns.latency_samples
    before = signals.si_sdr_db(s, mix)
    after = signals.si_sdr_db(s[:-d], y[d:])
    # Measured 2026-11-29: +4..+9 dB; the bound leaves margin for other espeak-ng builds.
    assert after >= before + 2.0, f"SI-SDR {before:.1f} -> {after:.1f} dB"
    # The speech itself survives: output correlates with the clean speech at least as well as
    # the noisy input did.
    r_in = np.corrcoef(s, mix)[0, 1]
    r_out = np.corrcoef(s[:-d], y[d:])[0, 1]
    assert r_out >= r_in


def test_clean_speech_passes_nearly_unchanged():
    fs = 16000
    s = signals.speech("en", fs)
    # A headset microphone's own noise, 60 dB below the speech peak.
    x = s + signals.white(len(s), rms=2.5e-4)[:, 0]
    ns = NoiseSuppressor(fs, 160)
    y = run(ns, x)[:, 0]
    d = ns.latency_samples
    ref = highpassed(s, fs)
    assert signals.si_sdr_db(ref[:-d], y[d:]) >= 15.0


def test_keyboard_clicks_are_suppressed_by_the_transient_detector():
    fs = 16000
    clicks = 0.05 * signals.office_noise_signal("keyboard", 3 * fs, fs)
    floor = signals.white(len(clicks), rms=3e-4)[:, 0]
    x = clicks + floor
    outs = {}
    for on in (True, False):
        ns = NoiseSuppressor(fs, 160, transient_detector=on)
        outs[on] = run(ns, x)[:, 0]
    d = NoiseSuppressor(fs, 160).latency_samples
    with_db = signals.rms_db(outs[True][d + fs :]) - signals.rms_db(x[fs:-d])
    without_db = signals.rms_db(outs[False][d + fs :]) - signals.rms_db(x[fs:-d])
    # Without the detector the stationary tracker lets clicks through almost untouched
    # (measured -1.2 dB); with it they fall by 8.6 dB (measured 2026-11-29).
    assert with_db <= without_db - 5.0, f"with {with_db:.1f} dB, without {without_db:.1f} dB"


def test_multichannel_channels_are_independent():
    fs = 16000
    _, _, mix = speech_in_noise("pink", 5.0, fs, lead_s=0.3)
    stereo = np.stack([mix, np.zeros_like(mix)], axis=1)
    ns2 = NoiseSuppressor(fs, 160, channels=2)
    y2 = run(ns2, stereo)
    y1 = run(NoiseSuppressor(fs, 160), mix)
    np.testing.assert_array_equal(y2[:, 0], y1[:, 0])
    assert np.all(y2[:, 1] == 0.0)


# -- streaming contracts ------------------------------------------------------------------------
def test_block_size_invariance():
    _, _, mix = speech_in_noise("babble", 5.0, 16000, lead_s=0.2)
    mix = mix[: 16000 * 2]
    reference = run(NoiseSuppressor(16000, 8192), mix)
    for block in (1, 64, 65, 160, 479, 8193):
        ns = NoiseSuppressor(16000, max(block, 1))
        np.testing.assert_array_equal(run(ns, mix, block), reference, err_msg=f"block {block}")
    # Ragged blocks: sizes varying call to call.
    ns = NoiseSuppressor(16000, 300)
    y = np.zeros((len(mix), 1), np.float32)
    x = mix[:, None]
    i, k = 0, 0
    sizes = (1, 300, 17, 160, 299, 2)
    while i < len(mix):
        n = min(sizes[k % len(sizes)], len(mix) - i)
        ns.process(x[i : i + n], y[i : i + n])
        i, k = i + n, k + 1
    np.testing.assert_array_equal(y, reference)


def test_in_place_processing():
    _, _, mix = speech_in_noise("white", 5.0, 16000, lead_s=0.2)
    reference = run(NoiseSuppressor(16000, 160), mix)
    ns = NoiseSuppressor(16000, 160)
    x = mix[:, None].copy()
    for i in range(0, len(x), 160):
        ns.process(x[i : i + 160], x[i : i + 160])
    np.testing.assert_array_equal(x, reference)


def test_process_allocates_nothing_after_warm_up():
    ns = NoiseSuppressor(48000, 480, channels=2)
    x = signals.white(480, channels=2)
    out = np.zeros_like(x)
    ns.process(x, out)
    _ = (ns.speech_probability, ns.snr_db, ns.applied_attenuation_db)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(50):
        ns.process(x, out)
        ns.attenuation_db = 20.0
        _ = (ns.speech_probability[0], ns.snr_db[0], ns.applied_attenuation_db[0])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    # A 480 x 2 float32 block is 3.8 KiB; a per-call buffer would show as tens of KiB.
    assert grown < 1024, f"process() left {grown} bytes allocated"


def test_reset_restores_the_fresh_state():
    _, _, mix = speech_in_noise("pink", 5.0, 16000, lead_s=0.2)
    ns = NoiseSuppressor(16000, 160)
    first = run(ns, mix)
    ns.reset()
    np.testing.assert_array_equal(run(ns, mix), first)


# -- bad samples ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["nan", "inf", "huge", "clipped", "dc", "silence"], ids=lambda b: f"bad={b}"
)
def test_bad_samples_never_give_bad_output_and_it_recovers(bad):
    fs = 16000
    clean, noise, mix = speech_in_noise("pink", 5.0, fs, lead_s=1.0)
    x = mix.copy()
    a, b = int(1.0 * fs), int(1.2 * fs)  # 200 ms of bad input
    if bad == "nan":
        x[a:b] = np.nan
    elif bad == "inf":
        x[a:b:2] = np.inf
        x[a + 1 : b : 2] = -np.inf
    elif bad == "huge":
        x[a:b] = 1e30
    elif bad == "clipped":
        x[a:b] = np.clip(50.0 * x[a:b], -1.0, 1.0)
    elif bad == "dc":
        x[a:] += 0.5
    elif bad == "silence":
        x[a:b] = 0.0
    ns = NoiseSuppressor(fs, 160)
    y = run(ns, x)[:, 0]
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0
    reference = run(NoiseSuppressor(fs, 160), mix)[:, 0]
    # Within one second after the bad stretch, the output is as good as without it.
    d = ns.latency_samples
    later = slice(b + fs + d, len(x))
    s = clean[b + fs : len(x) - d]
    got, want = signals.si_sdr_db(s, y[later]), signals.si_sdr_db(s, reference[later])
    assert got >= want - 1.0, f"after {bad}: {got:.1f} dB vs {want:.1f} dB"


# -- controls and telemetry ------------------------------------------------------------------------
def test_attenuation_change_takes_effect_without_a_click():
    fs = 16000
    noise = signals.office_noise_signal("white", 3 * fs, fs) * 0.05
    ns = NoiseSuppressor(fs, 80, attenuation_db=0.0)
    x = noise[:, None].astype(np.float32)
    y = np.zeros_like(x)
    for i in range(0, len(x), 80):
        if i == 2 * fs:
            ns.attenuation_db = 30.0
        ns.process(x[i : i + 80], y[i : i + 80])
    d = ns.latency_samples
    before = signals.rms_db(y[fs : 2 * fs])
    after = signals.rms_db(y[2 * fs + d + int(0.1 * fs) :])
    assert after <= before - 29.0
    # No click: the 2.5 ms RMS never jumps by more than the floor's glide per hop allows
    # (30 dB over a 10 ms time constant: < 8 dB per hop) and never rises.
    env = [signals.rms_db(y[i : i + 40]) for i in range(2 * fs - 400, 2 * fs + 2400, 40)]
    steps = np.diff(env)
    assert np.max(steps) < 3.0 and np.min(steps) > -8.0


def test_enable_crossfades():
    fs = 16000
    noise = (signals.office_noise_signal("pink", 2 * fs, fs) * 0.05).astype(np.float32)
    ns = NoiseSuppressor(fs, 160)
    x = noise[:, None]
    y = np.zeros_like(x)
    for i in range(0, len(x), 160):
        if i == fs:
            ns.enabled = False
        ns.process(x[i : i + 160], y[i : i + 160])
    assert ns.enabled is False
    d = ns.latency_samples
    # After the 10 ms crossfade the output is the delayed input exactly.
    start = fs + int(0.011 * fs)
    np.testing.assert_array_equal(y[start:, 0], x[start - d : len(x) - d, 0])
    # During it, the sample-to-sample change stays within the signal's own.
    jump = np.max(np.abs(np.diff(y[fs - 80 : fs + 400, 0])))
    assert jump <= 2.0 * np.max(np.abs(np.diff(x[:, 0])))


def test_telemetry_tracks_speech_and_noise():
    fs = 16000
    clean, _, mix = speech_in_noise("pink", 10.0, fs)
    ns = NoiseSuppressor(fs, 160)
    vad, snr, att = [], [], []
    x = mix[:, None]
    out = np.zeros((160, 1), np.float32)
    for i in range(0, len(x) - 160, 160):
        ns.process(x[i : i + 160], out)
        vad.append(ns.speech_probability[0])
        snr.append(ns.snr_db[0])
        att.append(ns.applied_attenuation_db[0])
    vad, snr, att = map(np.array, (vad, snr, att))
    level = np.array(
        [np.mean(clean[i : i + 160] ** 2) for i in range(0, len(x) - 160, 160)], np.float64
    )
    speaking = level > level.max() * 1e-2
    quiet = level == 0.0
    quiet[:50] = False  # start-up
    assert vad[speaking].mean() > 0.6 and vad[quiet].mean() < 0.1
    assert snr[speaking].mean() > snr[quiet].mean() + 10.0
    assert att[quiet].mean() > 20.0 and att[speaking].mean() < att[quiet].mean() - 10.0
    summary = ns.telemetry_summary()
    assert summary["suppressor_attenuation_limit_db"] == 25.0
    assert 0.0 < summary["suppressor_mean_speech_probability"][0] < 1.0
    # Shown in the pipeline's latency report.
    pipe = Pipeline([NoiseSuppressor(fs, 160)])
    pipe.process(x[:160], out)
    assert "suppressor_mean_snr_db" in pipe.report().telemetry


def test_external_noise_reference_raises_the_suppression():
    fs = 16000
    noise = (signals.office_noise_signal("white", fs, fs) * 0.01).astype(np.float32)
    ns = NoiseSuppressor(fs, 160, attenuation_db=40.0)
    base = run(ns, noise)
    ns.reset()
    # Tell it the noise is 20 dB louder than it is: more of the signal is taken for noise.
    ns.set_noise_reference(np.full(ns.n_bins, 1e4 * 1e-4 * ns.analysis_window_energy))
    louder = run(ns, noise)
    assert signals.rms_db(louder[fs // 2 :]) <= signals.rms_db(base[fs // 2 :])
    ns.set_noise_reference(None)
    with pytest.raises(ConfigError, match=r"noise_power\.shape=\(3,\) is not \(129,\)"):
        ns.set_noise_reference(np.ones(3))


# -- configuration errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attenuation_db": -1.0}, r"attenuation_db=-1\.0 is not a number in 0\.\.60 dB"),
        ({"attenuation_db": float("nan")}, r"attenuation_db=nan is not a number in 0\.\.60 dB"),
        ({"hop_ms": 4.0}, r"hop_ms=4\.0 is not one of \[2\.5, 5\.0\] ms"),
        ({"window_ms": 100.0}, r"window_ms=100\.0 is not a number in 8\.\.64 ms"),
        ({"window_ms": 8.0, "hop_ms": 5.0}, r"window_ms=8\.0 is shorter than two hops"),
        ({"highpass_hz": 1000.0}, r"highpass_hz=1000\.0 is not a number in 20\.\.300 Hz"),
        ({"sample_rate": 22050}, r"sample_rate=22050 is not supported"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(kwargs, match):
    args = {"sample_rate": 16000, "block_size": 160} | kwargs
    with pytest.raises(ConfigError, match=match):
        NoiseSuppressor(**args)


# -- noise and speech that start after digital silence ----------------------------------------
@pytest.mark.parametrize("silence_s", [0.5, 5.0])
@pytest.mark.parametrize("kind", ["pink", "hvac"])
def test_noise_after_digital_silence_is_learnt_as_at_start_up(kind, silence_s):
    """A muted microphone or a stream that starts with zeros: the noise that follows is reduced
    to the limit within a second, as when it is there from the start (measured 2026-11-29:
    0 dB over the first 2 s before the fix, 25.0 dB from 0.25 s after the onset with it)."""
    fs = 16000
    clean, noise, mix = speech_in_noise(kind, 5.0, fs)
    x = np.concatenate([np.zeros(int(silence_s * fs), np.float32), mix])
    ns = NoiseSuppressor(fs, 80)
    y = run_array(Pipeline([ns]), x[:, None])[:, 0]
    d = ns.latency_samples
    onset = int(silence_s * fs)
    ref = highpassed(noise, fs)
    # The leading noise from 0.25 s to 1.25 s after its onset (speech starts at 1.5 s).
    a, b = int(0.25 * fs), int(1.25 * fs)
    out_power = np.sum(y[onset + a + d : onset + b + d].astype(np.float64) ** 2)
    measured_db = 10 * np.log10(np.sum(ref[a:b] ** 2) / out_power)
    assert measured_db >= ns.attenuation_db - 3.0, f"{kind}: {measured_db:.1f} dB"


@pytest.mark.parametrize(("kind", "lang"), [("pink", "en"), ("white", "ko")])
def test_speech_right_after_digital_silence_is_kept(kind, lang):
    """Speech (in noise) that starts at once after 0.5 s of zeros is not learnt as noise: the
    same SI-SDR gain and correlation bounds as for noisy speech from the start."""
    fs = 16000
    s = signals.speech(lang, fs)
    noise = mix_at_snr(s, signals.office_noise_signal(kind, len(s), fs), 5.0)
    mix = (s + noise).astype(np.float32)
    lead = int(0.5 * fs)
    x = np.concatenate([np.zeros(lead, np.float32), mix])
    ns = NoiseSuppressor(fs, 160)
    y = run(ns, x)[lead:, 0]
    d = ns.latency_samples
    before = signals.si_sdr_db(s, mix)
    after = signals.si_sdr_db(s[:-d], y[d:])
    assert after >= before + 2.0, f"SI-SDR {before:.1f} -> {after:.1f} dB"
    assert np.corrcoef(s[:-d], y[d:])[0, 1] >= np.corrcoef(s, mix)[0, 1]


def test_infinite_input_is_silence_not_clipping():
    """Inf is zeroed like NaN (fastmath without the no-Inf assumption keeps the check alive):
    0.2 s of +-Inf leaves exactly the state 0.2 s of zeros leaves."""
    fs = 16000
    noise = signals.white(fs, rms=0.1)
    outs = []
    for value in (0.0, np.inf):
        bad = np.full((int(0.2 * fs), 1), value, np.float32)
        bad[1::2] *= -1.0
        ns = NoiseSuppressor(fs, 160)
        outs.append(run(ns, np.concatenate([bad, noise])))
    np.testing.assert_array_equal(outs[0], outs[1])


def _reduction_after(x: np.ndarray, onset: int, start_s: float, stop_s: float) -> float:
    """Attenuation (dB) of the high-passed input over ``start_s..stop_s`` after ``onset``."""
    fs = 16000
    ns = NoiseSuppressor(fs, 80)
    y = run(ns, x)[:, 0]
    d = ns.latency_samples
    ref = highpassed(x, fs)
    a, b = onset + int(start_s * fs), onset + int(stop_s * fs)
    return 10 * np.log10(np.sum(ref[a:b] ** 2) / np.sum(y[a + d : b + d].astype(np.float64) ** 2))


@pytest.mark.parametrize("kind", ["pink", "hvac"])
def test_louder_noise_after_a_mute_is_learnt_afresh(kind):
    """A 1.5 s mute (longer than a pause, so a restart) and then noise 40 dB louder than before
    it: reduced to the limit within 0.25..1.25 s of the unmute (measured 25.0 dB from 0.25 s)."""
    fs = 16000
    before = 3e-4 * signals.office_noise_signal(kind, 2 * fs, fs, offset=1)
    after = 3e-2 * signals.office_noise_signal(kind, 3 * fs, fs, offset=2)
    mute = np.zeros(int(1.5 * fs))
    x = np.concatenate([before, mute, after]).astype(np.float32)
    measured_db = _reduction_after(x, len(before) + len(mute), 0.25, 1.25)
    assert measured_db >= NoiseSuppressor(fs, 80).attenuation_db - 3.0, f"{measured_db:.1f} dB"


@pytest.mark.parametrize("gap_s", [0.0, 0.5])
def test_a_noise_step_up_is_tracked_within_a_second(gap_s):
    """Noise 20 dB louder after a short pause (the estimate is kept) or at once: the step rule
    lifts the estimate within ~0.75 s (measured 25.0 dB from 1.0 s on; without it the SPP
    tracker's stagnation guard and the 1 s minimum held the output at ~0 dB for > 1.5 s)."""
    fs = 16000
    before = 3e-3 * signals.office_noise_signal("pink", 2 * fs, fs, offset=1)
    after = 3e-2 * signals.office_noise_signal("pink", 3 * fs, fs, offset=2)
    gap = np.zeros(int(gap_s * fs))
    x = np.concatenate([before, gap, after]).astype(np.float32)
    measured_db = _reduction_after(x, len(before) + len(gap), 1.0, 2.0)
    assert measured_db >= NoiseSuppressor(fs, 80).attenuation_db - 3.0, f"{measured_db:.1f} dB"
