"""The engine's pipelines, built in one place for the bench, the demo and the live commands.

Each factory returns a :class:`~audio_engine.pipeline.Pipeline` of real stages, named as it
appears in latency reports (``"headset"``, ``"masking"``). The factories are thin on purpose:
every stage checks its own parameters when built and raises
:class:`~audio_engine.errors.ConfigError` naming the bad value, so a factory checks only what
it alone decides (how a zone count becomes a site).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_engine.errors import ConfigError
from audio_engine.pipeline import Pipeline
from audio_engine.resources import calibration_file

#: Name of the headset (send path) pipeline in latency reports and the bench JSON.
HEADSET = "headset"

#: Name of the office masking pipeline in latency reports and the bench JSON.
MASKING = "masking"

#: Name of the receive path (caller to the agent's ear) in latency reports.
RECEIVE = "receive"

#: The documented example site (the repository's calibration folder, as for headset profiles).
EXAMPLE_SITE = calibration_file("example_site.toml")


def build_headset_pipeline(
    sample_rate: int, block_size: int, channels: int = 1, attenuation_db: float | None = None
) -> Pipeline:
    """The headset microphone path: the noise suppressor, as published to the softphone.

    Parameters
    ----------
    sample_rate : int
        Hz; one the suppressor supports.
    block_size : int
        Largest block in frames.
    channels : int
        Microphone channels, each suppressed independently.
    attenuation_db : float, optional
        Most the suppressor attenuates noise, in dB; the suppressor's default when ``None``.

    Returns
    -------
    Pipeline
        Named ``"headset"``; ``channels`` in, ``channels`` out. Its ``process`` is real-time
        safe. Building it compiles (warms) the suppressor's kernels, so it is not.
    """
    from audio_engine.dsp.suppressor import NoiseSuppressor

    options = {} if attenuation_db is None else {"attenuation_db": attenuation_db}
    suppressor = NoiseSuppressor(sample_rate, block_size, channels, **options)
    return Pipeline([suppressor], name=HEADSET)


def build_receive_pipeline(
    sample_rate: int, block_size: int, channels: int = 1, profile=None, **options
) -> Pipeline:
    """The receive path: the caller's audio through the hearing protection to the earpiece.

    Parameters
    ----------
    sample_rate, block_size, channels : int
        Of the stream (``channels``: 1 mono headset, 2 stereo; the gain is linked).
    profile : HeadsetProfile, str or None
        The headset's profile or its name/path (:mod:`audio_engine.headset_profile`); the
        default example profile when ``None``.
    **options
        Passed to :class:`~audio_engine.dsp.hearing.HearingProtector` (``limit_db_spl`` ...).

    Returns
    -------
    Pipeline
        Named ``"receive"``; real-time safe ``process``.
    """
    from audio_engine.dsp.hearing import HearingProtector

    protector = HearingProtector(sample_rate, block_size, channels, profile=profile, **options)
    return Pipeline([protector], name=RECEIVE)


def build_masking_pipeline(site_config_or_zones, sample_rate: int, block_size: int) -> Pipeline:
    """The office masking path: the masking generator, whose last step is its output ceiling.

    Parameters
    ----------
    site_config_or_zones : SiteConfig, str, Path or int
        A loaded site config (:func:`audio_engine.site.load_site_config`), the path of a site
        TOML file, or a number of zones: a number builds the example site
        (:data:`EXAMPLE_SITE`) with that many zones, its zones repeated in order and its target
        curve limited to the bands below Nyquist at ``sample_rate``, which is how the bench
        scales masking to 32 zones at every rate with realistic levels, EQ and ceilings.
    sample_rate : int
        Hz.
    block_size : int
        Largest block in frames.

    Returns
    -------
    Pipeline
        Named ``"masking"``; one (ignored) input channel, one output channel per zone, each
        zone's level, EQ, calibration offset and hard ceiling as the site says. The ceiling
        (:class:`~audio_engine.dsp.safety.OutputCeiling`) is the generator's own last step, so
        it is not a second stage here. ``process`` is real-time safe.

    Raises
    ------
    ConfigError
        If the zone count is out of range or the site config is invalid.
    """
    from dataclasses import replace

    from audio_engine.dsp.bands import band_edges_hz, band_index
    from audio_engine.dsp.base import check_channels
    from audio_engine.dsp.masking import MaskingGenerator
    from audio_engine.site import load_site_config

    site = site_config_or_zones
    if isinstance(site, str | Path):
        site = load_site_config(site)
    elif isinstance(site, int | np.integer) and not isinstance(site, bool):
        zones = check_channels(site, "zones")
        site = load_site_config(EXAMPLE_SITE)
        # The example's curve reaches the 8 kHz band, whose upper edge (8.9 kHz) a 16 kHz
        # output cannot carry; this synthetic site keeps the bands that fit below Nyquist, so
        # the bench runs at every supported rate. A real site is never trimmed: its generator
        # refuses a curve above Nyquist.
        x = np.array([band_index(float(f)) for f in site.target_nominal_hz])
        fits = band_edges_hz(x)[1] < sample_rate / 2
        site = replace(
            site,
            zones=tuple(site.zones[z % len(site.zones)] for z in range(zones)),
            target_nominal_hz=site.target_nominal_hz[fits],
            target_level_db=site.target_level_db[fits],
        )
    elif not hasattr(site, "zones"):
        raise ConfigError(
            f"site_config_or_zones={site!r} is neither a site config, a TOML path nor a zone count"
        )
    generator = MaskingGenerator.from_site(site, sample_rate, block_size)
    return Pipeline([generator], name=MASKING)
