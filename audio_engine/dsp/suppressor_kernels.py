"""Numba kernels of the headset noise suppressor (:mod:`audio_engine.dsp.suppressor`).

One call of :func:`process_block` runs a whole host block: per sample it high-passes, stages
the hop, and whenever a hop is complete it runs one low-latency STFT frame per channel
(analysis, noise tracking, gain, synthesis). There is no Python-level per-frame loop. All state
lives in arrays that :class:`~audio_engine.dsp.suppressor.NoiseSuppressor` allocates once; the
kernels allocate nothing (the FFTs are rocket-fft's low-level ``r2c``/``c2r`` into preallocated
outputs).

References
----------
- D. Mauler, R. Martin, "A low delay, variable resolution, perfect reconstruction spectral
  analysis-synthesis system for speech enhancement", EUSIPCO 2007 (asymmetric windows).
- T. Gerkmann, R. C. Hendriks, "Unbiased MMSE-based noise power estimation with low complexity
  and low tracking delay", IEEE TASLP 20(4), 2012 (speech-presence-probability noise tracker).
- Y. Ephraim, D. Malah, "Speech enhancement using a minimum mean-square error log-spectral
  amplitude estimator", IEEE TASSP 33(2), 1985 (LSA gain, decision-directed a-priori SNR).
- I. Cohen, B. Berdugo, "Speech enhancement for non-stationary noise environments", Signal
  Processing 81, 2001 (OM-LSA: gain floor weighted by the speech presence probability, a-priori
  speech absence from locally, globally and frame-wise smoothed a-priori SNR).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from rocket_fft import c2r, r2c

#: Numba fastmath flags: all but ``nnan`` and ``ninf``. With those two LLVM assumes no NaN or
#: Inf exists and folds ``np.isfinite`` to True, even in a helper compiled without them once it
#: is inlined: Inf input then went through as +-clip instead of being zeroed.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Rows of the per-unit state array ``bins`` (channels, BIN_ROWS, analysis units).
NOISE, SPP_SMOOTH, PREV_CLEAN, ZETA, REF_POWER, EXT_NOISE, SMOOTH_POWER, RUN_MIN = range(8)
MIN_SUBWINDOWS = 4
BIN_ROWS = RUN_MIN + 1 + MIN_SUBWINDOWS  # the last rows hold the past sub-window minima

# Columns of the per-channel scalar state ``chan`` (channels, CHAN_COLS).
(
    FLOOR_GAIN,
    WET_GAIN,
    TRANSIENT_HOLD,
    AGENT_LEVEL_DB,
    FRAMES_SEEN,
    SUBWINDOW_FRAME,
    SUBWINDOW_SLOT,
    TRANSIENT_AGE,
    TRANSIENT_FREEZE,
    TRANSIENT_IN_PAUSE,
    PREV_HIGH_POWER,
    TYPING_SCORE,
    SILENT_FRAMES,
    SOUND_FRAMES,
    AFTER_SILENCE,
    HOP_SOUND,
) = range(16)
CHAN_COLS = 16

# Rows of the live telemetry (3, channels) and columns of the running sums (channels, 4).
TEL_SPEECH_PROBABILITY, TEL_SNR_DB, TEL_ATTENUATION_DB = range(3)
SUM_FRAMES, SUM_SPEECH_PROBABILITY, SUM_SNR_DB, SUM_ATTENUATION_DB = range(4)

# Indices of the float64 parameter vector: what Python may change while audio runs.
P_FLOOR_TARGET, P_WET_TARGET, P_XFADE_STEP, P_TRANSIENT, P_NEAR_TALKER, P_USE_EXT = range(6)
PARAM_COUNT = 6

# Indices of the float64 configuration vector, fixed at construction.
(
    C_NOISE_ALPHA,
    C_SPP_ALPHA,
    C_DD_ALPHA,
    C_XI_MIN,
    C_ZETA_BETA,
    C_FLOOR_ALPHA,
    C_AGENT_DECAY_DB,
    C_REF_ALPHA,
    C_NOISE_FLOOR,
    C_HPF_B0,
    C_HPF_B1,
    C_HPF_B2,
    C_HPF_A1,
    C_HPF_A2,
    C_TRANSIENT_HOLD,
    C_CLIP_IN,
    C_MIN_SMOOTH,
    C_MIN_BIAS,
    C_SUBWINDOW_FRAMES,
    C_TRANSIENT_MAX,
    C_REF_ALPHA_DOWN,
    C_RISE_DB,
    C_TRANSIENT_FREEZE,
    C_RISE_SPEECH_DB,
    C_TYPING_DECAY,
    C_SILENCE_POWER,
    C_SILENCE_RESTART,
    C_TRUST_FRAMES,
    C_SILENT_HOP_ENERGY,
    C_WINDOW_HOPS,
) = range(30)
CONFIG_COUNT = 30

#: Least rise of the band above 1 kHz over that of 300-1000 Hz for a click, dB (tuned on the
#: simulated keyboard, whose 1 kHz high-passed 3-8 ms bursts show only 4-8 dB of tilt; 5 dB
#: missed a third of them, 0 dB cost 0.1 PESQ-WB on clean speech).
TILT_DB = 3.0

#: Least fraction of the bins above 1 kHz a click raises by 6 dB: clicks are broadband, while
#: fricatives put their energy in one region (2-4 kHz for "sh", above 4 kHz for "s").
BROADBAND_FRACTION = 0.6

#: The second click rule (clicks inside speech): least tilt (dB) and share of raised units.
TILT_SPEECH_DB = 8.0
JUMP_SPEECH_DB = 9.0
TYPING_SCORE_MIN = 1.5
BROADBAND_SPEECH_FRACTION = 0.85

#: Speech presence (of the hop before a click) below which the click is taken to be in a pause.
PAUSE_PRESENCE = 0.3

#: Noise step detector: least rise (dB) of the 0.5 s minimum over the estimate, least share of
#: the 300-3400 Hz units that show it, and the lift from that minimum back towards the mean
#: (the minimum of ~25 independent 20 ms-smoothed periodogram values lies ~8 dB under the
#: mean, Martin 2001; 5 dB stays under it so the SPP tracker finishes the rise from below).
STEP_RATIO = 10.0 ** (6.0 / 10.0)
STEP_FRACTION = 0.8
MIN_UNBIAS = 10.0 ** (5.0 / 10.0)

# Indices of the int64 band-edge vector (bin numbers, half-open ranges).
B_SPEECH_LO, B_SPEECH_HI, B_LOW_HI, B_HIGH_LO, B_LOCAL_HALF, B_GLOBAL_HALF, B_INIT_FRAMES = range(7)
BAND_COUNT = 7

#: LSA gain table: exp(0.5 * E1(v)) on log10(v) from LUT_LOG_MIN to LUT_LOG_MAX.
LUT_LOG_MIN = -5.0
LUT_LOG_MAX = 1.7
LUT_SIZE = 1024

#: Fixed a-priori SNR of speech when present, 15 dB, for the noise tracker's speech presence
#: probability (Gerkmann & Hendriks 2012, section IV).
XI_H1 = 10.0**1.5

#: Cohen & Berdugo 2001, table 1: a-priori SNR limits of the speech absence mapping (-10, -5 dB)
#: and the cap of the a-priori speech absence probability.
ZETA_MIN = 0.1
ZETA_MAX = 10.0 ** (-0.5)
Q_MAX = 0.95


def lsa_table() -> np.ndarray:
    """``exp(0.5 * E1(v))`` sampled on ``LUT_SIZE`` points of log10(v), float64 (not real-time)."""
    from scipy.special import exp1

    v = 10.0 ** np.linspace(LUT_LOG_MIN, LUT_LOG_MAX, LUT_SIZE)
    return np.exp(0.5 * exp1(v))


@njit(cache=True, fastmath=FASTMATH)
def _lsa_factor(lut, v):
    """Interpolated exp(0.5 E1(v)); E1 -> 0 above the table and ~ -0.5772 - ln v below it."""
    if v <= 10.0**LUT_LOG_MIN:
        return np.exp(-0.2886078324507664) / np.sqrt(max(v, 1e-30))
    lv = np.log10(v)
    if lv >= LUT_LOG_MAX:
        return 1.0
    x = (lv - LUT_LOG_MIN) * ((LUT_SIZE - 1) / (LUT_LOG_MAX - LUT_LOG_MIN))
    i = int(x)
    f = x - i
    return lut[i] + f * (lut[i + 1] - lut[i])


@njit(cache=True, fastmath=FASTMATH)
def _presence_map(zeta):
    """Cohen & Berdugo's log-linear map of a smoothed a-priori SNR to a presence likelihood."""
    if zeta <= ZETA_MIN:
        return 0.0
    if zeta >= ZETA_MAX:
        return 1.0
    return np.log(zeta / ZETA_MIN) / np.log(ZETA_MAX / ZETA_MIN)


