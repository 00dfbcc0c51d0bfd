"""Microphone-array beamformers steered to the agent's mouth, and the array capture stage.

Three processors, all on the :class:`~audio_engine.dsp.base.Processor` protocol:

:class:`ArrayInput`
    Device channels in, microphones out: picks each microphone's channel (the config's 1-based
    mapping), applies its trim and makes bad samples (NaN, Inf, huge) harmless.
:class:`DelayAndSumBeamformer`
    Time-domain delay-and-sum. Each microphone is delayed by a fractional number of samples
    with a 6-tap Lagrange interpolator (order 5, used around its centre, where its error is
    smallest: Laakso et al., "Splitting the unit delay", IEEE SP Magazine 13(1), 1996), so the
    target's direct path lines up across the array at every supported rate. Latency is a few
    samples (the array's largest target delay, rounded up, plus 2).
:class:`MvdrBeamformer`
    Minimum-variance distortionless-response beamformer in the short-time Fourier domain
    (Van Trees, *Optimum Array Processing*, 2002, ch. 6): per bin,
    ``w = R⁻¹d / (dᴴR⁻¹d)`` with ``d`` the target's free-field relative transfer function to
    the reference microphone and ``R`` the noise covariance, tracked recursively in frames
    where the target is absent. Target presence is decided per frame by the transient
    beam-to-reference ratio (Cohen, "Multichannel post-filtering in nonstationary noise
    environments", IEEE Trans. SP 52(5), 2004): a target raises the power in the fixed beam
    much more than in the target-blocking residual; a new interferer raises both. While the
    agent talks, the bins that fail the same test still train ``R`` (speech is sparse in
    time and frequency). Diagonal loading keeps the white-noise gain bounded (Cox, Zeskind &
    Owen, IEEE Trans. ASSP 35(10), 1987). A self-calibration folds the capsules' sensitivity
    errors, measured from the noise field, into ``d``: an MVDR's constraint is only as good
    as its model of the target, and 2 dB of capsule mismatch otherwise cancels much of the
    agent. Latency is one STFT frame.

Both beamformers are distortionless for the target's direct path at the *reference
microphone* (the one closest to the mouth): with the latency compensated, the output's target
lines up sample for sample with that microphone's. Both can expose a noise reference (the
reference microphone minus the fixed beam's target estimate) as a second output channel.

:func:`build_array_pipeline` chains capture, beamformer and the suppressor as post-filter.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numba import njit

from audio_engine.array_config import ArrayConfig
from audio_engine.dsp.base import Processor, check_channels
from audio_engine.errors import ConfigError

#: Samples beyond digital full scale are clamped to it (they can only be clipping or garbage);
#: NaN becomes 0. Keeps one bad block from poisoning the covariance or the filter state: at the
#: former 1e3 (60 dB over full scale) the MVDR came out 16 dB loud for 2 s after it.
SAMPLE_LIMIT = 1.0

#: Lagrange interpolator order: 6 taps, used with its fractional delay in [2, 3) (centred).
LAGRANGE_ORDER = 5

#: Largest capsule sensitivity error the MVDR's self-calibration corrects, as an amplitude
#: ratio: 6 dB, twice the +-3 dB production spread of common MEMS capsules (datasheets give
#: +-1 dB for matched parts, +-3 dB for others); a larger difference is a fault, not a spread.
MAX_CALIBRATION_CORRECTION = 10.0 ** (6.0 / 20.0)

#: Band the MVDR's target-presence statistic is computed over, Hz: the telephone band, where
#: speech has its power and a small desk array still resolves direction.
PRESENCE_BAND_HZ = (300.0, 3400.0)


# -- kernels --------------------------------------------------------------------------------------
@njit(cache=True)
def _clean(value: float) -> float:
    if value != value:
        return 0.0
    if value > SAMPLE_LIMIT:
        return SAMPLE_LIMIT
    if value < -SAMPLE_LIMIT:
        return -SAMPLE_LIMIT
    return value


@njit(cache=True)
def _map_channels(out, block, source_channels, gains):
    """out[t, m] = gains[m] * block[t, source_channels[m]], cleaned."""
    for t in range(block.shape[0]):
        for m in range(source_channels.shape[0]):
            out[t, m] = _clean(block[t, source_channels[m]]) * gains[m]


@njit(cache=True)
def _delay_and_sum(out, history, block, offsets, taps, weights, history_len, reference_mic):
    """Fractional-delay and sum ``block`` (frames, mics) into ``out[:, 0]``; keep history.

    ``history`` (history_len + block_size, mics) holds the last ``history_len`` input frames
    followed by room for this block. Microphone m is delayed by ``offsets[m]`` whole samples and
    the Lagrange interpolator ``taps[m]``. If ``out`` has two columns, the second gets the
    noise reference: the reference microphone, delayed like the beam, minus the beam.
    """
    frames = block.shape[0]
    mics = block.shape[1]
    ntaps = taps.shape[1]
    for t in range(frames):
        for m in range(mics):
            history[history_len + t, m] = _clean(block[t, m])
    for t in range(frames):
        beam = 0.0
        reference = 0.0
        for m in range(mics):
            base = history_len + t - offsets[m]
            acc = 0.0
            for k in range(ntaps):
                acc += taps[m, k] * history[base - k, m]
            beam += weights[m] * acc
            if m == reference_mic:
                reference = acc
        out[t, 0] = beam
        if out.shape[1] > 1:
            out[t, 1] = reference - beam
    for i in range(history_len):
        for m in range(mics):
            history[i, m] = history[frames + i, m]


@njit(cache=True)
def _stage_input(frame_in, block, start):
    """Write ``block`` (frames, mics), cleaned, into ``frame_in`` from row ``start``."""
    for t in range(block.shape[0]):
        for m in range(block.shape[1]):
            frame_in[start + t, m] = _clean(block[t, m])


@njit(cache=True)
def _copy_ready(out, ready, start):
    """out[t] = ready[start + t] (the finished output of the previous frame)."""
    for t in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[t, c] = ready[start + t, c]


@njit(cache=True)
def _window_frame(frame, frame_in, window):
    for t in range(frame.shape[0]):
        for m in range(frame.shape[1]):
            frame[t, m] = frame_in[t, m] * window[t]


@njit(cache=True)
def _overlap_add(ready, ola, frame_in, frame_out, window, hop):
    """Window and add the synthesised frame, move the finished hop to ``ready``, shift state."""
    n = ola.shape[0]
    channels = ola.shape[1]
    for t in range(n):
        for c in range(channels):
            value = ola[t, c] + frame_out[t, c] * window[t]
            # A finite input cannot give a non-finite output; guard the output anyway.
            ola[t, c] = value if abs(value) <= 1e6 else 0.0
    for t in range(hop):
        for c in range(channels):
            ready[t, c] = ola[t, c]
    for t in range(n - hop):
        for c in range(channels):
            ola[t, c] = ola[t + hop, c]
        for m in range(frame_in.shape[1]):
            frame_in[t, m] = frame_in[t + hop, m]
    for t in range(n - hop, n):
        for c in range(channels):
            ola[t, c] = 0.0


@njit(cache=True)
def _solve_small(a, b, x):
    """Solve a x = b for a small dense complex matrix (mics x mics) by Gaussian elimination
    with partial pivoting; ``a`` and ``b`` are overwritten. Returns False if ``a`` is singular.
    At 2..8 microphones this is cheaper than a LAPACK call per bin and allocates nothing."""
    n = a.shape[0]
    for col in range(n):
        pivot = col
        best = abs(a[col, col])
        for r in range(col + 1, n):
            if abs(a[r, col]) > best:
                best = abs(a[r, col])
                pivot = r
        if best == 0.0 or best != best:
            return False
        if pivot != col:
            for c in range(n):
                tmp = a[col, c]
                a[col, c] = a[pivot, c]
                a[pivot, c] = tmp
            tmp = b[col]
            b[col] = b[pivot]
            b[pivot] = tmp
        inv = 1.0 / a[col, col]
        for r in range(col + 1, n):
            f = a[r, col] * inv
            if f != 0.0:
                for c in range(col, n):
                    a[r, c] -= f * a[col, c]
                b[r] -= f * b[col]
    for r in range(n - 1, -1, -1):
        acc = b[r]
        for c in range(r + 1, n):
            acc -= a[r, c] * x[c]
        x[r] = acc / a[r, r]
    return True


@njit(cache=True)
def _mvdr_frame(
    out_spec,
    spec,
    steering,
    covariance,
    weights,
    scratch_a,
    scratch_b,
    scratch_x,
    state,
    smoothing,
    loading,
    presence_threshold,
    band_low,
    band_high,
    reference_mic,
    bin_ratio,
    bin_threshold,
    geometric,
    channel_power,
    correction,
    frame_power,
    calibration_smoothing,
    max_correction,
):
    """One MVDR frame: decide target presence, track the noise covariance, beamform.

    out_spec : (bins, 1 or 2) complex128, written: the beam (and the noise reference).
    spec : (bins, mics) complex128, the frame's spectra.
    steering : (bins, mics) complex128, the target's relative transfer function.
    covariance : (bins, mics, mics) complex128, noise covariance state.
    weights : (bins, mics) complex128, beamformer weights state.
    state : float64 array: [0] frames left in the start-up phase (every frame trains), [1] last
    presence statistic, [2] 1.0 if the last frame was judged target-present, [3] start-up
    length in frames, [4] frames processed, [5] frames judged target-present, [6] frames
    that trained the calibration.
    bin_ratio : (bins,) float64 scratch: each bin's beam-to-reference ratio this frame.
    bin_threshold : bins below it train the noise covariance even in target frames.
    geometric : (bins, mics) complex128, the free-field relative transfer function; ``steering``
    is it times the capsules' relative sensitivity corrections (written when calibrating).
    channel_power : (mics,) in-band noise power per capsule (state); correction : (mics,)
    sensitivity estimate (written); frame_power : (mics,) scratch. ``calibration_smoothing``
    1.0 turns calibration off; corrections are clamped to 1/max_correction..max_correction
    (amplitude).
    """
    bins = spec.shape[0]
    mics = spec.shape[1]
    # Transient beam-to-reference ratio, per bin and summed over the presence band.
    beam_sum = 0.0
    residual_sum = 0.0
    for k in range(bins):
        dhx = 0.0j
        dd = 0.0
        for m in range(mics):
            dhx += steering[k, m].conjugate() * spec[k, m]
            dd += steering[k, m].real ** 2 + steering[k, m].imag ** 2
        dhrd = 0.0
        trace = 0.0
        for i in range(mics):
            trace += covariance[k, i, i].real
            row = 0.0j
            for j in range(mics):
                row += covariance[k, i, j] * steering[k, j]
            dhrd += (steering[k, i].conjugate() * row).real
        beam_power = (dhx.real**2 + dhx.imag**2) / dd
        residual_power = 0.0
        scale = dhx / dd
        for m in range(mics):
            e = spec[k, m] - steering[k, m] * scale
            residual_power += e.real**2 + e.imag**2
        noise_beam = dhrd / dd
        noise_residual = trace - noise_beam
        beam_ratio = beam_power / max(noise_beam, 1e-20)
        residual_ratio = residual_power / max(noise_residual, 1e-20)
        bin_ratio[k] = beam_ratio / max(residual_ratio, 1e-20)
        if band_low <= k < band_high:
            beam_sum += beam_ratio
            residual_sum += residual_ratio
    statistic = beam_sum / max(residual_sum, 1e-20)
    state[1] = statistic
    starting = state[0] > 0.0
    present = (not starting) and statistic > presence_threshold
    state[2] = 1.0 if present else 0.0
    state[4] += 1.0
    state[5] += 1.0 if present else 0.0
    if starting:
        state[0] -= 1.0
        # Start-up: the plain mean of the frames so far (a fast, unbiased start), then tracking.
        alpha = 1.0 - 1.0 / (state[3] - state[0])
    else:
        alpha = smoothing
    if calibration_smoothing < 1.0 and not present:
        # Capsule self-calibration: in a diffuse noise field every capsule hears the same power,
        # so slow differences of in-band noise power are sensitivity mismatch. They go into the
        # model (the steering vector), so the distortionless constraint matches the real target.
        frame_mean = 0.0
        for m in range(mics):
            power = 0.0
            for k in range(band_low, band_high):
                power += spec[k, m].real ** 2 + spec[k, m].imag ** 2
            frame_power[m] = power
            frame_mean += power / mics
        # A frame where a capsule is further off than any correction allows is a fault or a
        # transient at one capsule (a knock, a clipped burst), not sensitivity: it is skipped.
        usable = frame_mean > 0.0
        for m in range(mics):
            ratio = frame_power[m] / max(frame_mean, 1e-30)
            if not max_correction**-2 <= ratio <= max_correction**2:
                usable = False
        mean_power = 0.0
        if usable:
            state[6] += 1.0
            beta = min(calibration_smoothing, 1.0 - 1.0 / state[6])
            for m in range(mics):
                channel_power[m] = beta * channel_power[m] + (1.0 - beta) * frame_power[m]
                mean_power += channel_power[m] / mics
        if mean_power > 0.0:
            for m in range(mics):
                correction[m] = min(
                    max((channel_power[m] / mean_power) ** 0.5, 1.0 / max_correction),
                    max_correction,
                )
            for m in range(mics):
                relative = correction[m] / correction[reference_mic]
                for k in range(bins):
                    steering[k, m] = geometric[k, m] * relative
    for k in range(bins):
        # Speech is sparse in time and frequency: while the agent talks, bins where the beam
        # holds no more than the noise would put there still train the noise covariance.
        if present and not bin_ratio[k] < bin_threshold:
            continue
        trace = 0.0
        for i in range(mics):
            xi = spec[k, i]
            for j in range(mics):
                covariance[k, i, j] = alpha * covariance[k, i, j] + (1.0 - alpha) * (
                    xi * spec[k, j].conjugate()
                )
            trace += covariance[k, i, i].real
        diagonal = loading * trace / mics + 1e-12
        for i in range(mics):
            for j in range(mics):
                scratch_a[i, j] = covariance[k, i, j]
            scratch_a[i, i] += diagonal
            scratch_b[i] = steering[k, i]
        if _solve_small(scratch_a, scratch_b, scratch_x):
            denominator = 0.0j
            for m in range(mics):
                denominator += steering[k, m].conjugate() * scratch_x[m]
            if abs(denominator) > 1e-30:
                for m in range(mics):
                    weights[k, m] = scratch_x[m] / denominator.conjugate()
    for k in range(bins):
        y = 0.0j
        dhx = 0.0j
        dd = 0.0
        for m in range(mics):
            y += weights[k, m].conjugate() * spec[k, m]
            dhx += steering[k, m].conjugate() * spec[k, m]
            dd += steering[k, m].real ** 2 + steering[k, m].imag ** 2
        out_spec[k, 0] = y
        if out_spec.shape[1] > 1:
            out_spec[k, 1] = spec[k, reference_mic] - steering[k, reference_mic] * dhx / dd


# -- processors -----------------------------------------------------------------------------------
def _needs_target(config: ArrayConfig, who: str) -> tuple[np.ndarray, np.ndarray, int]:
    if not isinstance(config, ArrayConfig):
        raise ConfigError(f"{who} needs an ArrayConfig, got {type(config).__name__}")
    if config.mics < 2:
        raise ConfigError(
            f"{who}: array {config.name!r} has {config.mics} microphone; a beamformer needs 2..64"
        )
    return config.target_arrivals()


class ArrayInput(Processor):
    """Capture stage: device channels in, the array's microphones out, trimmed and cleaned.

    Parameters
    ----------
    sample_rate, block_size : int
        As every processor.
    config : ArrayConfig
        Mapping (1-based device channels) and per-microphone ``gain_db``.
    input_channels : int, optional
        Channels the device (or file) delivers. ``None`` means one channel per microphone in
        microphone order (a multichannel file), and only the trims apply.

    Notes
    -----
    ``channels = input_channels``, ``output_channels = config.mics``. Real-time safe. NaN
    samples become 0 and magnitudes are clamped to :data:`SAMPLE_LIMIT`.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        config: ArrayConfig,
        input_channels: int | None = None,
    ):
        if not isinstance(config, ArrayConfig):
            raise ConfigError(f"ArrayInput needs an ArrayConfig, got {type(config).__name__}")
        if input_channels is None:
            source = np.arange(config.mics)
            input_channels = config.mics
        else:
            input_channels = check_channels(input_channels, "input_channels")
            if max(config.device_channels) > input_channels:
                raise ConfigError(
                    f"array {config.name!r} maps a microphone to input channel "
                    f"{max(config.device_channels)}, but input_channels={input_channels}"
                )
            source = np.array(config.device_channels) - 1
        super().__init__(sample_rate, block_size, input_channels)
        self.output_channels = config.mics
        self.config = config
        self._source = source.astype(np.int64)
        self._gains = (10.0 ** (config.gains_db / 20.0)).astype(np.float32)
        _map_channels(
            np.zeros((1, config.mics), np.float32),
            np.zeros((1, input_channels), np.float32),
            self._source,
            self._gains,
        )

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        _map_channels(out, block, self._source, self._gains)


