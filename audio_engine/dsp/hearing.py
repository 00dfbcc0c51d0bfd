"""Hearing protection on the receive path: what the caller sends, before it reaches the ear.

:class:`HearingProtector` is one :class:`~audio_engine.dsp.base.Processor` with four stages,
all working in dB SPL at the ear through a :class:`~audio_engine.headset_profile.HeadsetProfile`
(sample value -> ear level), applied as one gain per frame (channels linked, so a stereo image
does not wander):

1. **Level control** (optional, slow): the active-speech level (1.5 s mean square, updated
   only while the caller is audible, measured after the anti-startle gain so a shock does not
   count as the caller's voice) is compared with the agent's comfortable level; a caller more
   than ``level_tolerance_db`` above it is brought down at <= 6 dB/s, and the gain is *held*
   through pauses, so it does not pump on every syllable. It never boosts.
2. **Anti-startle** (fast): a 1 ms RMS detector is compared with the running level (a slow
   log-domain average). A rise to more than ``startle_margin_db`` above the running level *and*
   above ``startle_threshold_db_spl`` (shouts, tones, squeals) is cut back to that bound within
   the lookahead; as the running level catches up (time constant 2 s) the reduction releases
   smoothly, handing a sustained sound over to the level control and the limit.
3. **Dose reduction** (very slow): past ``dose_warning_percent`` of the daily dose the level is
   lowered gently (0.5 dB/s) up to ``dose_max_reduction_db`` at 100 %, and events tell the agent.
4. **Hard limit** (brick wall with lookahead <= 2 ms): no output sample exceeds the peak of a
   sine at ``limit_db_spl`` (default 102 dB SPL, ACIF G616's anti-startle limit). The gain is a
   sliding minimum of the needed gain over the lookahead window, smoothed by a moving average of
   the same length, so the gain reaches its target *before* the loud sample leaves the delay
   line (it cannot overshoot: every term of the average is at most the gain that sample needs).

The A-weighted :class:`~audio_engine.dsp.dosimeter.Dosimeter` measures what leaves the limiter.
Limiting events (kind, start, duration, peak level, reduction) go into a preallocated
single-producer/single-consumer ring (:class:`EventRing`) that
:class:`audio_engine.hearing_log.HearingLog` drains from its own thread; the hot path never
touches a file.

Telemetry is a preallocated float64 array (:attr:`HearingProtector.telemetry`, indices
``T_*``), readable at any time without allocation; :meth:`HearingProtector.telemetry_summary`
gives a dict for the latency report.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from audio_engine.dsp.base import Processor, check_number
from audio_engine.dsp.dosimeter import Dosimeter
from audio_engine.errors import ConfigError
from audio_engine.headset_profile import HeadsetProfile, resolve_profile

#: ACIF G616:2006 anti-startle limit at the drum reference point, dB SPL (standards_tables.json,
#: headset_acoustic_safety.acif_g616_anti_startle_limit_db_spl_at_drp).
G616_LIMIT_DB_SPL = 102.0

#: The older telecom long-duration limit, dBA at the ERP (Poly/Plantronics Acoustic Safety paper).
TELECOM_LIMIT_DBA = 118.0

#: Largest lookahead allowed by the issue: 2 ms keeps the receive path's added delay inaudible
#: in conversation (ITU-T G.114 counts every millisecond of mouth-to-ear delay).
MAX_LOOKAHEAD_MS = 2.0

#: Digital full scale. A receive path decodes to integer PCM, so a sample beyond +-1.0 can only be
#: clipping or garbage (a float stage gone wrong, a driver's first buffers): the slow detectors
#: (level control, startle running level) take it as clipping at full scale.
FULL_SCALE = 1.0

#: The fast anti-startle detector measures up to 140 dB SPL at the ear and no further: the EU
#: exposure limit value for peak sound pressure (Directive 2003/10/EC, art. 3: 200 Pa, 140 dB(C)
#: re 20 uPa). Louder than that the cut to the startle bound is the deepest it ever needs to be
#: (about 50 dB); measuring 1e30 at face value would cut 600 dB and take seconds to release.
STARTLE_DETECTOR_MAX_DB_SPL = 140.0

#: Event kinds in the ring and the log.
EVENT_KINDS = {1: "limit", 2: "startle", 3: "loud_caller", 4: "dose_warning", 5: "dose_limit"}
KIND_LIMIT, KIND_STARTLE, KIND_LOUD_CALLER, KIND_DOSE_WARNING, KIND_DOSE_LIMIT = 1, 2, 3, 4, 5

#: Columns of an event record: kind, start sample, duration samples, peak dB SPL, reduction dB.
EVENT_FIELDS = ("kind", "start_sample", "duration_samples", "peak_db_spl", "max_reduction_db")

#: Telemetry slots (float64). Ear level is the sine-equivalent level of the output, 125 ms
#: exponential average (the "Fast" time weighting of IEC 61672-1).
T_EAR_LEVEL_DB_SPL = 0
T_GAIN_REDUCTION_DB = 1
T_DOSE_PERCENT = 2
T_LEVEL_CONTROL_DB = 3
T_STARTLE_DB = 4
T_LIMIT_DB = 5
T_DOSE_GAIN_DB = 6
T_LEX_8H_DBA = 7
T_MAX_EAR_PEAK_DB_SPL = 8
T_SIZE = 9

# Parameter slots of the kernel (float64 array built once in __init__).
_P_SENS = 0
_P_LIMIT_AMP = 1
_P_LC_ON = 2
_P_LC_FAST = 3
_P_LC_SLOW = 4
_P_LC_GATE_MS = 5
_P_LC_TARGET_DB = 6
_P_LC_MAX_DB = 7
_P_LC_DOWN_DB = 8
_P_LC_UP_DB = 9
_P_ST_ON = 10
_P_ST_ATTACK = 11
_P_ST_DECAY = 12
_P_ST_RUN_UP = 13
_P_ST_RUN_DOWN = 14
_P_ST_THRESHOLD_DB = 15
_P_ST_MARGIN_DB = 16
_P_ST_RELEASE = 17
_P_LIM_RELEASE = 18
_P_DOSE_WARN = 19
_P_DOSE_MAX_DB = 20
_P_DOSE_SLEW_DB = 21
_P_METER = 22
_P_FLOOR_DB = 23
_P_ST_MAX_AMP = 24
_P_FS_SQUARE_DB = 25
_P_SIZE = 26

# Float state slots.
_S_LC_FAST = 0
_S_LC_SLOW = 1
_S_LC_DB = 2
_S_ST_FAST = 3
_S_ST_RUN_DB = 4
_S_ST_DB = 5
_S_LIM_R = 6
_S_DOSE_DB = 7
_S_METER = 8
_S_EV_PEAK = 9  # 3 slots, one per kernel event kind
_S_EV_RED = 12  # 3 slots
_S_SIZE = 15

# Integer state slots.
_I_POS = 0
_I_SAMPLES = 1
_I_EV_ACTIVE = 2  # 3 slots
_I_EV_START = 5  # 3 slots
_I_EV_QUIET = 8  # 3 slots
_I_DOSE_WARNED = 11
_I_SIZE = 12

#: Event hysteresis per kernel kind (limit, startle, loud caller): a reduction above "on" opens
#: an event, one below "off" for "hold" seconds closes it, so one squeal is one event, not 50.
_EVENT_ON_DB = np.array([1.0, 3.0, 3.0])
_EVENT_OFF_DB = np.array([0.5, 0.5, 1.0])
_EVENT_HOLD_S = np.array([0.05, 0.1, 2.0])

#: Floor of the level detectors, dB SPL: below the threshold of hearing, so log(0) never occurs.
_FLOOR_DB_SPL = 0.0


def _one_pole(time_constant_s: float, sample_rate: int) -> float:
    """Coefficient of ``y += (x - y) * a`` with the given time constant."""
    return 1.0 - math.exp(-1.0 / (time_constant_s * sample_rate))


@njit(cache=True)
def _emit(events, event_count, kind, start, duration, peak_db, reduction_db):
    i = event_count[0] % events.shape[0]
    events[i, 0] = kind
    events[i, 1] = start
    events[i, 2] = duration
    events[i, 3] = peak_db
    events[i, 4] = reduction_db
    event_count[0] += 1


@njit(cache=True)
def _protect_kernel(
    out,
    block,
    delay,
    gain_ring,
    box_ring,
    frame,
    fstate,
    istate,
    params,
    events,
    event_count,
    event_on_db,
    event_off_db,
    event_hold,
    telemetry,
):
    """The whole protector, sample by sample. Real-time safe (no allocation).

    ``out``/``block``: (frames, channels) float32, may be the same array. ``delay``: (L+1,
    channels) float64 ring of pre-gained samples; ``gain_ring``/``box_ring``: (L+1,) float64
    rings of needed and released limiter gains; ``frame``: (channels,) float64 scratch.
    """
    frames = block.shape[0]
    channels = block.shape[1]
    size = delay.shape[0]
    sens = params[_P_SENS]
    a_lim = params[_P_LIMIT_AMP]
    floor_db = params[_P_FLOOR_DB]
    pos = istate[_I_POS]
    max_reduction = 0.0
    last_lim_db = 0.0

    # Dose: tell once at the warning level and once at the limit (re-armed when a new day
    # starts the dose from zero); set the slow gain target.
    dose = telemetry[T_DOSE_PERCENT]
    warn = params[_P_DOSE_WARN]
    if dose < warn:
        istate[_I_DOSE_WARNED] = 0
    elif dose < 100.0 and istate[_I_DOSE_WARNED] > 1:
        istate[_I_DOSE_WARNED] = 1
    if dose >= warn and istate[_I_DOSE_WARNED] < 1:
        istate[_I_DOSE_WARNED] = 1
        _emit(events, event_count, 4, istate[_I_SAMPLES], 0, dose, 0.0)
    if dose >= 100.0 and istate[_I_DOSE_WARNED] < 2:
        istate[_I_DOSE_WARNED] = 2
        _emit(events, event_count, 5, istate[_I_SAMPLES], 0, dose, 0.0)
    dose_target_db = 0.0
    if dose > warn and warn < 100.0:
        frac = (dose - warn) / (100.0 - warn)
        if frac > 1.0:
            frac = 1.0
        dose_target_db = -params[_P_DOSE_MAX_DB] * frac

    for n in range(frames):
        # Loudest channel drives the linked detectors; non-finite input becomes silence.
        peak = 0.0
        for c in range(channels):
            v = np.float64(block[n, c])
            if not math.isfinite(v):
                v = 0.0
            frame[c] = v
            a = abs(v)
            if a > peak:
                peak = a
        # Beyond full scale the slow detectors see clipping and the fast startle detector at
        # most 140 dB SPL (FULL_SCALE, STARTLE_DETECTOR_MAX_DB_SPL): at face value, 20 ms of
        # 1e30 (700 dB SPL) would fill their averages for minutes and leave the caller silent
        # long after the garbage stopped. The hard limit still acts on the true peak.
        fast_peak = peak if peak < params[_P_ST_MAX_AMP] else params[_P_ST_MAX_AMP]
        sq = fast_peak * fast_peak
        slow_peak = peak if peak < FULL_SCALE else FULL_SCALE
        sq_slow = slow_peak * slow_peak

        # 1. Slow level control, updated only while the caller is audible (no pumping).
        lc_db = fstate[_S_LC_DB]
        if params[_P_LC_ON] > 0.0:
            # The caller's level is measured after the anti-startle gain (of the sample
            # before): a shock that stage is cutting must not teach the slow stage that the
            # caller is 40 dB louder, or normal speech after it would be turned down for many
            # seconds while the average forgets.
            heard = sq_slow * 10.0 ** (fstate[_S_ST_DB] / 10.0)
            fstate[_S_LC_FAST] += (heard - fstate[_S_LC_FAST]) * params[_P_LC_FAST]
            if fstate[_S_LC_FAST] > params[_P_LC_GATE_MS]:
                fstate[_S_LC_SLOW] += (heard - fstate[_S_LC_SLOW]) * params[_P_LC_SLOW]
                level = 10.0 * math.log10(2.0 * fstate[_S_LC_SLOW] + 1e-30) + sens
                target = params[_P_LC_TARGET_DB] - level
                if target > 0.0:
                    target = 0.0
                if target < -params[_P_LC_MAX_DB]:
                    target = -params[_P_LC_MAX_DB]
                if target < lc_db:
                    lc_db = max(target, lc_db - params[_P_LC_DOWN_DB])
                else:
                    lc_db = min(target, lc_db + params[_P_LC_UP_DB])
                fstate[_S_LC_DB] = lc_db
        g_lc_sq = 10.0 ** (lc_db / 10.0)

        # 2. Anti-startle: fast RMS against a floating bound above the running level.
        st_db = fstate[_S_ST_DB]
        if params[_P_ST_ON] > 0.0:
            u = sq * g_lc_sq
            coef = params[_P_ST_ATTACK] if u > fstate[_S_ST_FAST] else params[_P_ST_DECAY]
            fstate[_S_ST_FAST] += (u - fstate[_S_ST_FAST]) * coef
            fast_db = 10.0 * math.log10(2.0 * fstate[_S_ST_FAST] + 1e-30) + sens
            if fast_db < floor_db:
                fast_db = floor_db
            run = fstate[_S_ST_RUN_DB]
            # The running level is the caller's: at most a full-scale square wave (+3 dB).
            run_in = fast_db if fast_db < params[_P_FS_SQUARE_DB] else params[_P_FS_SQUARE_DB]
            coef = params[_P_ST_RUN_UP] if run_in > run else params[_P_ST_RUN_DOWN]
            run += (run_in - run) * coef
            fstate[_S_ST_RUN_DB] = run
            bound = max(params[_P_ST_THRESHOLD_DB], run + params[_P_ST_MARGIN_DB])
            target = bound - fast_db if fast_db > bound else 0.0
            if target < st_db:
                st_db = target
            else:
                st_db += (target - st_db) * params[_P_ST_RELEASE]
            fstate[_S_ST_DB] = st_db

        # 3. Dose: slew slowly to the block's target.
        dose_db = fstate[_S_DOSE_DB]
        step = params[_P_DOSE_SLEW_DB]
        if dose_target_db < dose_db:
            dose_db = max(dose_target_db, dose_db - step)
        elif dose_target_db > dose_db:
            dose_db = min(dose_target_db, dose_db + step)
        fstate[_S_DOSE_DB] = dose_db

        pre_db = lc_db + st_db + dose_db
        g_pre = 10.0 ** (pre_db / 20.0)

        # 4. Lookahead brick wall on the pre-gained signal.
        p = peak * g_pre
        need = 1.0 if p <= a_lim else a_lim / p
        for c in range(channels):
            delay[pos, c] = frame[c] * g_pre
        gain_ring[pos] = need
        hold = 1.0
        for k in range(size):
            if gain_ring[k] < hold:
                hold = gain_ring[k]
        r = fstate[_S_LIM_R]
        r += (1.0 - r) * params[_P_LIM_RELEASE]
        if hold < r:
            r = hold
        fstate[_S_LIM_R] = r
        box_ring[pos] = r
        total = 0.0
        for k in range(size):
            total += box_ring[k]
        gain = total / size
        oldest = pos + 1
        if oldest == size:
            oldest = 0
        out_peak = 0.0
        for c in range(channels):
            y = delay[oldest, c] * gain
            # Rounding guard only: the averaged gain already keeps |y| <= a_lim.
            if y > a_lim:
                y = a_lim
            elif y < -a_lim:
                y = -a_lim
            out[n, c] = y
            if abs(y) > out_peak:
                out_peak = abs(y)
        pos = oldest

        # Telemetry: Fast-weighted ear level, peak, reductions.
        fstate[_S_METER] += (out_peak * out_peak - fstate[_S_METER]) * params[_P_METER]
        lim_db = -20.0 * math.log10(gain) if gain < 1.0 else 0.0
        last_lim_db = lim_db
        reduction = lim_db - pre_db
        if reduction > max_reduction:
            max_reduction = reduction
        if out_peak > 0.0:
            peak_db = 20.0 * math.log10(out_peak) + sens
            if peak_db > telemetry[T_MAX_EAR_PEAK_DB_SPL]:
                telemetry[T_MAX_EAR_PEAK_DB_SPL] = peak_db

        # Events with hysteresis: limit, startle, loud caller.
        in_db = 20.0 * math.log10(fast_peak + 1e-30) + sens
        now = istate[_I_SAMPLES]
        for kind in range(3):
            if kind == 0:
                red = lim_db
            elif kind == 1:
                red = -st_db
            else:
                red = -lc_db
            if istate[_I_EV_ACTIVE + kind] == 0:
                if red > event_on_db[kind]:
                    istate[_I_EV_ACTIVE + kind] = 1
                    istate[_I_EV_START + kind] = now
                    istate[_I_EV_QUIET + kind] = 0
                    fstate[_S_EV_PEAK + kind] = in_db
                    fstate[_S_EV_RED + kind] = red
            else:
                if in_db > fstate[_S_EV_PEAK + kind] and red > event_off_db[kind]:
                    fstate[_S_EV_PEAK + kind] = in_db
                if red > fstate[_S_EV_RED + kind]:
                    fstate[_S_EV_RED + kind] = red
                if red < event_off_db[kind]:
                    istate[_I_EV_QUIET + kind] += 1
                    if istate[_I_EV_QUIET + kind] >= event_hold[kind]:
                        start = istate[_I_EV_START + kind]
                        _emit(
                            events,
                            event_count,
                            kind + 1,
                            start,
                            now - istate[_I_EV_QUIET + kind] - start + 1,
                            fstate[_S_EV_PEAK + kind],
                            fstate[_S_EV_RED + kind],
                        )
                        istate[_I_EV_ACTIVE + kind] = 0
                else:
                    istate[_I_EV_QUIET + kind] = 0
        istate[_I_SAMPLES] = now + 1

    istate[_I_POS] = pos
    telemetry[T_EAR_LEVEL_DB_SPL] = 10.0 * math.log10(2.0 * fstate[_S_METER] + 1e-30) + sens
    if telemetry[T_EAR_LEVEL_DB_SPL] < floor_db:
        telemetry[T_EAR_LEVEL_DB_SPL] = floor_db
    telemetry[T_GAIN_REDUCTION_DB] = max_reduction
    telemetry[T_LEVEL_CONTROL_DB] = fstate[_S_LC_DB]
    telemetry[T_STARTLE_DB] = fstate[_S_ST_DB]
    telemetry[T_LIMIT_DB] = -last_lim_db
    telemetry[T_DOSE_GAIN_DB] = fstate[_S_DOSE_DB]


class EventRing:
    """Single-producer/single-consumer ring of limiting events (preallocated).

    The audio thread (the kernel) writes a record and then advances :attr:`count`; the
    consumer (:class:`audio_engine.hearing_log.HearingLog`'s thread) reads records between its
    own cursor and ``count``. No lock: each side writes only its own cursor. If the consumer
    falls more than ``capacity`` events behind, the oldest are overwritten and counted as lost.

    Parameters
    ----------
    capacity : int
        Records kept (a record is 5 float64: :data:`EVENT_FIELDS`).
    """

    def __init__(self, capacity: int = 1024) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not capacity >= 8:
            raise ConfigError(f"capacity={capacity!r} is not an integer >= 8")
        self.records = np.zeros((capacity, len(EVENT_FIELDS)), np.float64)
        self.count = np.zeros(1, np.int64)
        self._read = 0
        self.lost = 0

    @property
    def capacity(self) -> int:
        """Records the ring holds."""
        return self.records.shape[0]

    def drain(self) -> list[dict]:
        """Events written since the last drain, oldest first (consumer side; allocates)."""
        written = int(self.count[0])
        start = max(self._read, written - self.capacity)
        self.lost += start - self._read
        found = []
        for i in range(start, written):
            rec = self.records[i % self.capacity]
            found.append(
                {
                    "kind": EVENT_KINDS.get(int(rec[0]), "unknown"),
                    "start_sample": int(rec[1]),
                    "duration_samples": int(rec[2]),
                    "peak_db_spl": float(rec[3]),
                    "max_reduction_db": float(rec[4]),
                }
            )
        # A record may have been overwritten while copied if the ring lapped us; re-check.
        if int(self.count[0]) - start > self.capacity:
            overrun = int(self.count[0]) - self.capacity - start
            self.lost += overrun
            found = found[overrun:]
        self._read = written
        return found

    def reset(self) -> None:
        """Forget every event (not real-time safe while a consumer runs)."""
        self.records.fill(0.0)
        self.count[0] = 0
        self._read = 0
        self.lost = 0


class HearingProtector(Processor):
    """Anti-startle limiter, slow level control, dose reduction and hard limit, in dB SPL.

    Parameters
    ----------
    sample_rate : int
        Hz, one of :data:`~audio_engine.dsp.base.SUPPORTED_SAMPLE_RATES`. (The dosimeter's
        A-weighting is class 1 only at 44.1 and 48 kHz.)
    block_size : int
        Largest block in frames.
    channels : int
        Channels of the receive path (1 mono headset, 2 stereo); the gain is linked.
    profile : HeadsetProfile or str, optional
        The headset (or a profile name/path); default the generic USB office example.
    limit_db_spl : float
        Hard limit, dB SPL at the ear: no sample exceeds the peak of a sine at this level.
        60..118 (G616 102 by default; 118 dBA is the older telecom ceiling).
    lookahead_ms : float
        0..2 ms. The added delay of the receive path (``latency_samples``).
    limit_release_ms : float
        Limiter release time constant, 10..2000 ms.
    startle : bool
        Enable the anti-startle stage.
    startle_margin_db : float
        A sudden rise more than this above the running level is cut back to it (6..40 dB).
    startle_threshold_db_spl : float
        Anti-startle never acts below this ear level (70..110 dB SPL), so normal speech onsets
        after a silence pass untouched.
    startle_release_ms : float
        Release time constant of the anti-startle gain (20..5000 ms).
    level_control : bool
        Enable the slow level control for shouting callers.
    comfort_level_db_spl : float
        Agent's comfortable active-speech level at the ear (50..95 dB SPL). ITU-T P.800 listens
        at 79 dB SPL at the ERP; 75 dB SPL is the default.
    level_tolerance_db : float
        The level control acts only above ``comfort + tolerance`` and brings the caller down to
        there (0..20 dB).
    level_max_reduction_db : float
        Most the level control takes away (0..40 dB).
    dosimeter : bool
        Measure the A-weighted dose at the ear and reduce gently near the limit.
    dose_limit_dba : float
        LEX,8h counted as 100 % dose (2003/10/EC action values 80 and 85 dB(A); default 85).
    dose_warning_percent : float
        Dose at which the agent is told and the gentle reduction starts (1..100).
    dose_max_reduction_db : float
        Reduction reached at 100 % dose (0..20 dB).
    event_capacity : int
        Size of the event ring drained by :class:`~audio_engine.hearing_log.HearingLog`.

    Notes
    -----
    :meth:`process` is real-time safe (Numba kernels compiled here; no allocation, no I/O), and
    ``block`` may be ``out``. NaN and Inf input samples are output as silence. Samples beyond
    digital full scale are limited like any other (the hard limit acts on the true peak), but
    the slow detectors take them as clipping at :data:`FULL_SCALE` and the anti-startle detector
    as at most :data:`STARTLE_DETECTOR_MAX_DB_SPL`, so garbage (1e3, 1e30) is forgotten within a
    second like a real squeal, instead of leaving the caller silent for tens of seconds. Latency is ``round(lookahead_ms * sample_rate / 1000)`` samples.

    Examples
    --------
    >>> import numpy as np
    >>> p = HearingProtector(48000, 480, 1, limit_db_spl=102.0)
    >>> x = np.ones((480, 1), np.float32)
    >>> p.process(x, x)
    >>> bool(np.abs(x).max() <= p.limit_amplitude)
    True
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        channels: int = 1,
        profile: HeadsetProfile | str | None = None,
        limit_db_spl: float = G616_LIMIT_DB_SPL,
        lookahead_ms: float = 1.5,
        limit_release_ms: float = 150.0,
        startle: bool = True,
        startle_margin_db: float = 15.0,
        startle_threshold_db_spl: float = 90.0,
        startle_release_ms: float = 300.0,
        level_control: bool = True,
        comfort_level_db_spl: float = 75.0,
        level_tolerance_db: float = 5.0,
        level_max_reduction_db: float = 20.0,
        dosimeter: bool = True,
        dose_limit_dba: float = 85.0,
        dose_warning_percent: float = 80.0,
        dose_max_reduction_db: float = 6.0,
        event_capacity: int = 1024,
    ) -> None:
        super().__init__(sample_rate, block_size, channels)
        self.profile = resolve_profile(profile)
        self.limit_db_spl = check_number("limit_db_spl", limit_db_spl, 60.0, TELECOM_LIMIT_DBA)
        self.lookahead_ms = check_number("lookahead_ms", lookahead_ms, 0.0, MAX_LOOKAHEAD_MS)
        release = check_number("limit_release_ms", limit_release_ms, 10.0, 2000.0)
        margin = check_number("startle_margin_db", startle_margin_db, 6.0, 40.0)
        threshold = check_number("startle_threshold_db_spl", startle_threshold_db_spl, 70.0, 110.0)
        st_release = check_number("startle_release_ms", startle_release_ms, 20.0, 5000.0)
        comfort = check_number("comfort_level_db_spl", comfort_level_db_spl, 50.0, 95.0)
        tolerance = check_number("level_tolerance_db", level_tolerance_db, 0.0, 20.0)
        lc_max = check_number("level_max_reduction_db", level_max_reduction_db, 0.0, 40.0)
        warn = check_number("dose_warning_percent", dose_warning_percent, 1.0, 100.0)
        dose_max = check_number("dose_max_reduction_db", dose_max_reduction_db, 0.0, 20.0)
        self.startle = bool(startle)
        self.level_control = bool(level_control)
        self.comfort_level_db_spl = comfort
        self.level_tolerance_db = tolerance
        self._lookahead = int(round(self.lookahead_ms * self.sample_rate / 1000.0))
        fs = self.sample_rate
        sens = self.profile.sensitivity_db_spl

        p = np.zeros(_P_SIZE, np.float64)
        p[_P_SENS] = sens
        p[_P_LIMIT_AMP] = self.profile.amplitude_for_db_spl(self.limit_db_spl)
        p[_P_LC_ON] = 1.0 if self.level_control else 0.0
        p[_P_LC_FAST] = _one_pole(0.05, fs)
        p[_P_LC_SLOW] = _one_pole(1.5, fs)
        # Audible-caller gate 25 dB under the comfortable level (mean square of a sine there).
        p[_P_LC_GATE_MS] = 0.5 * 10.0 ** ((comfort - 25.0 - sens) / 10.0)
        p[_P_LC_TARGET_DB] = comfort + tolerance
        p[_P_LC_MAX_DB] = lc_max
        p[_P_LC_DOWN_DB] = 6.0 / fs  # dB per sample: 6 dB/s down
        p[_P_LC_UP_DB] = 3.0 / fs  # 3 dB/s back up, only while the caller speaks
        p[_P_ST_ON] = 1.0 if self.startle else 0.0
        p[_P_ST_ATTACK] = _one_pole(0.001, fs)
        p[_P_ST_DECAY] = _one_pole(0.03, fs)
        p[_P_ST_RUN_UP] = _one_pole(2.0, fs)
        p[_P_ST_RUN_DOWN] = _one_pole(4.0, fs)
        p[_P_ST_THRESHOLD_DB] = threshold
        p[_P_ST_MARGIN_DB] = margin
        p[_P_ST_RELEASE] = _one_pole(st_release / 1000.0, fs)
        p[_P_LIM_RELEASE] = _one_pole(release / 1000.0, fs)
        p[_P_DOSE_WARN] = warn
        p[_P_DOSE_MAX_DB] = dose_max
        p[_P_DOSE_SLEW_DB] = 0.5 / fs  # 0.5 dB/s: gentle enough not to be noticed as a step
        p[_P_METER] = _one_pole(0.125, fs)
        p[_P_FLOOR_DB] = _FLOOR_DB_SPL
        p[_P_ST_MAX_AMP] = max(
            FULL_SCALE, self.profile.amplitude_for_db_spl(STARTLE_DETECTOR_MAX_DB_SPL)
        )
        # Level of a full-scale square wave in the detectors' sine-equivalent dB SPL.
        p[_P_FS_SQUARE_DB] = sens + 10.0 * math.log10(2.0 * FULL_SCALE * FULL_SCALE)
        self._params = p

        size = self._lookahead + 1
        self._delay = np.zeros((size, self.channels), np.float64)
        self._gain_ring = np.ones(size, np.float64)
        self._box_ring = np.ones(size, np.float64)
        self._frame = np.zeros(self.channels, np.float64)
        self._fstate = np.zeros(_S_SIZE, np.float64)
        self._istate = np.zeros(_I_SIZE, np.int64)
        self._event_on = _EVENT_ON_DB.copy()
        self._event_off = _EVENT_OFF_DB.copy()
        self._event_hold = np.round(_EVENT_HOLD_S * fs).astype(np.int64)
        self.events = EventRing(event_capacity)
        #: Live figures, float64, indices ``T_*``: read them in place from any thread.
        self.telemetry = np.zeros(T_SIZE, np.float64)
        self.dosimeter = (
            Dosimeter(fs, block_size, self.channels, self.profile, dose_limit_dba=dose_limit_dba)
            if dosimeter
            else None
        )
        self._clear_state()
        warm = np.zeros((1, self.channels), np.float32)
        self._process(warm, warm)
        self._clear_state()
        self.events.reset()
        if self.dosimeter is not None:
            self.dosimeter.reset()

    # -- properties ---------------------------------------------------------------------------
    @property
    def latency_samples(self) -> int:
        return self._lookahead

    @property
    def limit_amplitude(self) -> float:
        """Largest output sample magnitude: the peak of a sine at ``limit_db_spl``."""
        return float(self._params[_P_LIMIT_AMP])

    @property
    def ear_level_db_spl(self) -> float:
        """Current ear level (Fast, sine-equivalent dB SPL) of the output."""
        return float(self.telemetry[T_EAR_LEVEL_DB_SPL])

    @property
    def gain_reduction_db(self) -> float:
        """Largest total gain reduction in the last block, dB (>= 0)."""
        return float(self.telemetry[T_GAIN_REDUCTION_DB])

    @property
    def dose_percent(self) -> float:
        """Daily dose so far, % of ``dose_limit_dba`` over 8 h (0 without a dosimeter)."""
        return float(self.telemetry[T_DOSE_PERCENT])

    @property
    def samples_processed(self) -> int:
        """Samples since the last reset: the clock of event ``start_sample``."""
        return int(self._istate[_I_SAMPLES])

    # -- processor ----------------------------------------------------------------------------
    def _clear_state(self) -> None:
        self._delay.fill(0.0)
        self._gain_ring.fill(1.0)
        self._box_ring.fill(1.0)
        self._fstate.fill(0.0)
        self._istate.fill(0)
        self._fstate[_S_LIM_R] = 1.0
        # Start the running level at the comfortable level so the first word is not "sudden".
        self._fstate[_S_ST_RUN_DB] = self.comfort_level_db_spl
        self.telemetry.fill(0.0)

    def reset(self) -> None:
        """Clear detectors, delay line, events and the dosimeter's accumulated energy."""
        self._clear_state()
        self.events.reset()
        if self.dosimeter is not None:
            self.dosimeter.reset()

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        _protect_kernel(
            out,
            block,
            self._delay,
            self._gain_ring,
            self._box_ring,
            self._frame,
            self._fstate,
            self._istate,
            self._params,
            self.events.records,
            self.events.count,
            self._event_on,
            self._event_off,
            self._event_hold,
            self.telemetry,
        )
        if self.dosimeter is not None:
            self.dosimeter.accumulate(out)
            self.dosimeter.write_telemetry(self.telemetry, T_DOSE_PERCENT, T_LEX_8H_DBA)

    def open_events(self) -> list[dict]:
        """Events still in progress (not yet in the ring), as :meth:`EventRing.drain` gives them.

        Not real-time safe; read from another thread the figures may be one sample stale.
        """
        found = []
        now = int(self._istate[_I_SAMPLES])
        for kind in range(3):
            if self._istate[_I_EV_ACTIVE + kind]:
                start = int(self._istate[_I_EV_START + kind])
                found.append(
                    {
                        "kind": EVENT_KINDS[kind + 1],
                        "start_sample": start,
                        "duration_samples": now - start,
                        "peak_db_spl": float(self._fstate[_S_EV_PEAK + kind]),
                        "max_reduction_db": float(self._fstate[_S_EV_RED + kind]),
                    }
                )
        return found

    def telemetry_summary(self) -> dict:
        """Figures for the latency report (not real-time safe: builds a dict)."""
        t = self.telemetry
        summary = {
            "hearing_profile": self.profile.name,
            "hearing_profile_measured": self.profile.measured,
            "hearing_limit_db_spl": self.limit_db_spl,
            "hearing_ear_level_db_spl": round(float(t[T_EAR_LEVEL_DB_SPL]), 1),
            "hearing_max_ear_peak_db_spl": round(float(t[T_MAX_EAR_PEAK_DB_SPL]), 1),
            "hearing_gain_reduction_db": round(float(t[T_GAIN_REDUCTION_DB]), 1),
            "hearing_events": int(self.events.count[0]),
        }
        if self.dosimeter is not None:
            summary["hearing_dose_percent"] = round(float(t[T_DOSE_PERCENT]), 2)
            summary["hearing_lex_8h_dba"] = round(float(t[T_LEX_8H_DBA]), 1)
        return summary
