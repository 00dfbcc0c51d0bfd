"""Output safety in one place: no sequence of inputs and commands pushes an output past its bound.

Hypothesis state machines play facility staff, a calibration run, a softphone and a faulty
capture path against the real output stages at once, and check after every block:

* **masking** (:class:`~audio_engine.dsp.masking.MaskingGenerator` and the spectral
  :class:`~audio_engine.dsp.spectral_masking.SpectralMaskingGenerator`, whose last step is their
  :class:`~audio_engine.dsp.safety.OutputCeiling`): per zone, the output's *Fast* mean square
  (what a sound level meter at the calibrated listener position reads, tracked here
  independently of the engine, across every command, reset and restart) never rises while it
  is above the ceiling in force, ``ceiling_dba - spl_offset_db`` dBFS, and never crosses it
  from below; no sample exceeds the peak bound (ceiling + 15 dB crest, at most 0 dBFS);
* **headset send path** (the virtual microphone, ``build_headset_pipeline``): never above
  digital full scale, whatever the microphone delivers and however the attenuation and bypass
  are switched;
* **headset receive path** (the earpiece, :class:`~audio_engine.dsp.hearing.HearingProtector`):
  never above the peak of a sine at ``limit_db_spl`` at the ear, below full scale;
* every output sample is finite.

The ceiling in force is computed from the documented formula and the generator's public
settings, not read from the ceiling stage, so a command that forgot to move the ceiling fails.
Budget: ``AUDIO_ENGINE_FUZZ_EXAMPLES`` (default 10 runs of up to 40 steps per machine).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from scipy.signal import lfilter

from audio_engine.dsp.hearing import HearingProtector
from audio_engine.dsp.masking import MAX_CEILING_DBA, MaskingGenerator
from audio_engine.dsp.safety import DEFAULT_CREST_FACTOR_DB, FAST_TIME_CONSTANT_S
from audio_engine.dsp.spectral_masking import SpectralMaskingGenerator
from audio_engine.pipelines import build_headset_pipeline
from tests.signals import speech, white

SAMPLE_RATE = 16000
BLOCK_SIZE = 160
ZONES = 3
BANDS_HZ = [250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000]
TARGET_DB = [0.0, -0.5, -1.0, -1.7, -2.5, -3.3, -4.2, -5.0, -6.0, -7.0]

MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("AUDIO_ENGINE_FUZZ_EXAMPLES", "10")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Relative slack on the bounds: float32 output samples against float64 limits.
TOLERANCE = 1e-5

_generators: dict[type, MaskingGenerator] = {}


def shared_generator(kind: type = MaskingGenerator, **options) -> MaskingGenerator:
    """One generator of each kind for every run (building designs the spectra and warms the
    kernels); each run puts it back to the same settings with commands, as a restarted service
    would."""
    if kind not in _generators:
        _generators[kind] = kind(
            SAMPLE_RATE,
            BLOCK_SIZE,
            ZONES,
            BANDS_HZ,
            TARGET_DB,
            level_dba=42.0,
            ceiling_dba=48.0,
            spl_offset_db=85.0,
            ramp_s=1.0,
            fade_in_s=0.5,
            fade_out_s=0.5,
            **options,
        )
    return _generators[kind]


zones = st.integers(0, ZONES - 1)
levels_dba = st.floats(0.0, 140.0)
eq_curves = st.lists(st.floats(-20.0, 20.0), min_size=len(BANDS_HZ), max_size=len(BANDS_HZ))
offsets_db = st.floats(40.0, 140.0)
ceilings_dba = st.floats(0.0, MAX_CEILING_DBA)
frames = st.integers(1, BLOCK_SIZE)


class MaskingSafety(RuleBasedStateMachine):
    """Facility staff, calibration and restarts against the masking output's ceiling."""

    def generator(self) -> MaskingGenerator:
        return shared_generator()

    @initialize()
    def build(self):
        g = self.generator()
        for z in range(ZONES):
            g.set_zone_ceiling_dba(z, 48.0)
            g.set_zone_calibration(z, spl_offset_db=85.0, eq_db=[0.0] * len(BANDS_HZ))
            g.set_zone_level_dba(z, 42.0)
        g.reset()
        g.start()
        self.g = g
        self.alpha = float(np.exp(-1.0 / (FAST_TIME_CONSTANT_S * SAMPLE_RATE)))
        self.ms = np.zeros(ZONES)  # the listener's Fast mean square, never reset by the engine
        self.out = np.zeros((BLOCK_SIZE * 8, ZONES), np.float32)
        self.silence = np.zeros((BLOCK_SIZE, 1), np.float32)

    def ceiling_in_force(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean-square and peak bounds per zone from the documented formula."""
        ceiling_dbfs = np.minimum(self.g.ceiling_dba - self.g.spl_offset_db, 0.0)
        peak = np.minimum(10.0 ** ((ceiling_dbfs + DEFAULT_CREST_FACTOR_DB) / 20.0), 1.0)
        return 10.0 ** (ceiling_dbfs / 10.0), peak

    @rule(n_blocks=st.integers(1, 8), block_frames=frames, garbage=st.booleans())
    def play(self, n_blocks, block_frames, garbage):
        limit_ms, peak = self.ceiling_in_force()
        block = self.silence[:block_frames]
        if garbage:  # the generator ignores its input: prove it with the worst input there is
            block = np.full((block_frames, 1), np.nan, np.float32)
        total = n_blocks * block_frames
        for b in range(n_blocks):
            self.g.process(block, self.out[b * block_frames : (b + 1) * block_frames])
        y = self.out[:total].astype(np.float64)
        assert np.all(np.isfinite(y))
        assert np.all(np.abs(y) <= peak * (1.0 + TOLERANCE)), "sample above the peak bound"
        ms = lfilter(
            [1.0 - self.alpha], [1.0, -self.alpha], y * y, axis=0, zi=(self.alpha * self.ms)[None]
        )[0]
        previous = np.vstack([self.ms[None], ms[:-1]])
        over = ms > limit_ms * (1.0 + TOLERANCE)
        rising = ms > previous * (1.0 + 1e-9)
        assert not np.any(over & rising), (
            f"Fast level rose above the ceiling: {10 * np.log10(ms[over & rising].max()):.2f} "
            f"dBFS vs {10 * np.log10(limit_ms).round(2)}"
        )
        self.ms = ms[-1]

    @rule(zone=zones, level=levels_dba)
    def set_level(self, zone, level):
        applied = self.g.set_zone_level_dba(zone, level)
        assert applied <= self.g.ceiling_dba[zone]

    @rule(zone=zones, eq=eq_curves)
    def set_eq(self, zone, eq):
        self.g.set_zone_eq_db(zone, eq)

    @rule(zone=zones, offset=offsets_db, eq=st.one_of(st.none(), eq_curves))
    def calibrate(self, zone, offset, eq):
        self.g.set_zone_calibration(zone, spl_offset_db=offset, eq_db=eq)

    @rule(zone=zones, ceiling=ceilings_dba)
    def set_ceiling(self, zone, ceiling):
        self.g.set_zone_ceiling_dba(zone, ceiling)

    @rule(zone=st.one_of(st.none(), zones))
    def start(self, zone):
        self.g.start(zone)

    @rule(zone=st.one_of(st.none(), zones))
    def stop(self, zone):
        self.g.stop(zone)

    @rule()
    def restart(self):
        """The service restarts the generator (reset, then start): the room's level does not
        reset with it, and the ceiling must still hold against what is already in the air."""
        self.g.reset()
        self.g.start()

    @invariant()
    def levels_never_above_ceiling(self):
        if hasattr(self, "g"):
            assert np.all(self.g.level_dba <= self.g.ceiling_dba)


TestMaskingSafety = MaskingSafety.TestCase
TestMaskingSafety.settings = MACHINE_SETTINGS


class SpectralMaskingSafety(MaskingSafety):
    """The same, on the spectral (privacy-law) generator, whose per-band shape staff and the
    adaptive law move while it plays: the shape must not get the level past the ceiling."""

    def generator(self) -> MaskingGenerator:
        # the fastest slew a site may set, so shapes really move within a run
        g = shared_generator(SpectralMaskingGenerator, shape_slew_db_per_s=1.0)
        for z in range(ZONES):
            g.set_zone_shape_db(z, [0.0] * len(BANDS_HZ))
        return g

    @rule(
        zone=zones,
        shape=st.lists(st.floats(-6.0, 6.0), min_size=len(BANDS_HZ), max_size=len(BANDS_HZ)),
    )
    def set_shape(self, zone, shape):
        self.g.set_zone_shape_db(zone, shape)


TestSpectralMaskingSafety = SpectralMaskingSafety.TestCase
TestSpectralMaskingSafety.settings = MACHINE_SETTINGS


_headset = {}


def headset_paths():
    """The send pipeline and the receive-path protector, built once (kernels compile)."""
    if not _headset:
        _headset["send"] = build_headset_pipeline(SAMPLE_RATE, BLOCK_SIZE, 1)
        _headset["receive"] = HearingProtector(SAMPLE_RATE, BLOCK_SIZE, 1)
        _headset["speech"] = speech("en", SAMPLE_RATE)
    return _headset


#: What a microphone or a far-end caller can deliver, scaled: speech, loud speech clipped at
#: full scale, noise, a square wave (worst case for high-pass overshoot), DC steps, garbage.
SOURCES = ("speech", "clipped-speech", "noise", "square", "dc-step", "nan", "huge", "silence")


def source_block(kind: str, position: int, frames_: int, gain: float) -> np.ndarray:
    paths = headset_paths()
    if kind in ("speech", "clipped-speech"):
        s = paths["speech"]
        start = position % max(1, s.shape[0] - frames_)
        x = gain * s[start : start + frames_]
        if kind == "clipped-speech":
            x = np.clip(8.0 * x, -1.0, 1.0)
    elif kind == "noise":
        x = white(frames_, 1, offset=position % 97, rms=min(gain, 1.0))[:, 0]
    elif kind == "square":
        n = np.arange(position, position + frames_)
        x = np.where((n // 80) % 2 == 0, 1.0, -1.0)
    elif kind == "dc-step":
        x = np.full(frames_, 1.0 if (position // 4000) % 2 else -1.0)
    elif kind == "nan":
        x = np.full(frames_, np.nan)
    elif kind == "huge":
        x = np.full(frames_, 3.0e38) * np.where(np.arange(frames_) % 2, 1, -1)
    else:
        x = np.zeros(frames_)
    return np.asarray(x, np.float32).reshape(-1, 1)


class HeadsetSafety(RuleBasedStateMachine):
    """A softphone, an agent's controls and a faulty capture path against both headset paths."""

    @initialize()
    def build(self):
        paths = headset_paths()
        self.send = paths["send"]
        self.receive = paths["receive"]
        self.suppressor = self.send.stages[0]
        self.send.reset()
        self.receive.reset()
        self.suppressor.enabled = True
        self.suppressor.attenuation_db = 25.0
        self.position = 0
        self.out = np.zeros((BLOCK_SIZE, 1), np.float32)

    @rule(
        kind=st.sampled_from(SOURCES),
        n_blocks=st.integers(1, 30),
        block_frames=frames,
        gain=st.floats(0.01, 4.0),
    )
    def talk(self, kind, n_blocks, block_frames, gain):
        limit = self.receive.limit_amplitude
        for _ in range(n_blocks):
            x = source_block(kind, self.position, block_frames, gain)
            self.position += block_frames
            y = self.out[:block_frames]
            self.send.process(x, y)
            assert np.all(np.isfinite(y))
            assert float(np.abs(y).max()) <= 1.0, "virtual microphone above full scale"
            self.receive.process(x, y)
            assert np.all(np.isfinite(y))
            assert float(np.abs(y).max()) <= limit * (1.0 + TOLERANCE), "earpiece above limit"

    @rule(attenuation_db=st.floats(0.0, 60.0))
    def set_attenuation(self, attenuation_db):
        self.suppressor.attenuation_db = attenuation_db

    @rule(enabled=st.booleans())
    def bypass(self, enabled):
        self.suppressor.enabled = enabled

    @rule()
    def reset(self):
        self.send.reset()
        self.receive.reset()


TestHeadsetSafety = HeadsetSafety.TestCase
TestHeadsetSafety.settings = MACHINE_SETTINGS


def test_receive_limit_is_below_full_scale():
    """The earpiece bound the state machine checks is itself a safe one: the default 102 dB SPL
    limit on the default profile is below digital full scale (110 dB SPL at 0 dBFS)."""
    protector = headset_paths()["receive"]
    assert protector.limit_amplitude < 1.0
    expected = 10 ** ((protector.limit_db_spl - protector.profile.sensitivity_db_spl) / 20)
    assert abs(protector.limit_amplitude - expected) <= 1e-9