def lagrange_taps(delay_samples: float, order: int = LAGRANGE_ORDER) -> np.ndarray:
    """Lagrange fractional-delay FIR taps ``h[k] = prod_{i != k} (d - i) / (k - i)``.

    Parameters
    ----------
    delay_samples : float
        Delay ``d`` in samples; accurate for ``(order - 1) / 2 <= d <= (order + 1) / 2``.
    order : int
        Polynomial order; ``order + 1`` taps.

    Returns
    -------
    ndarray, shape (order + 1,), float64
        Sums to 1 (unit gain at DC); an integer ``d`` gives a unit impulse at ``d``.
    """
    k = np.arange(order + 1)
    taps = np.ones(order + 1)
    for i in range(order + 1):
        mask = k != i
        taps[mask] *= (delay_samples - i) / (k[mask] - i)
    return taps


class DelayAndSumBeamformer(Processor):
    """Time-domain delay-and-sum beamformer with Lagrange fractional delays.

    Parameters
    ----------
    sample_rate, block_size : int
        As every processor; any supported rate.
    config : ArrayConfig
        Geometry and target (mouth position or look direction); 2..64 microphones.
    noise_reference : bool
        If true, ``output_channels`` is 2 and the second channel is a noise reference (the
        reference microphone, aligned, minus the beam).

    Notes
    -----
    ``channels = config.mics``. Weights follow the target's direct-path amplitudes
    (``a_m / sum a²``), so the target at the reference microphone passes with unit gain
    and ``latency_samples`` (an integer) of delay. Real-time safe; ``block`` and ``out``
    must be different arrays. Input trims are :class:`ArrayInput`'s job, not this stage's.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        config: ArrayConfig,
        noise_reference: bool = False,
    ):
        delays_s, amplitudes, reference = _needs_target(config, "DelayAndSumBeamformer")
        super().__init__(sample_rate, block_size, config.mics)
        self.output_channels = 2 if noise_reference else 1
        self.config = config
        self.reference_mic = reference
        lead = (LAGRANGE_ORDER - 1) // 2
        # The reference is delayed by a whole number of samples; the others by less (they hear
        # the target later), so the reference's fractional part is exactly zero.
        self._latency = int(np.ceil(np.max(delays_s) * self.sample_rate - 1e-9)) + lead
        delays = self._latency - delays_s * self.sample_rate
        self._offsets = (np.floor(delays + 1e-9).astype(np.int64) - lead).clip(0)
        self._taps = np.array(
            [lagrange_taps(d - o) for d, o in zip(delays, self._offsets, strict=True)]
        )
        self._weights = amplitudes / np.sum(amplitudes**2)
        self._history_len = int(self._offsets.max()) + LAGRANGE_ORDER
        self._history = np.zeros((self._history_len + self.block_size, config.mics), np.float64)
        _delay_and_sum(
            np.zeros((1, self.output_channels), np.float32),
            np.zeros((self._history_len + 1, config.mics), np.float64),
            np.zeros((1, config.mics), np.float32),
            self._offsets,
            self._taps,
            self._weights,
            self._history_len,
            self.reference_mic,
        )

    @property
    def latency_samples(self) -> int:
        return self._latency

    def reset(self) -> None:
        self._history.fill(0.0)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        _delay_and_sum(
            out,
            self._history,
            block,
            self._offsets,
            self._taps,
            self._weights,
            self._history_len,
            self.reference_mic,
        )


class MvdrBeamformer(Processor):
    """Adaptive MVDR beamformer in the STFT domain with noise-covariance tracking.

    Parameters
    ----------
    sample_rate, block_size : int
        As every processor; any supported rate.
    config : ArrayConfig
        Geometry and target; 2..64 microphones.
    frame_s : float
        STFT frame length, s (0.008..0.128); hop is half a frame, square-root Hann windows.
        The latency is one frame.
    noise_time_constant_s : float
        Memory of the noise covariance while the target is absent, s (0.05..30). The default
        0.3 s spans a few syllables of a neighbour yet follows who is talking; in the simulated
        office of docs/arrays.md 0.15..1 s were within 0.6 dB of each other.
    diagonal_loading : float
        Loading added to the covariance diagonal, as a fraction of its mean power
        (0..10). More is more robust to steering errors and capsule mismatch, less nulls
        interferers deeper.
    presence_threshold : float
        Beam-to-reference ratio above which a frame counts as target speech (1..100).
    startup_s : float
        Time from start (or reset) during which every frame trains the covariance, s (0..10).
    bin_presence_threshold : float
        While the target talks, a bin whose own beam-to-reference ratio is below this still
        trains the noise covariance (0..100; 0 turns it off). The default applies the frame's
        test (``presence_threshold`` 2) to each bin; over five office scenes of
        docs/arrays.md it scored -0.04..+0.37 dB SI-SDR against 1.0 (median +0.09).
    calibration_time_constant_s : float or None
        Memory of the capsule self-calibration, s (1..600; None turns it off): in frames
        without the agent, each capsule's in-band noise power against the array's mean
        estimates its sensitivity error (a diffuse field is the same at every capsule), which
        the steering vector then includes, up to +-6 dB. It keeps the distortionless
        constraint true when capsules drift from their ``gain_db`` trims.
    noise_reference : bool
        If true, a second output channel carries the noise reference.

    Notes
    -----
    ``channels = config.mics``, ``output_channels = 1`` (2 with the noise reference).
    :meth:`process` is real-time safe: spectra go through ``numpy.fft`` with ``out=`` and a
    Numba kernel into buffers allocated here. ``presence`` and ``presence_statistic`` give the
    last frame's decision; :meth:`telemetry_summary` feeds the pipeline's latency report.
    ``block`` and ``out`` must be different arrays.
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        config: ArrayConfig,
        frame_s: float = 0.032,
        noise_time_constant_s: float = 0.3,
        diagonal_loading: float = 0.01,
        presence_threshold: float = 2.0,
        startup_s: float = 0.25,
        bin_presence_threshold: float = 2.0,
        calibration_time_constant_s: float | None = 10.0,
        noise_reference: bool = False,
    ):
        delays_s, amplitudes, reference = _needs_target(config, "MvdrBeamformer")
        super().__init__(sample_rate, block_size, config.mics)
        for key, value, low, high, unit in (
            ("frame_s", frame_s, 0.008, 0.128, "s"),
            ("noise_time_constant_s", noise_time_constant_s, 0.05, 30.0, "s"),
            ("diagonal_loading", diagonal_loading, 0.0, 10.0, "(fraction of mean power)"),
            ("presence_threshold", presence_threshold, 1.0, 100.0, "(power ratio)"),
            ("startup_s", startup_s, 0.0, 10.0, "s"),
            ("bin_presence_threshold", bin_presence_threshold, 0.0, 100.0, "(power ratio)"),
            (
                "calibration_time_constant_s",
                10.0 if calibration_time_constant_s is None else calibration_time_constant_s,
                1.0,
                600.0,
                "s (or None)",
            ),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not np.isfinite(value)
                or not low <= value <= high
            ):
                raise ConfigError(
                    f"{key}={value!r} is out of range; allowed {low:g}..{high:g} {unit}"
                )
        self.output_channels = 2 if noise_reference else 1
        self.config = config
        self.reference_mic = reference
        mics = config.mics
        frame = 2 * int(round(frame_s * self.sample_rate / 2.0))
        hop = frame // 2
        bins = frame // 2 + 1
        self.frame_size = frame
        self.hop_size = hop
        # Periodic Hann, square-rooted for analysis and synthesis: at half-frame hop the squared
        # windows sum to exactly 1, so the STFT round trip is the identity.
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame) / frame))
        frequencies_hz = np.arange(bins) * self.sample_rate / frame
        self._steering = (
            amplitudes[None, :] * np.exp(-2j * np.pi * frequencies_hz[:, None] * delays_s[None, :])
        ).astype(np.complex128)
        low_hz, high_hz = PRESENCE_BAND_HZ
        self._band = (
            int(np.ceil(low_hz * frame / self.sample_rate)),
            int(min(bins, np.floor(high_hz * frame / self.sample_rate) + 1)),
        )
        self._smoothing = float(np.exp(-hop / (noise_time_constant_s * self.sample_rate)))
        self._loading = float(diagonal_loading)
        self._threshold = float(presence_threshold)
        self._startup_frames = float(np.ceil(startup_s * self.sample_rate / hop))
        self._frame_in = np.zeros((frame, mics), np.float64)
        self._frame = np.zeros((frame, mics), np.float64)
        self._spec = np.zeros((bins, mics), np.complex128)
        self._out_spec = np.zeros((bins, self.output_channels), np.complex128)
        self._frame_out = np.zeros((frame, self.output_channels), np.float64)
        self._ola = np.zeros((frame, self.output_channels), np.float64)
        self._ready = np.zeros((hop, self.output_channels), np.float32)
        self._covariance = np.zeros((bins, mics, mics), np.complex128)
        self._weights = np.zeros((bins, mics), np.complex128)
        self._scratch_a = np.zeros((mics, mics), np.complex128)
        self._scratch_b = np.zeros(mics, np.complex128)
        self._scratch_x = np.zeros(mics, np.complex128)
        self._state = np.zeros(7, np.float64)
        self._geometric = self._steering.copy()
        self._channel_power = np.zeros(mics, np.float64)
        self._correction = np.ones(mics, np.float64)
        self._frame_power = np.zeros(mics, np.float64)
        self._calibration_smoothing = (
            1.0
            if calibration_time_constant_s is None
            else float(np.exp(-hop / (calibration_time_constant_s * self.sample_rate)))
        )
        self._bin_ratio = np.zeros(bins, np.float64)
        self._bin_threshold = float(bin_presence_threshold)
        self._fill = 0
        self.reset()
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile and exercise every kernel once, then return to the fresh state."""
        silence = np.zeros((1, self.channels), np.float32)
        out = np.zeros((1, self.output_channels), np.float32)
        for _ in range(self.hop_size):
            self._process(silence, out)
        self.reset()

    @property
    def latency_samples(self) -> int:
        return self.frame_size

    @property
    def presence(self) -> bool:
        """Whether the last STFT frame was judged to hold target speech."""
        return bool(self._state[2])

    @property
    def presence_statistic(self) -> float:
        """The last frame's beam-to-reference power ratio (1 for noise alone)."""
        return float(self._state[1])

    @property
    def sensitivity_correction_db(self) -> np.ndarray:
        """Each capsule's estimated sensitivity relative to the array mean, dB (mics,)."""
        return 20.0 * np.log10(self._correction)

    def telemetry_summary(self) -> dict:
        """Share of STFT frames judged to hold the agent's speech (the pipeline report's)."""
        frames = float(self._state[4])
        return {
            "beamformer_frames": int(frames),
            "beamformer_target_presence": round(float(self._state[5]) / max(frames, 1.0), 3),
        }

    def reset(self) -> None:
        for a in (
            self._frame_in,
            self._ola,
            self._ready,
            self._covariance,
            self._state,
        ):
            a.fill(0)
        # Until the covariance has data, the MVDR weights are the delay-and-sum weights.
        self._channel_power.fill(0.0)
        self._correction.fill(1.0)
        self._steering[:] = self._geometric
        norm = np.sum(np.abs(self._steering) ** 2, axis=1, keepdims=True)
        self._weights[:] = self._steering / norm
        self._state[0] = self._startup_frames
        self._state[3] = self._startup_frames
        self._fill = 0

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        frames = block.shape[0]
        hop = self.hop_size
        offset = self.frame_size - hop
        done = 0
        while done < frames:
            take = min(hop - self._fill, frames - done)
            _stage_input(self._frame_in, block[done : done + take], offset + self._fill)
            _copy_ready(out[done : done + take], self._ready, self._fill)
            self._fill += take
            done += take
            if self._fill == hop:
                self._fill = 0
                _window_frame(self._frame, self._frame_in, self._window)
                np.fft.rfft(self._frame, axis=0, out=self._spec)
                _mvdr_frame(
                    self._out_spec,
                    self._spec,
                    self._steering,
                    self._covariance,
                    self._weights,
                    self._scratch_a,
                    self._scratch_b,
                    self._scratch_x,
                    self._state,
                    self._smoothing,
                    self._loading,
                    self._threshold,
                    self._band[0],
                    self._band[1],
                    self.reference_mic,
                    self._bin_ratio,
                    self._bin_threshold,
                    self._geometric,
                    self._channel_power,
                    self._correction,
                    self._frame_power,
                    self._calibration_smoothing,
                    MAX_CALIBRATION_CORRECTION,
                )
                np.fft.irfft(self._out_spec, n=self.frame_size, axis=0, out=self._frame_out)
                _overlap_add(
                    self._ready, self._ola, self._frame_in, self._frame_out, self._window, hop
                )


