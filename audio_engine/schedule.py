"""When and how loud: the weekday schedule and the install ramp-in of the masking system.

Both are pure functions of the local wall-clock time, so a simulated day is a loop over
timestamps (tests run weeks in milliseconds). They produce level *offsets* in dB that
:func:`planned_level_dba` adds to a zone's base level (its configured ``level_dba`` or the
adaptive rule's level); the generator then ramps to the result and its ceiling bounds it.

Why ramps: occupants notice a change of background sound far more than its level; masking
design guides therefore bring masking in over days after installation and change it only
slowly during the day (ASTM E1374 commentary; vendor commissioning practice), here a linear
ramp in dB over ``install_ramp.days`` and ``schedule.ramp_minutes``.
"""

from __future__ import annotations

import datetime as dt

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
