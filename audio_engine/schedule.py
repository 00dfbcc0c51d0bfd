"""When and how loud: the weekday schedule and the install ramp-in of the masking system.

Both are pure functions of the local wall-clock time, so a simulated day is a loop over
timestamps (tests run weeks in milliseconds). They produce level *offsets* in dB that
:func:`planned_level_dba` adds to a zone's base level (its configured ``level_dba`` or the
adaptive rule's level); the generator then ramps to the result and its ceiling bounds it.

Why ramps: occupants notice a change of background sound far more than its level, so masking
is commonly brought in over days after installation and changed only slowly during the day
(commissioning practice, not a standard's requirement); here a linear ramp in dB over
``install_ramp.days`` and ``schedule.ramp_minutes``, both set by the site.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from audio_engine.dsp.masking import quantize_level_dba
from audio_engine.errors import ConfigError
from audio_engine.site import InstallRampConfig, ScheduleConfig, ZoneConfig


def _minute_of_day(when: dt.datetime) -> float:
    return when.hour * 60.0 + when.minute + when.second / 60.0 + when.microsecond / 6e7


def schedule_offset_db(schedule: ScheduleConfig, when: dt.datetime) -> tuple[float, bool]:
    """Level offset (dB, <= 0) and whether masking plays at local time ``when``.

    Inside working hours on a working day the offset is 0, except for the first and last
    ``ramp_minutes``, where it moves linearly between ``outside_offset_db`` and 0. Outside, the
    offset is ``outside_offset_db`` and masking plays only if ``outside == "reduced"``.
    """
    depth = schedule.outside_offset_db
    outside_plays = schedule.outside == "reduced"
    if when.weekday() not in schedule.weekdays:
        return depth, outside_plays
    minute = _minute_of_day(when)
    start, end, ramp = schedule.start_minute, schedule.end_minute, schedule.ramp_minutes
    if minute < start or minute >= end:
        return depth, outside_plays
    if minute < start + ramp:
        return depth * (1.0 - (minute - start) / ramp), True
    if minute > end - ramp:
        return depth * (1.0 - (end - minute) / ramp), True
    return 0.0, True


def install_offset_db(ramp: InstallRampConfig, when: dt.datetime) -> float:
    """Level offset (dB, <= 0) of the install ramp-in at local time ``when``.

    ``start_offset_db`` before and on the start date's midnight, rising linearly to 0 over
    ``days``; 0 without a ramp.
    """
    if ramp.start_date is None or ramp.days <= 0.0 or ramp.start_offset_db == 0.0:
        return 0.0
    origin = dt.datetime.combine(ramp.start_date, dt.time(0, 0))
    elapsed_days = (when.replace(tzinfo=None) - origin).total_seconds() / 86400.0
    if elapsed_days <= 0.0:
        return ramp.start_offset_db
    if elapsed_days >= ramp.days:
        return 0.0
    return ramp.start_offset_db * (1.0 - elapsed_days / ramp.days)


def planned_level_dba(
    zone: ZoneConfig,
    schedule: ScheduleConfig,
    ramp: InstallRampConfig,
    when: dt.datetime,
    base_level_dba: float | None = None,
) -> tuple[float, bool]:
    """A zone's level (dBA) and whether it plays at ``when``.

    Parameters
    ----------
    zone : ZoneConfig
    schedule : ScheduleConfig
    ramp : InstallRampConfig
    when : datetime
        Local time.
    base_level_dba : float, optional
        The adaptive rule's level; the zone's ``level_dba`` if not given.

    Returns
    -------
    level_dba : float
        ``base + schedule offset + install offset``, clamped to ``0..ceiling_dba`` (the
        generator clamps again and its output ceiling bounds the signal itself).
    playing : bool
    """
    base = zone.level_dba if base_level_dba is None else float(base_level_dba)
    offset, playing = schedule_offset_db(schedule, when)
    level = base + offset + install_offset_db(ramp, when)
    return min(max(level, 0.0), zone.ceiling_dba), playing


class MaskingSupervisor:
    """Drives a running :class:`~audio_engine.dsp.masking.MaskingGenerator` from a site config.

    Once per control step (:meth:`tick`, every ``adaptive.update_s`` or so, on a control thread
    or the simulated clock's progress callback) it runs the adaptive rule on the microphone
    levels, adds the schedule and install ramp-in offsets, starts or fades out zones, and sets
    each zone's level (the generator ramps to it and its ceiling bounds it).

    Parameters
    ----------
    site : SiteConfig
    generator : MaskingGenerator
        Built for ``site``'s zones, in order.
    mic_tap : MicLevelTap, optional
        Where microphone levels come from when :meth:`tick` is not given them.
    """

    def __init__(self, site, generator, mic_tap=None):
        if generator.zones != len(site.zones):
            raise ConfigError(
                f"generator has {generator.zones} zones, the site config {len(site.zones)}"
            )
        self.site = site
        self.generator = generator
        self.mic_tap = mic_tap
        self.adaptive = self._build_adaptive(site)
        self.base_levels_dba = np.array([z.level_dba for z in site.zones])
        self.mic_levels_dba: np.ndarray | None = None
        self.playing = np.zeros(len(site.zones), bool)
        self.ticks = 0

    @staticmethod
    def _build_adaptive(site):
        from audio_engine.dsp.adaptive import AdaptiveRule, SiteAdaptive

        a = site.adaptive
        if not a.enabled:
            return None
        rules = [
            AdaptiveRule(
                level_dba=z.level_dba,
                min_dba=z.min_dba,
                max_dba=z.max_dba,
                rise_db_per_min=a.rise_db_per_min,
                fall_db_per_min=a.fall_db_per_min,
                hysteresis_db=a.hysteresis_db,
                slope_db_per_db=a.slope_db_per_db,
                reference_ambient_dba=a.reference_ambient_dba,
                averaging_s=a.averaging_s,
            )
            for z in site.zones
        ]
        return SiteAdaptive(
            rules, [z.microphones for z in site.zones], [z.mic_coupling_db for z in site.zones]
        )

    def apply_site(self, site) -> None:
        """Take a reloaded site config (validated, same zones): ceilings, calibration, EQ, rules.

        The adaptive rule restarts from the new config's levels.
        """
        if len(site.zones) != self.generator.zones:
            raise ConfigError(
                f"reloaded site has {len(site.zones)} zones, the running one {self.generator.zones}"
            )
        for z, zone in enumerate(site.zones):
            self.generator.set_zone_ceiling_dba(z, zone.ceiling_dba)
            self.generator.set_zone_calibration(
                z, spl_offset_db=zone.spl_offset_db, eq_db=zone.eq_db
            )
        self.site = site
        self.adaptive = self._build_adaptive(site)
        self.base_levels_dba = np.array([z.level_dba for z in site.zones])

    def tick(self, when: dt.datetime, dt_s: float, mic_levels_dba=None) -> None:
        """One control step at local time ``when``, ``dt_s`` seconds after the previous one.

        ``mic_levels_dba`` (mics,) are the array's levels over the last ``dt_s``; if not given,
        they are read from the ``mic_tap``; without either the adaptive rule holds.
        """
        g = self.generator
        if mic_levels_dba is None and self.mic_tap is not None:
            mic_levels_dba = self.mic_tap.levels_dba()
        if self.adaptive is not None and mic_levels_dba is not None:
            self.mic_levels_dba = np.asarray(mic_levels_dba, dtype=np.float64)
            self.base_levels_dba = self.adaptive.update(
                self.mic_levels_dba, g.current_level_dba(), dt_s
            )
        for z, zone in enumerate(self.site.zones):
            level, playing = planned_level_dba(
                zone,
                self.site.schedule,
                self.site.install_ramp,
                when,
                self.base_levels_dba[z] if self.adaptive is not None else None,
            )
            if playing and not g.running[z]:
                g.start(z)
            elif not playing and g.running[z]:
                g.stop(z)
            self.playing[z] = playing
            if quantize_level_dba(level) != g.requested_level_dba[z]:
                g.set_zone_level_dba(z, quantize_level_dba(level))
        self.ticks += 1

    def status(self) -> list[dict]:
        """Per zone: the generator's status plus the adaptive rule's state."""
        rows = self.generator.status()
        adaptive = self.adaptive.status() if self.adaptive is not None else [None] * len(rows)
        for row, zone, a in zip(rows, self.site.zones, adaptive, strict=True):
            row["name"] = zone.name
            row["adaptive"] = a
        return rows