@njit(cache=True, fastmath=FASTMATH)
def _frame(
    c,
    frame,
    bins,
    chan,
    telemetry,
    sums,
    params,
    config,
    bands,
    window_analysis,
    window_synthesis,
    lut,
    axes,
    unit_edges,
    xw,
    spec,
    yt,
    bin_power,
    power,
    gain,
    work,
    csum,
    ola,
    out_wet,
):
    """One STFT frame of channel ``c``: writes the hop's finished samples into ``out_wet[c]``."""
    n_fft = frame.shape[1]
    hop = out_wet.shape[1]
    for n in range(n_fft):
        xw[n] = frame[c, n] * window_analysis[n]
    r2c(xw, spec, axes, True, 1.0, 1)
    # Everything below works on analysis units: single bins up to 4 kHz, then groups of bins
    # (250 Hz to 8 kHz, 500 Hz above) whose mean power stands for them. Above 4 kHz speech
    # harmonics are not resolved anyway; at 48 kHz it is 112 units instead of 385 bins.
    n_units = unit_edges.shape[0] - 1
    frame_power = 0.0
    for u in range(n_units):
        total = 0.0
        for k in range(unit_edges[u], unit_edges[u + 1]):
            bin_power[k] = spec[k].real * spec[k].real + spec[k].imag * spec[k].imag
            total += bin_power[k]
        power[u] = total / (unit_edges[u + 1] - unit_edges[u])
        frame_power += total
    # Digital silence (a muted microphone, a gated stream, a stream that starts with zeros)
    # says nothing about the noise: it neither pulls the estimate down nor enters the minimum
    # statistics' history nor counts as start-up, so the estimate from before a pause is still
    # there when sound comes back. After C_SILENCE_RESTART frames of it (a mute) the tracker
    # starts over and learns what follows as at start-up. Before this, noise after 0.5 s of
    # zeros was reduced by 0 dB for its first 2 s: the estimate had fallen to the floor, and
    # the speech-presence tracker takes a 40 dB rise for speech and admits it only through its
    # stagnation guard.
    silent = frame_power < config[C_SILENCE_POWER] * spec.shape[0]
    hop_energy = 0.0
    for n in range(n_fft - hop, n_fft):
        hop_energy += frame[c, n] * frame[c, n]
    if hop_energy < config[C_SILENT_HOP_ENERGY]:
        chan[c, HOP_SOUND] = 0.0
    else:
        chan[c, HOP_SOUND] += 1.0
    if silent:
        chan[c, SILENT_FRAMES] += 1.0
        chan[c, SOUND_FRAMES] = 0.0
    else:
        chan[c, SILENT_FRAMES] = 0.0
        chan[c, SOUND_FRAMES] += 1.0

    noise = bins[c, NOISE]
    spp_smooth = bins[c, SPP_SMOOTH]
    prev_clean = bins[c, PREV_CLEAN]
    zeta = bins[c, ZETA]
    ref_power = bins[c, REF_POWER]
    ext_noise = bins[c, EXT_NOISE]

    noise_floor = config[C_NOISE_FLOOR]
    seen = chan[c, FRAMES_SEEN]
    init_frames = bands[B_INIT_FRAMES]

    hold = chan[c, TRANSIENT_HOLD]
    # While a click is inside the analysis window the noise and click references stand still.
    freeze = chan[c, TRANSIENT_FREEZE]
    lo = bands[B_SPEECH_LO]
    hi = bands[B_SPEECH_HI]
    # -- transient (keyboard click) detector -------------------------------------------------
    # A click is a sudden, broadband rise above 1 kHz with no matching rise below it; speech
    # onsets start voiced (low band first), so they do not trip it.
    transient = False
    # After digital silence the reference is that silence, so the detector runs from the first
    # frame of sound: a click that ends a mute is not averaged into the new noise estimate.
    if params[P_TRANSIENT] > 0.0 and (seen >= init_frames or chan[c, AFTER_SILENCE] > 0.0):
        high_lo = bands[B_HIGH_LO]
        low_hi = bands[B_LOW_HI]
        high_now = 0.0
        high_ref = 0.0
        raised = 0
        for k in range(high_lo, n_units):
            r = max(ref_power[k], noise[k])
            high_now += power[k]
            high_ref += r
            if power[k] > 4.0 * r:
                raised += 1
        low_now = 0.0
        low_ref = 0.0
        for k in range(lo, low_hi):
            low_now += power[k]
            low_ref += max(ref_power[k], noise[k])
        rise_high_db = 10.0 * np.log10((high_now + 1e-30) / (high_ref + 1e-30))
        rise_low_db = 10.0 * np.log10((low_now + 1e-30) / (low_ref + 1e-30))
        # A click: the band above 1 kHz jumps >= C_RISE_DB above its recent level in one hop,
        # >= TILT_DB more than 300-1000 Hz does (voiced onsets rise low first). A click is over
        # in ~10 ms; a rise that keeps re-triggering for longer is a fricative: let it through.
        tilt_db = rise_high_db - rise_low_db
        # The jump since the previous hop: a click is there at once, a fricative builds up.
        jump_db = 10.0 * np.log10((high_now + 1e-30) / (chan[c, PREV_HIGH_POWER] + 1e-30))
        chan[c, PREV_HIGH_POWER] = high_now
        width = n_units - high_lo
        clear_click = (
            rise_high_db >= config[C_RISE_DB]
            and tilt_db >= TILT_DB
            and raised >= BROADBAND_FRACTION * width
        )
        # Typing score: +1 per clear click, halving every second.
        chan[c, TYPING_SCORE] *= config[C_TYPING_DECAY]
        if clear_click and chan[c, TRANSIENT_FREEZE] <= 0.0:
            chan[c, TYPING_SCORE] += 1.0
        if clear_click or (
            # Inside speech a click rises less above the speech's own high band, but it is
            # flatter and wider than a fricative and there at once: a smaller rise, a clear
            # tilt, ~all units, a jump within one hop. Plosive bursts can look alike, so this
            # rule only runs while someone is typing (two clear clicks within about a second):
            # always on, it cost 0.17 PESQ-WB on clean speech; with typing it gains 1 dB SI-SDR.
            chan[c, TYPING_SCORE] >= TYPING_SCORE_MIN
            and telemetry[TEL_SPEECH_PROBABILITY, c] >= PAUSE_PRESENCE
            and jump_db >= JUMP_SPEECH_DB
            and rise_high_db >= config[C_RISE_SPEECH_DB]
            and tilt_db >= TILT_SPEECH_DB
            and raised >= BROADBAND_SPEECH_FRACTION * width
        ):
            transient = True
    # A click event: the gain hold (the click's bins at the floor) lasts C_TRANSIENT_HOLD hops
    # and may be re-armed for C_TRANSIENT_MAX hops (a click is over by then; a fricative is
    # not, and goes through); the references stay frozen while the click is in the window.
    age = chan[c, TRANSIENT_AGE]
    was_frozen = freeze > 0.0
    if was_frozen:
        freeze -= 1.0
        age += 1.0
    else:
        age = 0.0
    if transient and not was_frozen:
        hold = config[C_TRANSIENT_HOLD]
        freeze = config[C_TRANSIENT_FREEZE]
        age = 0.0
        # A click in a speech pause is all there is: the whole frame may go to the floor.
        chan[c, TRANSIENT_IN_PAUSE] = (
            1.0 if telemetry[TEL_SPEECH_PROBABILITY, c] < PAUSE_PRESENCE else 0.0
        )
    elif transient and age < config[C_TRANSIENT_MAX]:
        hold = config[C_TRANSIENT_HOLD]
    elif hold > 0.0:
        hold -= 1.0
    if was_frozen and freeze <= 0.0:
        # Event over: what is there now (a fricative that outlasted it) is the new reference.
        for k in range(n_units):
            ref_power[k] = max(ref_power[k], power[k])
    chan[c, TRANSIENT_AGE] = age
    chan[c, TRANSIENT_HOLD] = hold
    chan[c, TRANSIENT_FREEZE] = freeze
    if freeze <= 0.0:
        # The click reference: slow to rise (50 ms), fast to fall (10 ms), so a click's own
        # decay does not hide the next click 40-90 ms later.
        alpha_up = config[C_REF_ALPHA]
        alpha_down = config[C_REF_ALPHA_DOWN]
        for k in range(n_units):
            a = alpha_up if power[k] > ref_power[k] else alpha_down
            ref_power[k] = a * ref_power[k] + (1.0 - a) * power[k]

    # -- noise power: speech-presence-probability MMSE tracker (Gerkmann & Hendriks 2012) -----
    if silent:
        # Also when the estimate came from less than C_TRUST_FRAMES of sound (a click, a filter's
        # response to a DC step): it is not carried across a silence.
        if seen >= init_frames and (
            chan[c, SILENT_FRAMES] >= config[C_SILENCE_RESTART] or seen < config[C_TRUST_FRAMES]
        ):
            # Back to the start-up state: the first frame of sound is frame 0 below; presence
            # history, estimate and click references start from the floor (the estimate is
            # replaced by the first frames' average).
            seen = 0.0
            chan[c, PREV_HIGH_POWER] = 0.0
            for k in range(n_units):
                spp_smooth[k] = 0.0
                noise[k] = noise_floor
                ref_power[k] = noise_floor
        chan[c, AFTER_SILENCE] = 1.0
    elif seen < init_frames and freeze <= 0.0:
        # The first frames have no estimate yet: average them (speech at start is tolerated, the
        # tracker falls fast from an overestimate).
        w = 1.0 / (seen + 1.0)
        for k in range(n_units):
            noise[k] = max(noise[k] + w * (power[k] - noise[k]), noise_floor)
            ref_power[k] = noise[k]
            bins[c, SMOOTH_POWER, k] = noise[k]
            for row in range(RUN_MIN, BIN_ROWS):
                bins[c, row, k] = 1e300
    alpha_n = config[C_NOISE_ALPHA]
    alpha_p = config[C_SPP_ALPHA]
    shrink = XI_H1 / (1.0 + XI_H1)
    smooth_power = bins[c, SMOOTH_POWER]
    run_min = bins[c, RUN_MIN]
    alpha_s = config[C_MIN_SMOOTH]
    bias = config[C_MIN_BIAS]
    # In digital silence the noise, presence and minimum-statistics state stand still, and so
    # they do while the window still holds some of it (the frames that fade into or out of a
    # pause are quieter than the noise: in the minimum they pulled the estimate down for the
    # ~1 s the minimum lasts, HVAC after a 0.5 s gap was reduced by 7-13 dB instead of 25).
    still = silent or (seen >= init_frames and chan[c, HOP_SOUND] < config[C_WINDOW_HOPS])
    tracking = not still and freeze <= 0.0
    for k in range(0 if still else n_units):
        post = power[k] / noise[k]
        p1 = 1.0 / (1.0 + (1.0 + XI_H1) * np.exp(-min(post * shrink, 80.0)))
        spp_smooth[k] = alpha_p * spp_smooth[k] + (1.0 - alpha_p) * p1
        if spp_smooth[k] > 0.99:
            # Stagnation guard: a bin that has looked like speech for long is re-admitted.
            p1 = min(p1, 0.99)
        if tracking:
            estimate = (1.0 - p1) * power[k] + p1 * noise[k]
            noise[k] = max(alpha_n * noise[k] + (1.0 - alpha_n) * estimate, noise_floor)
            # Cap by the biased minimum of the smoothed power over the last ~1 s (minimum
            # statistics, Martin 2001): the SPP tracker's stagnation guard otherwise lets long
            # sustained vowels leak into the noise estimate. (Using the minimum as a lower
            # bound as well raised the estimate inside long sentences: PESQ-WB -0.3.)
            smooth_power[k] = alpha_s * smooth_power[k] + (1.0 - alpha_s) * power[k]
            if smooth_power[k] < run_min[k]:
                run_min[k] = smooth_power[k]
            m = run_min[k]
            for u in range(MIN_SUBWINDOWS):
                m = min(m, bins[c, BIN_ROWS - MIN_SUBWINDOWS + u, k])
            noise[k] = max(min(noise[k], bias * m), noise_floor)
    if tracking:
        chan[c, SUBWINDOW_FRAME] += 1.0
        if chan[c, SUBWINDOW_FRAME] >= config[C_SUBWINDOW_FRAMES]:
            chan[c, SUBWINDOW_FRAME] = 0.0
            slot = int(chan[c, SUBWINDOW_SLOT])
            row = BIN_ROWS - MIN_SUBWINDOWS + slot
            prev_row = BIN_ROWS - MIN_SUBWINDOWS + (slot + MIN_SUBWINDOWS - 1) % MIN_SUBWINDOWS
            # A step up of the noise: the SPP tracker admits a rise of more than ~6 dB only
            # through its stagnation guard (~0.14 x the new power per second) and the minimum
            # cap holds the old level for ~1.25 s, so a 30 dB step took seconds. If the minimum
            # of the smoothed power over the last two sub-windows (0.5 s) lies STEP_DB above
            # the estimate in >= STEP_FRACTION of the 300-3400 Hz units, no speech explains it
            # (speech leaves gaps and valleys within 0.5 s): those units take that minimum,
            # MIN_UNBIAS_DB up, and forget the older minima.
            step_count = 0
            for k in range(bands[B_SPEECH_LO], bands[B_SPEECH_HI]):
                m2 = min(run_min[k], bins[c, prev_row, k])
                if bins[c, prev_row, k] < 1e299 and m2 > STEP_RATIO * noise[k]:
                    step_count += 1
            # Only over sound without digital silence in it (gaps between words or clicks
            # would otherwise leave nothing but speech and clicks in the history).
            stepped = (
                step_count >= STEP_FRACTION * (bands[B_SPEECH_HI] - bands[B_SPEECH_LO])
                and chan[c, SOUND_FRAMES] >= 2.0 * config[C_SUBWINDOW_FRAMES]
            )
            for k in range(n_units):
                m2 = min(run_min[k], bins[c, prev_row, k])
                if stepped and bins[c, prev_row, k] < 1e299 and m2 > STEP_RATIO * noise[k]:
                    noise[k] = MIN_UNBIAS * m2
                    for u in range(MIN_SUBWINDOWS):
                        bins[c, BIN_ROWS - MIN_SUBWINDOWS + u, k] = m2
                bins[c, row, k] = run_min[k]
                run_min[k] = smooth_power[k]
            chan[c, SUBWINDOW_SLOT] = (slot + 1) % MIN_SUBWINDOWS

    use_ext = params[P_USE_EXT] > 0.0

    # -- a-priori SNR (decision-directed), LSA gain, smoothed a-priori SNR for Cohen's q ------
    alpha_dd = config[C_DD_ALPHA]
    xi_min = config[C_XI_MIN]
    beta = config[C_ZETA_BETA]
    speech_sum = 0.0
    noise_sum = 0.0
    frame_zeta = 0.0
    for k in range(n_units):
        nk = noise[k]
        if use_ext and ext_noise[k] > nk:
            nk = ext_noise[k]
        gamma = min(power[k] / nk, 1e6)
        xi = alpha_dd * prev_clean[k] / nk + (1.0 - alpha_dd) * max(gamma - 1.0, 0.0)
        xi = max(xi, xi_min)
        v = xi * gamma / (1.0 + xi)
        g_h1 = min(xi / (1.0 + xi) * _lsa_factor(lut, v), 1.0)
        gain[k] = g_h1
        work[k] = v
        if freeze <= 0.0:
            # Not while a click is in the window: it would hold speech presence up for
            # ~100 ms, and the next click would be taken for speech.
            prev_clean[k] = g_h1 * g_h1 * power[k]
            # Capped at 20 dB so that one loud bin cannot hold speech presence up for long:
            # above 20 dB presence is certain anyway (ZETA_MAX is -5 dB).
            zeta[k] = beta * zeta[k] + (1.0 - beta) * min(xi, 100.0)
        if lo <= k < hi:
            speech_sum += max(power[k] - nk, 0.0)
            noise_sum += nk
            frame_zeta += zeta[k]
        # Keep xi for the presence probability below (yt is free until the synthesis).
        yt[k] = xi
    frame_zeta /= max(hi - lo, 1)
    snr_db = 10.0 * np.log10(max(speech_sum, 1e-30) / max(noise_sum, 1e-30))

    # -- frame-level speech presence and the near-talker (agent vs. distant babble) model -----
    band_level = 0.0
    for k in range(lo, hi):
        band_level += power[k]
    level_db = 10.0 * np.log10(band_level + 1e-30)
    # Frame term with limits 6 dB above Cohen's bin-wise ones: averaged over ~100 bins, noise
    # alone sits at ~-10 dB and must map to "no speech" reliably.
    p_frame = _presence_map(frame_zeta * 0.25)
    agent_db = chan[c, AGENT_LEVEL_DB]
    if snr_db > 6.0 and seen >= init_frames:
        # The agent's active level: rises at once to louder speech, decays slowly, so a talker
        # well below the headset wearer's own level (neighbours, babble) is not taken as speech.
        if level_db > agent_db:
            agent_db = agent_db + 0.05 * (level_db - agent_db)
    agent_db -= config[C_AGENT_DECAY_DB]
    chan[c, AGENT_LEVEL_DB] = agent_db
    near = 1.0
    if params[P_NEAR_TALKER] > 0.0:
        near = min(max((level_db - (agent_db - 20.0)) / 10.0, 0.0), 1.0)
    p_frame *= near

    # -- a-priori speech absence (local and global smoothing over frequency) ------------------
    csum[0] = 0.0
    for k in range(n_units):
        csum[k + 1] = csum[k] + zeta[k]
    local_half = bands[B_LOCAL_HALF]
    global_half = bands[B_GLOBAL_HALF]
    floor_gain = chan[c, FLOOR_GAIN]
    floor_gain += config[C_FLOOR_ALPHA] * (params[P_FLOOR_TARGET] - floor_gain)
    chan[c, FLOOR_GAIN] = floor_gain
    log_floor = np.log(max(floor_gain, 1e-10))

    # -- OM-LSA gain: G = G_H1^p * G_min^(1-p) -----------------------------------------------
    in_energy = 0.0
    out_energy = 0.0
    presence_sum = 0.0
    in_pause = chan[c, TRANSIENT_IN_PAUSE] > 0.0
    for k in range(n_units):
        if p_frame <= 0.0:
            # Cohen's frame term says no speech in the whole 300-3400 Hz band: every bin is
            # noise, the gain is the floor (this is what makes the floor the attenuation).
            p = 0.0
            g = floor_gain
        else:
            a = max(k - local_half, 0)
            b = min(k + local_half + 1, n_units)
            p_local = _presence_map((csum[b] - csum[a]) / (b - a))
            a = max(k - global_half, 0)
            b = min(k + global_half + 1, n_units)
            p_global = _presence_map((csum[b] - csum[a]) / (b - a))
            q = min(1.0 - p_local * p_global * p_frame, Q_MAX)
            xi = yt[k]
            odds = q / (1.0 - q) * (1.0 + xi) * np.exp(-min(work[k], 80.0))
            p = 1.0 / (1.0 + odds)
            g = np.exp(p * np.log(max(gain[k], 1e-10)) + (1.0 - p) * log_floor)
            if g < floor_gain:
                g = floor_gain
        if hold > 0.0 and (in_pause or power[k] > 4.0 * ref_power[k]):
            # Bins the click raised above the pre-click spectrum go to the floor (all bins if
            # the click came in a pause).
            g = floor_gain
        gain[k] = g
        width = unit_edges[k + 1] - unit_edges[k]
        in_energy += width * power[k]
        out_energy += width * g * g * power[k]
        if lo <= k < hi:
            presence_sum += p
    speech_probability = presence_sum / max(hi - lo, 1)
    attenuation_db = 10.0 * np.log10(max(in_energy, 1e-30) / max(out_energy, 1e-30))

    telemetry[TEL_SPEECH_PROBABILITY, c] = speech_probability
    telemetry[TEL_SNR_DB, c] = snr_db
    telemetry[TEL_ATTENUATION_DB, c] = attenuation_db
    sums[c, SUM_FRAMES] += 1.0
    sums[c, SUM_SPEECH_PROBABILITY] += speech_probability
    sums[c, SUM_SNR_DB] += snr_db
    sums[c, SUM_ATTENUATION_DB] += attenuation_db
    if silent or (seen < init_frames and freeze > 0.0):
        # Start-up counts frames of sound without a click in the window only.
        chan[c, FRAMES_SEEN] = seen
    else:
        chan[c, FRAMES_SEEN] = seen + 1.0
        if seen + 1.0 >= init_frames:
            chan[c, AFTER_SILENCE] = 0.0

    # -- synthesis: gains, inverse FFT, short synthesis window, overlap-add --------------------
    for u in range(n_units):
        g = gain[u]
        for k in range(unit_edges[u], unit_edges[u + 1]):
            spec[k] = spec[k] * g
    c2r(spec, yt, axes, False, 1.0 / n_fft, 1)
    span = window_synthesis.shape[0]
    start = n_fft - span
    for n in range(span):
        ola[c, n] += yt[start + n] * window_synthesis[n]
    for n in range(hop):
        out_wet[c, n] = ola[c, n]
    for n in range(span - hop):
        ola[c, n] = ola[c, n + hop]
    for n in range(span - hop, span):
        ola[c, n] = 0.0