BeamformerKind = Literal["mvdr", "delay-and-sum"]


def build_beamformer(
    kind: BeamformerKind,
    sample_rate: int,
    block_size: int,
    config: ArrayConfig,
    noise_reference: bool = False,
) -> Processor:
    """The beamformer named ``kind`` ("mvdr" or "delay-and-sum") with its default settings."""
    if kind == "mvdr":
        return MvdrBeamformer(sample_rate, block_size, config, noise_reference=noise_reference)
    if kind == "delay-and-sum":
        return DelayAndSumBeamformer(
            sample_rate, block_size, config, noise_reference=noise_reference
        )
    raise ConfigError(f"beamformer={kind!r} is not one of ['mvdr', 'delay-and-sum']")


def build_array_pipeline(
    config: ArrayConfig,
    sample_rate: int,
    block_size: int,
    attenuation_db: float | None = None,
    input_channels: int | None = None,
    beamformer: BeamformerKind = "mvdr",
):
    """Capture, beamformer and suppressor post-filter as one :class:`Pipeline`.

    Parameters
    ----------
    config : ArrayConfig
        The array (from :func:`audio_engine.array_config.load_array`).
    sample_rate, block_size : int
        Of the stream or file.
    attenuation_db : float or None
        The post-filter's ``attenuation_db``; ``None`` leaves the suppressor out
        (beamformer only, then bounded by a peak :class:`~audio_engine.dsp.safety.OutputCeiling`
        at 0 dBFS instead of the suppressor's output clamp).
    input_channels : int, optional
        Channels the device delivers (the array's 1-based mapping picks from them);
        ``None`` for a file with one channel per microphone, in microphone order.
    beamformer : {"mvdr", "delay-and-sum"}

    Returns
    -------
    Pipeline
        ``channels = input_channels or config.mics``, ``output_channels = 1``, named "array".
    """
    from audio_engine.pipeline import Pipeline

    stages = [
        ArrayInput(sample_rate, block_size, config, input_channels),
        build_beamformer(beamformer, sample_rate, block_size, config),
    ]
    if attenuation_db is not None:
        from audio_engine.dsp.suppressor import NoiseSuppressor

        # The suppressor ends in its own output clamp at +-1.0 (full scale).
        stages.append(
            NoiseSuppressor(sample_rate, block_size, channels=1, attenuation_db=attenuation_db)
        )
    else:
        from audio_engine.dsp.safety import OutputCeiling

        # Without the suppressor nothing else bounds the output: every path that can reach a
        # device ends in a bound (SAFETY.md, section 1), here a peak ceiling at full scale.
        stages.append(OutputCeiling(sample_rate, block_size, 1, ceiling_dbfs=0.0, mode="peak"))
    return Pipeline(stages, name="array")
