"""The engine's pipelines, built in one place for the bench, the demo and the live commands.

Each factory returns a :class:`~audio_engine.pipeline.Pipeline` of real stages, named as it
appears in latency reports (``"headset"``, ``"masking"``). The factories are thin on purpose:
every stage checks its own parameters when built and raises
:class:`~audio_engine.errors.ConfigError` naming the bad value, so a factory adds no checks of
its own beyond what it alone decides (how a zone count becomes a site).
"""

from __future__ import annotations

from pathlib import Path

from audio_engine.errors import ConfigError
from audio_engine.pipeline import Pipeline

#: Name of the headset (send path) pipeline in latency reports and the bench JSON.
HEADSET = "headset"

#: Name of the office masking pipeline in latency reports and the bench JSON.
MASKING = "masking"


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


def build_masking_pipeline(site_config_or_zones, sample_rate: int, block_size: int) -> Pipeline:
    """The office masking path: the masking generator and its output ceiling.

    Parameters
    ----------
    site_config_or_zones : SiteConfig, str, Path or int
        A loaded site config, the path of a site TOML file, or a number of zones; a number
        builds that many zones from the example site (``calibration/example_site.toml``),
        repeating its zones in order, which is how the bench scales to 32 zones.
    sample_rate : int
        Hz.
    block_size : int
        Largest block in frames.

    Returns
    -------
    Pipeline
        Named ``"masking"``; one (ignored) input channel, one output channel per zone. Its
        ``process`` is real-time safe.

    Raises
    ------
    ConfigError
        If the zone count is out of range or the site config is invalid.
    """
    from audio_engine.dsp.masking import MaskingGenerator
    from audio_engine.dsp.safety import OutputCeiling
    from audio_engine.site import load_site_config

    site = site_config_or_zones
    if isinstance(site, str | Path):
        site = load_site_config(site)
    elif isinstance(site, int) and not isinstance(site, bool):
        from audio_engine.site import example_site_config

        site = example_site_config(zones=site)
    elif site is None or isinstance(site, bool | float):
        raise ConfigError(
            f"site_config_or_zones={site!r} is neither a site config, a TOML path nor a zone count"
        )
    generator = MaskingGenerator(site, sample_rate, block_size)
    ceiling = OutputCeiling.for_site(site, sample_rate, block_size)
    return Pipeline([generator, ceiling], name=MASKING)