@njit(cache=True, fastmath=FASTMATH)
def process_block(
    out,
    block,
    position,
    hpf,
    hop_in,
    hop_dry,
    frame,
    dry,
    ola,
    out_wet,
    out_dry,
    bins,
    chan,
    telemetry,
    sums,
    params,
    config,
    bands,
    window_analysis,
    window_synthesis,
    lut,
    axes,
    unit_edges,
    xw,
    spec,
    yt,
    bin_power,
    power,
    gain,
    work,
    csum,
):
    """Suppress noise in one host block. Real-time safe: no allocation.

    Parameters
    ----------
    out : ndarray (frames, channels) float32
        Written: the suppressed signal, delayed by ``2 * hop - 1`` samples, within [-1, 1].
    block : ndarray (frames, channels) float32
        Input; may be ``out`` itself. NaN/Inf are replaced by 0 and values clipped to
        ``config[C_CLIP_IN]`` before anything else sees them.
    position : ndarray (1,) int64
        Samples of the current hop staged so far (0..hop-1), kept across calls.
    Others
        State and scratch arrays allocated by the processor (see its ``__init__``).
    """
    frames = block.shape[0]
    channels = block.shape[1]
    hop = hop_in.shape[1]
    n_fft = frame.shape[1]
    b0 = config[C_HPF_B0]
    b1 = config[C_HPF_B1]
    b2 = config[C_HPF_B2]
    a1 = config[C_HPF_A1]
    a2 = config[C_HPF_A2]
    clip = config[C_CLIP_IN]
    step = params[P_XFADE_STEP]
    wet_target = params[P_WET_TARGET]
    pos = position[0]
    for t in range(frames):
        for c in range(channels):
            x = np.float64(block[t, c])
            if not np.isfinite(x):
                x = 0.0
            elif x > clip:
                x = clip
            elif x < -clip:
                x = -clip
            hop_dry[c, pos] = x
            # Second-order high-pass (transposed direct form II) against DC and rumble.
            y = b0 * x + hpf[c, 0]
            hpf[c, 0] = b1 * x - a1 * y + hpf[c, 1]
            hpf[c, 1] = b2 * x - a2 * y
            hop_in[c, pos] = y
        if pos == hop - 1:
            for c in range(channels):
                for n in range(n_fft - hop):
                    frame[c, n] = frame[c, n + hop]
                for n in range(hop):
                    frame[c, n_fft - hop + n] = hop_in[c, n]
                span = dry.shape[1]
                for n in range(span - hop):
                    dry[c, n] = dry[c, n + hop]
                for n in range(hop):
                    dry[c, span - hop + n] = hop_dry[c, n]
                    out_dry[c, n] = dry[c, n]
                _frame(
                    c,
                    frame,
                    bins,
                    chan,
                    telemetry,
                    sums,
                    params,
                    config,
                    bands,
                    window_analysis,
                    window_synthesis,
                    lut,
                    axes,
                    unit_edges,
                    xw,
                    spec,
                    yt,
                    bin_power,
                    power,
                    gain,
                    work,
                    csum,
                    ola,
                    out_wet,
                )
                # A blown-up state (it should not happen, but audio must never go non-finite)
                # is cleared so the channel restarts rather than staying silent.
                ok = True
                for n in range(hop):
                    if not np.isfinite(out_wet[c, n]):
                        ok = False
                if not ok:
                    reset_channel(c, hpf, frame, ola, bins, chan, out_wet, config)
        pos = pos + 1 if pos < hop - 1 else 0
        for c in range(channels):
            wet_gain = chan[c, WET_GAIN]
            if wet_gain < wet_target:
                wet_gain = min(wet_gain + step, wet_target)
            elif wet_gain > wet_target:
                wet_gain = max(wet_gain - step, wet_target)
            chan[c, WET_GAIN] = wet_gain
            y = wet_gain * out_wet[c, pos] + (1.0 - wet_gain) * out_dry[c, pos]
            if not np.isfinite(y):
                y = 0.0
            elif y > 1.0:
                y = 1.0
            elif y < -1.0:
                y = -1.0
            out[t, c] = y
    position[0] = pos


