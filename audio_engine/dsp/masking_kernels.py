"""Numba kernels of the masking generator and the output ceiling.

Pure functions on arrays and scalars: output first, inputs read-only, state passed in and
updated in place. None allocates; all are warmed up by their owner's ``__init__`` so nothing
compiles while audio runs.

Random numbers come from xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number
generators", ACM TOMS 47(4), 2021): period 2**256 - 1, so the noise never repeats within any
realistic run, and one 256-bit state per zone, seeded through splitmix64 from distinct zone
numbers, gives independent, hence decorrelated, streams.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

_MASK64 = uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True)
def splitmix64_seed(state, seed):
    """Fill a (4,) uint64 xoshiro state from an integer seed with splitmix64 (Vigna's advice)."""
    z = uint64(seed)
    for i in range(4):
        z = z + uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> uint64(27))) * uint64(0x94D049BB133111EB)
        state[i] = x ^ (x >> uint64(31))


@njit(cache=True, inline="always")
def _next(s):
    # xoshiro256** step; s is one zone's (4,) uint64 state.
    result = _rotl(s[1] * uint64(5), 7) * uint64(9)
    t = s[1] << uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True, inline="always")
def _uniform_pm1(s):
    # Top 53 bits to a double in [-1, 1).
    return float(_next(s) >> uint64(11)) * (2.0 / 9007199254740992.0) - 1.0


@njit(cache=True)
def random_spectra(spectrum, magnitude, rng_state, fault):
    """Write one random spectrum per zone: ``magnitude * (u + i v)``, u, v uniform in [-1, 1).

    Parameters
    ----------
    spectrum : complex128 (zones, bins), written
    magnitude : float64 (zones, bins), the shaping magnitude per rfft bin (0 at DC, Nyquist)
    rng_state : uint64 (zones, 4), advanced
    fault : int64 (zones,), set to 1 for a zone whose magnitude holds a non-finite value; that
        zone's spectrum is written as zeros (silence) so no NaN ever reaches the FFT

    Notes
    -----
    Real and imaginary parts are independent with equal variance, so every bin's phase is
    uniform on average and the power is ``magnitude**2 * 2/3``; each time sample sums
    thousands of such bins and is Gaussian to within the central limit theorem.
    """
    zones, bins = magnitude.shape
    for z in range(zones):
        s = rng_state[z]
        poisoned = False
        for k in range(bins):
            if not np.isfinite(magnitude[z, k]):
                poisoned = True
                break
        if poisoned:
            fault[z] = 1
            for k in range(bins):
                spectrum[z, k] = 0.0
            continue
        for k in range(bins):
            m = magnitude[z, k]
            re = _uniform_pm1(s)
            im = _uniform_pm1(s)
            spectrum[z, k] = complex(m * re, m * im)


@njit(cache=True)
def overlap_add(hop_out, frames, window, tail):
    """Windowed overlap-add at 50 % overlap: one new hop per zone.

    Parameters
    ----------
    hop_out : float64 (zones, hop), written: ``tail + window[:hop] * frames[:, :hop]``
    frames : float64 (zones, 2 * hop), the new time frames (inverse FFT of random spectra)
    window : float64 (2 * hop,), a window whose square sums to 1 at 50 % overlap
    tail : float64 (zones, hop), the previous frames' second halves, updated
    """
    zones, hop = tail.shape
    for z in range(zones):
        for i in range(hop):
            hop_out[z, i] = tail[z, i] + window[i] * frames[z, i]
            tail[z, i] = window[hop + i] * frames[z, hop + i]


@njit(cache=True)
def apply_gains(
    out,
    source,
    start,
    gain,
    gain_target,
    gain_ratio,
    fade,
    fade_step,
    fault,
    fault_step,
):
    """Copy ``frames`` samples per zone from the hop buffer into ``out`` with level and fade.

    Parameters
    ----------
    out : float32 (frames, zones), written
    source : float64 (zones, hop), generated noise; samples ``start .. start + frames`` used
    start : int
    gain : float64 (zones,), current linear level gain, ramped towards ``gain_target``
    gain_target : float64 (zones,)
    gain_ratio : float64 (zones,), per-sample multiplicative step (> 1), so a ramp is linear in dB
    fade : float64 (zones,), fade position in [0, 1]; the applied envelope is a raised cosine
    fade_step : float64 (zones,), per-sample change of ``fade`` (> 0 fading in, < 0 out)
    fault : int64 (zones,), set to 1 when a non-finite sample or state was met
    fault_step : float, per-sample fade decrement of a faulted zone (> 0)

    Notes
    -----
    A non-finite sample becomes 0 and starts a fade-out of that zone; a non-finite gain or fade
    state becomes 0 (silence). Nothing here can produce a non-finite output.
    """
    frames = out.shape[0]
    zones = out.shape[1]
    for z in range(zones):
        g = gain[z]
        target = gain_target[z]
        ratio = gain_ratio[z]
        f = fade[z]
        step = fade_step[z]
        if not (np.isfinite(g) and np.isfinite(target) and np.isfinite(ratio) and ratio >= 1.0):
            # Poisoned gain state: silence now (nothing to fade from) and stay silent.
            g = 0.0
            target = 0.0
            ratio = 1.0
            gain_target[z] = 0.0
            gain_ratio[z] = 1.0
            fault[z] = 1
        if not (np.isfinite(f) and np.isfinite(step)):
            f = 0.0
            step = 0.0
            fault[z] = 1
        if fault[z] != 0 and step >= 0.0 and f > 0.0:
            # A faulted zone only ever fades out, until start() rebuilds it.
            step = -fault_step
        for n in range(frames):
            if g < target:
                g *= ratio
                if g > target or g <= 0.0:
                    g = target
            elif g > target:
                g /= ratio
                if g < target:
                    g = target
            f += step
            if f >= 1.0:
                f = 1.0
                step = 0.0
            elif f <= 0.0:
                f = 0.0
                step = 0.0
            if f == 1.0:
                envelope = 1.0
            elif f == 0.0:
                envelope = 0.0
            else:
                envelope = 0.5 - 0.5 * np.cos(np.pi * f)
            x = source[z, start + n]
            if not np.isfinite(x):
                x = 0.0
                if fault[z] == 0:
                    fault[z] = 1
                    step = -fault_step
            out[n, z] = np.float32(x * g * envelope)
        gain[z] = g
        fade[z] = f
        fade_step[z] = step


