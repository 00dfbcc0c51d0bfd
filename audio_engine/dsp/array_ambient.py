"""Ambient level from every microphone of an array, for the adaptive masking rule.

:class:`ArrayAmbient` is the capture end of the masking path on an array: the array's channel
mapping and trims (:class:`~audio_engine.dsp.beamformer.ArrayInput`), then the masking rule's
own A-weighted level tap (:class:`~audio_engine.dsp.adaptive.MicLevelTap`) calibrated with each
capsule's sensitivity from the array table. Once per control update the rule calls
:meth:`ArrayAmbient.measure` and gets each microphone's LAeq since the previous call and their
spatial average.

The spatial average is energetic (the mean of the powers, as ISO 3382-2 and ISO 1996-2
average levels over microphone positions). A capsule reading far below the others is dead,
unplugged or covered: it is left out of the average and, in the levels handed to the rule,
stands in at the average of the live ones, so one failed capsule neither drags the masking
down nor needs a site visit before the rule can run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio_engine.array_config import ArrayConfig
from audio_engine.dsp.adaptive import MicLevelTap
from audio_engine.dsp.base import Processor
from audio_engine.dsp.beamformer import ArrayInput
from audio_engine.errors import ConfigError

#: A capsule this far below the median of the array's levels is treated as dead. Capsules of one
#: ceiling array in a diffuse office field read within a few dB of each other; 20 dB leaves room
#: for a talker near one capsule while still catching a dead one (which reads 60 dB or more down).
DEAD_MARGIN_DB = 20.0


@dataclass(frozen=True)
class AmbientReading:
    """One control update's levels.

    Attributes
    ----------
    levels_dba : ndarray, shape (mics,)
        Each capsule's LAeq (dB SPL, A-weighted) since the previous reading, as measured.
    live : ndarray of bool, shape (mics,)
        False for capsules left out as dead.
    average_dba : float
        Energetic mean of the live capsules' levels.
    levels_for_rule_dba : ndarray, shape (mics,)
        ``levels_dba`` with dead capsules replaced by ``average_dba``: what to hand to
        :meth:`audio_engine.dsp.adaptive.SiteAdaptive.update`.
    """

    levels_dba: np.ndarray
    live: np.ndarray
    average_dba: float
    levels_for_rule_dba: np.ndarray


def spatial_average_dba(
    levels_dba: np.ndarray, dead_margin_db: float = DEAD_MARGIN_DB
) -> tuple[float, np.ndarray]:
    """Energetic mean of the live capsules' levels and which capsules are live.

    Parameters
    ----------
    levels_dba : array_like, shape (mics,)
        Levels in dB; non-finite values count as dead.
    dead_margin_db : float
        A capsule more than this below the median of the finite levels is dead.

    Returns
    -------
    average_dba : float
        NaN if no capsule is live.
    live : ndarray of bool, shape (mics,)
    """
    levels = np.asarray(levels_dba, dtype=np.float64)
    finite = np.isfinite(levels)
    if not finite.any():
        return float("nan"), finite
    live = finite & (levels >= np.median(levels[finite]) - dead_margin_db)
    average = 10.0 * np.log10(np.mean(10.0 ** (levels[live] / 10.0)))
    return float(average), live


class ArrayAmbient(Processor):
    """An array's per-capsule A-weighted levels and spatial average (masking controller input).

    Parameters
    ----------
    sample_rate, block_size : int
        As every processor.
    config : ArrayConfig
        Every capsule needs ``sensitivity_dbfs`` (levels are in dB SPL).
    input_channels : int, optional
        Device channels (the array's 1-based mapping picks from them); ``None`` for one
        channel per microphone in microphone order.
    dead_margin_db : float
        See :func:`spatial_average_dba` (3..60 dB).

    Notes
    -----
    ``channels = input_channels or config.mics``; one silent output channel, like
    :class:`~audio_engine.dsp.adaptive.MicLevelTap`, so it can head a masking pipeline on a
    duplex stream. :meth:`process` is real-time safe; :meth:`measure` runs on the control
    thread (it allocates its small result).
    """

    def __init__(
        self,
        sample_rate: int,
        block_size: int,
        config: ArrayConfig,
        input_channels: int | None = None,
        dead_margin_db: float = DEAD_MARGIN_DB,
    ):
        capture = ArrayInput(sample_rate, block_size, config, input_channels)
        super().__init__(sample_rate, block_size, capture.channels)
        missing = [i for i, s in enumerate(config.sensitivities_dbfs) if not np.isfinite(s)]
        if missing:
            raise ConfigError(
                f"array {config.name!r}: mics{missing} have no sensitivity_dbfs; the ambient "
                "level is in dB SPL, so every capsule needs one (dBFS at 94 dB SPL, -80..0)"
            )
        if (
            isinstance(dead_margin_db, bool)
            or not isinstance(dead_margin_db, int | float)
            or not 3.0 <= dead_margin_db <= 60.0
        ):
            raise ConfigError(
                f"dead_margin_db={dead_margin_db!r} is out of range; allowed 3..60 dB"
            )
        self.output_channels = 1
        self.config = config
        self.dead_margin_db = float(dead_margin_db)
        self._capture = capture
        self._tap = MicLevelTap(
            self.sample_rate, self.block_size, config.mics, config.sensitivity_offsets_db()
        )
        self._mics = np.zeros((self.block_size, config.mics), np.float32)

    def reset(self) -> None:
        self._capture.reset()
        self._tap.reset()

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        mics = self._mics[: block.shape[0]]
        self._capture.process(block, mics)
        self._tap.process(mics, out)

    def measure(self) -> AmbientReading | None:
        """Levels since the previous call, or None if no audio arrived. Control thread only."""
        levels = self._tap.levels_dba()
        if levels is None:
            return None
        average, live = spatial_average_dba(levels, self.dead_margin_db)
        return AmbientReading(
            levels_dba=levels,
            live=live,
            average_dba=average,
            levels_for_rule_dba=np.where(live, levels, average),
        )
