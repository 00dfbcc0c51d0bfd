"""The simulated office for calibration: zone loudspeakers in rooms, background, microphones.

What a facility engineer meets on site, as filters and noises, so the whole calibration loop
(:mod:`audio_engine.autocal`, ``audio-engine calibrate --simulate``) runs with no hardware:

- **zone paths**: every zone's loudspeaker reaches every measurement position through its own
  colouration (a linear-phase FIR built from a per-band response: loudspeaker roll-offs, a
  low-frequency room mode, seat-to-seat ripple) and a broadband gain (the true, unknown
  ``spl_offset_db``: dB SPL at the position for 0 dBFS RMS out of the zone);
- **cross-talk**: the other zones reach the position too, some dB lower, and in a hard room
  they keep playing their masking while one zone is calibrated;
- **background**: air handling (rumble, fan band, mains hum), -5 dB/octave office noise and keyboard
  clicks at a stated dBA, a fresh realisation for every recording;
- **the microphone**: its true sensitivity (dB SPL for 0 dBFS RMS, unknown to the loop until
  it records the calibrator) and its self-noise.

Pressures are carried in units of 20 uPa, so ``20 lg(rms)`` is dB SPL. The simulation is
offline (allocates freely) and reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.signal

from audio_engine.dsp.bands import NOMINAL_HZ, exact_centre_hz
from audio_engine.dsp.weighting import weight_signal
from audio_engine.errors import ConfigError
from audio_engine.office import noise as office_noise


@dataclass(frozen=True)
class RoomSpec:
    """How one simulated office behaves (see :data:`ROOMS`).

    Attributes
    ----------
    name : str
    description : str
    spl_offset_db : tuple of float
        True dB SPL at a zone's own positions for 0 dBFS RMS (per zone, cycled).
    low_mode_hz, low_mode_db, low_mode_q : float
        A room mode (peak) in the zone path, Hz / dB / quality factor.
    high_rolloff_hz, high_rolloff_db_per_octave : float
        Loudspeaker/ceiling-tile treble loss above this frequency.
    low_rolloff_hz : float
        Loudspeaker bass roll-off (12 dB/octave below it).
    ripple_db : float
        Standard deviation of the smooth random per-band ripple of each path.
    position_spread_db : float
        Extra per-position ripple (seat to seat), standard deviation per band.
    crosstalk_db : float
        Level of another zone at a position relative to its own zone.
    others_playing : bool
        Whether the other zones keep playing masking while one zone is calibrated.
    other_level_dbfs : float
        Output level of those other zones, dBFS RMS.
    background_dba : float
        Background level (dBA) at every position; HVAC + pink + keyboard.
    keyboard_share : float
        Fraction of the background power that is keyboard clicks (non-stationary).
    mic_spl_offset_db : float
        True microphone sensitivity: dB SPL for 0 dBFS RMS.
    mic_noise_dba : float
        Microphone self-noise, dBA equivalent.
    """

    name: str
    description: str
    spl_offset_db: tuple[float, ...] = (84.0,)
    low_mode_hz: float = 125.0
    low_mode_db: float = 2.0
    low_mode_q: float = 4.0
    high_rolloff_hz: float = 6000.0
    high_rolloff_db_per_octave: float = 3.0
    low_rolloff_hz: float = 90.0
    ripple_db: float = 1.0
    position_spread_db: float = 0.5
    crosstalk_db: float = -12.0
    others_playing: bool = False
    other_level_dbfs: float = -45.0
    background_dba: float = 32.0
    keyboard_share: float = 0.0
    mic_spl_offset_db: float = 124.0
    mic_noise_dba: float = 18.0
    extra: dict = field(default_factory=dict)


#: The simulated rooms. "open-plan" is the gentle everyday case; "hard" stacks every difficulty
#: a commissioning engineer fears: a strong 125 Hz mode, dull ceiling tiles, rough ripple,
#: seats that differ, loud HVAC with hum and typing, neighbouring zones playing (cross-talk at
#: -4 dB) and an unusual microphone.
ROOMS: dict[str, RoomSpec] = {
    "open-plan": RoomSpec(
        name="open-plan",
        description="open office, ceiling speakers, quiet HVAC, other zones off",
        spl_offset_db=(84.0, 85.5, 83.0, 86.0),
    ),
    "meeting-room": RoomSpec(
        name="meeting-room",
        description="small hard-walled room: strong 160 Hz mode, bright, very quiet",
        spl_offset_db=(88.0, 87.0),
        low_mode_hz=160.0,
        low_mode_db=6.0,
        low_mode_q=6.0,
        high_rolloff_hz=12000.0,
        high_rolloff_db_per_octave=0.0,
        ripple_db=2.0,
        position_spread_db=1.0,
        background_dba=26.0,
        mic_spl_offset_db=118.5,
    ),
    "hard": RoomSpec(
        name="hard",
        description=(
            "125 Hz mode +9 dB, dull tiles (-6 dB/oct above 2 kHz), 3 dB ripple, seats differ "
            "by 1.5 dB, 40 dBA HVAC with hum and typing, neighbours playing at -4 dB cross-talk"
        ),
        spl_offset_db=(80.0, 91.0, 78.5),
        low_mode_hz=125.0,
        low_mode_db=9.0,
        low_mode_q=5.0,
        high_rolloff_hz=2000.0,
        high_rolloff_db_per_octave=6.0,
        low_rolloff_hz=140.0,
        ripple_db=3.0,
        position_spread_db=1.5,
        crosstalk_db=-4.0,
        others_playing=True,
        other_level_dbfs=-47.0,
        background_dba=40.0,
        keyboard_share=0.01,
        mic_spl_offset_db=131.0,
        mic_noise_dba=20.0,
    ),
}

#: Bands on which the path responses are defined (then interpolated over log frequency).
_PATH_BANDS_HZ = np.array([f for f in NOMINAL_HZ if 20 <= f <= 20000], dtype=np.float64)


def _smooth_ripple(rng: np.random.Generator, std_db: float) -> np.ndarray:
    """Random per-band ripple, smoothed over neighbouring bands, with the given std."""
    raw = rng.standard_normal(len(_PATH_BANDS_HZ) + 4)
    smooth = np.convolve(raw, np.array([0.25, 0.5, 0.25]), mode="same")[2:-2]
    return std_db * smooth / max(float(np.std(smooth)), 1e-9)


class SimulatedOffice:
    """A simulated office of ``zones`` masking zones with ``positions`` mic positions per zone.

    Parameters
    ----------
    room : str or RoomSpec
        A name from :data:`ROOMS` or a custom spec.
    zones : int
        Number of zones (1..16).
    positions : int
        Measurement positions per zone (1..8); position ``k`` of zone ``z`` has the global
        index ``z * positions + k``.
    sample_rate : int
        Sample rate in Hz.
    seed : int
        Everything random (paths, noises) derives from it.

    Notes
    -----
    :meth:`record` is what a measurement microphone at a position hears while the zone outputs
    play: it is the one entry point the calibration loop uses, just as it would use a
    sound card. :meth:`true_band_levels_db` is the ground truth for tests (no noise, no mic).
    """

    def __init__(
        self,
        room: str | RoomSpec = "open-plan",
        zones: int = 2,
        positions: int = 2,
        sample_rate: int = 48000,
        seed: int = 0,
    ) -> None:
        if isinstance(room, str):
            if room not in ROOMS:
                raise ConfigError(f"room={room!r} is not one of {sorted(ROOMS)}")
            room = ROOMS[room]
        if isinstance(zones, bool) or not isinstance(zones, int) or not 1 <= zones <= 16:
            raise ConfigError(f"zones={zones!r} is not an integer in 1..16")
        if isinstance(positions, bool) or not isinstance(positions, int) or not 1 <= positions <= 8:
            raise ConfigError(f"positions={positions!r} is not an integer in 1..8")
        self.room = room
        self.zones = zones
        self.positions = positions
        self.sample_rate = int(sample_rate)
        self._rng = np.random.default_rng(seed)
        self.n_taps = 1 << int(np.ceil(np.log2(0.085 * self.sample_rate)))
        # Path responses in dB: [zone, global position, band].
        count = zones * positions
        self.path_db = np.zeros((zones, count, len(_PATH_BANDS_HZ)))
        self.path_gain_db = np.zeros((zones, count))
        base = self._base_response_db()
        for z in range(zones):
            own = base + _smooth_ripple(self._rng, room.ripple_db)
            offset = room.spl_offset_db[z % len(room.spl_offset_db)]
            for p in range(count):
                seat = _smooth_ripple(self._rng, room.position_spread_db)
                if p // positions == z:
                    self.path_db[z, p] = own + seat
                    self.path_gain_db[z, p] = offset
                else:
                    self.path_db[z, p] = base + _smooth_ripple(self._rng, room.ripple_db)
                    self.path_gain_db[z, p] = offset + room.crosstalk_db
        self._fir = np.stack(
            [
                np.stack([self._design_fir(self.path_db[z, p]) for p in range(count)])
                for z in range(zones)
            ]
        )
        self._other_shape = self._design_fir(np.zeros(len(_PATH_BANDS_HZ)))

    # -- construction ----------------------------------------------------------------------------
    def _base_response_db(self) -> np.ndarray:
        r = self.room
        f = _PATH_BANDS_HZ
        response = np.zeros_like(f)
        # 12 dB/octave loudspeaker bass roll-off (2nd-order high-pass magnitude).
        ratio = f / r.low_rolloff_hz
        response += 10.0 * np.log10(ratio**4 / (1.0 + ratio**4))
        above = np.maximum(np.log2(f / r.high_rolloff_hz), 0.0)
        response -= r.high_rolloff_db_per_octave * above
        # Room mode: a resonance peak of low_mode_db at low_mode_hz.
        detune = r.low_mode_q * (f / r.low_mode_hz - r.low_mode_hz / f)
        response += r.low_mode_db / (1.0 + detune**2)
        return response

    def _design_fir(self, band_db: np.ndarray) -> np.ndarray:
        """Linear-phase FIR whose magnitude follows ``band_db`` (log-frequency interpolation)."""
        n = self.n_taps
        grid = np.fft.rfftfreq(n, 1.0 / self.sample_rate)
        log_f = np.log(np.maximum(grid, 1.0))
        centres = np.log(exact_centre_hz(np.arange(len(_PATH_BANDS_HZ)) - 17))
        magnitude = 10.0 ** (np.interp(log_f, centres, band_db) / 20.0)
        impulse = np.fft.irfft(magnitude, n)
        impulse = np.roll(impulse, n // 2) * np.hanning(n)
        return impulse

    # -- what the microphone hears ---------------------------------------------------------------
    def position_index(self, zone: int, position: int) -> int:
        """Global index of ``position`` (0-based) of ``zone`` (0-based)."""
        if not 0 <= zone < self.zones:
            raise ConfigError(f"zone={zone!r} is not in 0..{self.zones - 1}")
        if not 0 <= position < self.positions:
            raise ConfigError(f"position={position!r} is not in 0..{self.positions - 1}")
        return zone * self.positions + position

    def _through_path(self, signal: np.ndarray, zone: int, index: int) -> np.ndarray:
        y = scipy.signal.fftconvolve(signal.astype(np.float64), self._fir[zone, index])
        # Drop the FIR's linear-phase delay so the field lines up with the output.
        y = y[self.n_taps // 2 : self.n_taps // 2 + len(signal)]
        return y * 10.0 ** (self.path_gain_db[zone, index] / 20.0)

    def _background(self, frames: int) -> np.ndarray:
        r = self.room
        rng = self._rng
        hvac = office_noise.hvac(frames, rng, self.sample_rate).astype(np.float64)
        # Office background falls about 5 dB per octave (the shape of the NC/RC curves), so
        # its treble sits under the masking target's -5 dB/octave slope.
        office = office_noise.shaped(frames, rng, self.sample_rate, -5.0).astype(np.float64)
        mix = hvac + 0.6 * office
        if r.keyboard_share > 0:
            keys = office_noise.keyboard(frames, rng, self.sample_rate).astype(np.float64)
            mix = (
                np.sqrt(1 - r.keyboard_share) * mix / np.std(mix) + np.sqrt(r.keyboard_share) * keys
            )
        return self._scale_to_dba(mix, r.background_dba)

    def _scale_to_dba(self, x: np.ndarray, level_dba: float) -> np.ndarray:
        weighted = weight_signal(x, self.sample_rate, "A")
        now = 10.0 * np.log10(max(float(np.mean(np.square(weighted))), 1e-30))
        return x * 10.0 ** ((level_dba - now) / 20.0)

    def field(
        self, index: int, outputs: dict[int, np.ndarray], frames: int, quiet: int | None = None
    ) -> np.ndarray:
        """Sound pressure (units of 20 uPa) at global position ``index`` without the mic.

        Zones in ``outputs`` play their signal; zone ``quiet`` (the one being calibrated) is
        silent otherwise; the rest play their own masking if the room says others play.
        """
        pressure = self._background(frames)
        for z in range(self.zones):
            signal = outputs.get(z)
            if signal is None and z != quiet and self.room.others_playing:
                shaped = office_noise.pink(frames, self._rng, self.sample_rate)
                signal = shaped * 10.0 ** (self.room.other_level_dbfs / 20.0)
            if signal is not None:
                if len(signal) != frames:
                    raise ConfigError(f"zone {z} signal has {len(signal)} frames, not {frames}")
                pressure += self._through_path(np.asarray(signal), z, index)
        return pressure

    def record(
        self, zone: int, position: int, outputs: dict[int, np.ndarray] | None, seconds: float
    ) -> np.ndarray:
        """What the measurement microphone at ``position`` of ``zone`` records.

        Parameters
        ----------
        zone, position : int
            Where the microphone stands (0-based).
        outputs : dict zone -> ndarray (frames,), or None
            Signals fed to zone amplifiers (digital, full scale 1). ``zone`` is silent unless
            it is in ``outputs``; the other zones not in it are silent too, unless the room's
            other zones keep playing their masking (``others_playing``).
        seconds : float
            Length when ``outputs`` is None or empty.

        Returns
        -------
        ndarray, shape (frames,), float32
            The microphone's digital signal (full scale 1).
        """
        outputs = outputs or {}
        frames = (
            len(next(iter(outputs.values()))) if outputs else int(round(seconds * self.sample_rate))
        )
        pressure = self.field(self.position_index(zone, position), outputs, frames, quiet=zone)
        hiss = self._scale_to_dba(self._rng.standard_normal(frames), self.room.mic_noise_dba)
        digital = (pressure + hiss) * 10.0 ** (-self.room.mic_spl_offset_db / 20.0)
        return digital.astype(np.float32)

    def calibrator_recording(self, seconds: float = 3.0, level_db_spl: float = 94.0) -> np.ndarray:
        """The microphone in a 1 kHz acoustic calibrator (background sealed out, mic noise in)."""
        frames = int(round(seconds * self.sample_rate))
        t = np.arange(frames) / self.sample_rate
        tone = np.sqrt(2.0) * 10.0 ** (level_db_spl / 20.0) * np.sin(2 * np.pi * 1000.0 * t)
        hiss = self._scale_to_dba(self._rng.standard_normal(frames), self.room.mic_noise_dba)
        return ((tone + hiss) * 10.0 ** (-self.room.mic_spl_offset_db / 20.0)).astype(np.float32)

    def true_band_levels_db(
        self, zone: int, position: int, signal: np.ndarray, low_hz: float, high_hz: float
    ) -> np.ndarray:
        """Ground truth: band levels (dB SPL) of ``zone`` alone playing ``signal`` at a position."""
        from audio_engine.dsp.octave import third_octave_levels_db

        pressure = self._through_path(np.asarray(signal), zone, self.position_index(zone, position))
        return third_octave_levels_db(pressure, self.sample_rate, low_hz, high_hz, settle_s=0.2)[1]

    def true_laeq_db(self, zone: int, position: int, signal: np.ndarray) -> float:
        """Ground truth: LAeq (dB) of ``zone`` alone playing ``signal`` at a position."""
        from audio_engine.dsp.levels import leq_db

        pressure = self._through_path(np.asarray(signal), zone, self.position_index(zone, position))
        return float(leq_db(pressure[int(0.2 * self.sample_rate) :], self.sample_rate, "A"))