@njit(cache=True)
def ceiling_limit(
    out,
    block,
    ms_limit,
    peak_limit,
    alpha_ms,
    attack_coeff,
    release_coeff,
    ms_in,
    ms_out,
    gain,
    counters,
):
    """Per-channel ceiling: a smooth limiter plus a hard bound no sample can cross.

    Parameters
    ----------
    out : float32 (frames, channels), written; may be ``block``
    block : float32 (frames, channels)
    ms_limit : float64 (channels,), ceiling on the exponentially averaged mean square (inf: none)
    peak_limit : float64 (channels,), ceiling on ``|sample|``
    alpha_ms : float, averaging coefficient of the mean square (``exp(-1 / (tau * fs))``)
    attack_coeff, release_coeff : float, one-pole coefficients of the smooth gain
    ms_in, ms_out, gain : float64 (channels,), state
    counters : int64 (channels, 2), (samples hard-bounded, non-finite inputs) counts, updated

    Notes
    -----
    The invariant ``ms_out <= ms_limit`` holds after every sample: if ``ms_out <= L`` then
    ``y**2 <= (L - a * ms_out) / (1 - a)`` keeps ``a * ms_out + (1 - a) * y**2 <= L``. The
    smooth gain normally keeps the output below, so the hard bound only acts as a last resort.
    The mean-square detector's input is clamped at ``peak_limit``, so after garbage (1e3, 1e30)
    it holds no more than a full-bound signal would and the gain recovers within its release.
    """
    frames = block.shape[0]
    channels = block.shape[1]
    one_minus = 1.0 - alpha_ms
    for c in range(channels):
        limit = ms_limit[c]
        peak = peak_limit[c]
        mi = ms_in[c]
        mo = ms_out[c]
        g = gain[c]
        if not (np.isfinite(mi) and np.isfinite(mo) and np.isfinite(g)):
            # Poisoned state: restart silent, and assume the room is at the ceiling (the
            # output meter's memory is unknown, forgetting it could let the level rise above).
            mi = 0.0
            mo = limit if limit < np.inf else 0.0
            g = 0.0
        for n in range(frames):
            x = float(block[n, c])
            if not np.isfinite(x):
                x = 0.0
                counters[c, 1] += 1
            if x > 1e6:
                x = 1e6
            elif x < -1e6:
                x = -1e6
            # The mean-square detector takes at most the peak bound: a sample beyond it is
            # clipped garbage (the output never carries more), and counting it at its face value
            # (1e30 squared) would hold the smooth gain tens of dB down for seconds afterwards.
            xd = x
            if xd > peak:
                xd = peak
            elif xd < -peak:
                xd = -peak
            mi = alpha_ms * mi + one_minus * xd * xd
            want = 1.0
            if mi > limit:
                want = np.sqrt(limit / mi)
            # A peak above the bound asks for the gain that brings it to the bound.
            ax = abs(x)
            if ax * want > peak:
                want = peak / ax
            if want < g:
                g = attack_coeff * g + (1.0 - attack_coeff) * want
            else:
                g = release_coeff * g + (1.0 - release_coeff) * want
            y = g * x
            bound = peak
            if limit < np.inf:
                room = (limit - alpha_ms * mo) / one_minus
                if room < 0.0:
                    room = 0.0
                # Shave a relative 1e-9 so rounding can never lift ms_out above the limit.
                hard = np.sqrt(room) * (1.0 - 1e-9)
                if hard < bound:
                    bound = hard
            if y > bound:
                y = bound
                counters[c, 0] += 1
            elif y < -bound:
                y = -bound
                counters[c, 0] += 1
            y32 = np.float32(y)
            # Rounding to float32 may lift |y| by half an ulp: step back inside the bound.
            for _ in range(4):
                if abs(float(y32)) <= bound:
                    break
                y32 = np.float32(float(y32) * (1.0 - 2.0**-20))
            out[n, c] = y32
            yf = float(y32)
            mo = alpha_ms * mo + one_minus * yf * yf
        ms_in[c] = mi
        ms_out[c] = mo
        gain[c] = g


@njit(cache=True)
def accumulate_power(accumulator, block):
    """Add each channel's sum of squares to ``accumulator[c]`` and the frame count to
    ``accumulator[channels]``; non-finite samples count as silence.

    Parameters
    ----------
    accumulator : float64 (channels + 1,), updated
    block : float32 (frames, channels)
    """
    frames = block.shape[0]
    channels = block.shape[1]
    for c in range(channels):
        total = 0.0
        for n in range(frames):
            x = float(block[n, c])
            if np.isfinite(x):
                total += x * x
        accumulator[c] += total
    accumulator[channels] += frames