@njit(cache=True)
def reset_channel(c, hpf, frame, ola, bins, chan, out_wet, config):
    """Clear channel ``c``'s filters and estimators (keeps its crossfade and floor settings)."""
    hpf[c, 0] = 0.0
    hpf[c, 1] = 0.0
    frame[c, :] = 0.0
    ola[c, :] = 0.0
    out_wet[c, :] = 0.0
    noise_floor = config[C_NOISE_FLOOR]
    bins[c, NOISE, :] = noise_floor
    bins[c, SPP_SMOOTH, :] = 0.0
    bins[c, PREV_CLEAN, :] = 0.0
    bins[c, ZETA, :] = 0.0
    bins[c, REF_POWER, :] = noise_floor
    chan[c, TRANSIENT_HOLD] = 0.0
    chan[c, AGENT_LEVEL_DB] = -200.0
    chan[c, FRAMES_SEEN] = 0.0
    chan[c, SUBWINDOW_FRAME] = 0.0
    chan[c, SUBWINDOW_SLOT] = 0.0
    chan[c, TRANSIENT_AGE] = 0.0
    chan[c, TRANSIENT_FREEZE] = 0.0
    chan[c, TRANSIENT_IN_PAUSE] = 0.0
    chan[c, PREV_HIGH_POWER] = 0.0
    chan[c, TYPING_SCORE] = 0.0
    chan[c, SILENT_FRAMES] = 0.0
    chan[c, SOUND_FRAMES] = 0.0
    chan[c, AFTER_SILENCE] = 0.0
    chan[c, HOP_SOUND] = 0.0
