"""The persisted daily noise dose and the limiting-event log, for health-and-safety teams.

One append-only JSON-lines file per local day, ``hearing-YYYY-MM-DD.jsonl``, in
:func:`default_log_dir` (``$AUDIO_ENGINE_HEARING_DIR``, else ``$XDG_STATE_HOME/audio_engine/
hearing``, else ``~/.local/state/audio_engine/hearing``). Records, one JSON object a line:

``{"type": "session", "time": ..., "profile": ..., "sensitivity_db_spl": ..., "limit_db_spl": ...,
"dose_limit_dba": ..., "reference_point": ..., "measured": ...}``
    A protector started writing (one per run).
``{"type": "event", "time": ..., "kind": "limit|startle|loud_caller|dose_warning|dose_limit",
"peak_db_spl": ..., "duration_s": ..., "max_reduction_db": ...}``
    One limiting event (``time`` is its start). For dose events ``peak_db_spl`` is the dose %.
``{"type": "dose", "time": ..., "energy_pa2s": ..., "lex_8h_dba": ..., "dose_percent": ...}``
    The day's A-weighted exposure so far (cumulative, including earlier runs that day).

``time`` is ISO 8601 local time with its UTC offset. Each record is written with one
``os.write`` on an ``O_APPEND`` descriptor and then ``os.fsync``'d, so a record is either whole
on disk or (power cut mid-write) a torn last line, which readers skip. A killed process loses
at most ``dose_interval_s`` of dose (10 s by default) and the events of the last poll.

The writer is :class:`HearingLog`: a thread that drains the protector's lock-free
:class:`~audio_engine.dsp.hearing.EventRing` and reads its dosimeter; the audio thread never
waits for it and never touches the file. On start it restores today's dose from the file, so
the dose survives a crash and a restart within the day.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from audio_engine.dsp.base import check_number
from audio_engine.dsp.dosimeter import energy_from_lex_8h, lex_8h_from_energy
from audio_engine.errors import ConfigError

#: File name pattern of one day's log.
FILE_PREFIX = "hearing-"
FILE_SUFFIX = ".jsonl"


def default_log_dir() -> Path:
    """Where the logs live unless told otherwise (see the module docstring)."""
    env = os.environ.get("AUDIO_ENGINE_HEARING_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "audio_engine" / "hearing"


def log_path(directory: str | os.PathLike, day: dt.date) -> Path:
    """Path of ``day``'s log file in ``directory``."""
    return Path(directory) / f"{FILE_PREFIX}{day.isoformat()}{FILE_SUFFIX}"


def read_records(path: str | os.PathLike) -> list[dict]:
    """Every whole record of one log file, in order; torn or corrupt lines are skipped."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a line torn by a crash mid-write
        if isinstance(rec, dict) and "type" in rec:
            records.append(rec)
    return records


def day_energy_pa2s(path: str | os.PathLike) -> float:
    """The day's exposure energy recorded in a log file: its last dose record's, or 0."""
    energy = 0.0
    for rec in read_records(path):
        if rec.get("type") == "dose":
            value = rec.get("energy_pa2s")
            if isinstance(value, int | float) and math.isfinite(value) and value >= 0.0:
                energy = float(value)
    return energy


def iter_days(
    directory: str | os.PathLike, first: dt.date, last: dt.date
) -> Iterator[tuple[dt.date, list[dict]]]:
    """``(day, records)`` for every day from ``first`` to ``last`` inclusive (empty if no file)."""
    day = first
    while day <= last:
        yield day, read_records(log_path(directory, day))
        day += dt.timedelta(days=1)


def _now_iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s).astimezone().isoformat(timespec="milliseconds")


class _AppendFile:
    """One day's log opened for durable appends."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # A torn last line from a crash: start our records on a fresh line.
        size = os.fstat(self.fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(self.fd, b"\n")
        self._sync_dir()

    def _sync_dir(self) -> None:
        # The new file's directory entry must be durable too, or a crash can lose the file.
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        payload = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        os.write(self.fd, payload.encode("utf-8"))
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class HearingLog:
    """Background writer of a :class:`~audio_engine.dsp.hearing.HearingProtector`'s events and
    daily dose; restores the day's dose on start.

    Parameters
    ----------
    protector : HearingProtector
        The processor whose ``events`` ring and ``dosimeter`` are read (never written from the
        audio thread's point of view, except the dosimeter's carried energy at start and at
        midnight).
    directory : path, optional
        Log folder (default :func:`default_log_dir`).
    poll_interval_s : float
        How often the thread drains events (0.01..10 s).
    dose_interval_s : float
        How often a dose record is written (0.05..600 s): the most dose a kill can lose.
    notify : callable, optional
        ``notify(record)`` called (from the log thread) for every event record, so a UI can tell
        the agent (dose warnings, limiting).
    clock : callable
        Epoch seconds (``time.time``); tests pass a fake one to cross midnight.

    Notes
    -----
    Use as a context manager, or :meth:`start` / :meth:`stop`. :meth:`stop` drains the ring,
    writes the events still open and a final dose record.
    """

    def __init__(
        self,
        protector,
        directory: str | os.PathLike | None = None,
        poll_interval_s: float = 0.25,
        dose_interval_s: float = 10.0,
        notify: Callable[[dict], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value, low, high in (
            ("poll_interval_s", poll_interval_s, 0.01, 10.0),
            ("dose_interval_s", dose_interval_s, 0.05, 600.0),
        ):
            check_number(name, value, low, high, "s")
        if not hasattr(protector, "events") or not hasattr(protector, "dosimeter"):
            raise ConfigError(f"protector={protector!r} is not a HearingProtector")
        self.protector = protector
        self.directory = Path(directory) if directory is not None else default_log_dir()
        self.poll_interval_s = float(poll_interval_s)
        self.dose_interval_s = float(dose_interval_s)
        self.notify = notify
        self.clock = clock
        self._file: _AppendFile | None = None
        self._day: dt.date | None = None
        self._last_dose_s = -math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records_written = 0
        self.restored_energy_pa2s = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> HearingLog:
        """Restore today's dose, write a session record and start the writer thread."""
        now = self.clock()
        self._open_day(dt.date.fromtimestamp(now), now)
        self._thread = threading.Thread(target=self._run, name="hearing-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; write remaining and still-open events and a final dose record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._file is not None:
            self.poll(final=True)
            self._file.close()
            self._file = None

    def __enter__(self) -> HearingLog:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll()

    # -- work ---------------------------------------------------------------------------------
    def _open_day(self, day: dt.date, now: float) -> None:
        if self._file is not None:
            self._file.close()
        path = log_path(self.directory, day)
        self.restored_energy_pa2s = day_energy_pa2s(path)
        self._file = _AppendFile(path)
        self._day = day
        dosimeter = self.protector.dosimeter
        if dosimeter is not None:
            dosimeter.start_day(self.restored_energy_pa2s)
        p = self.protector
        self._write(
            [
                {
                    "type": "session",
                    "time": _now_iso(now),
                    "profile": p.profile.name,
                    "sensitivity_db_spl": p.profile.sensitivity_db_spl,
                    "reference_point": p.profile.reference_point,
                    "measured": p.profile.measured,
                    "limit_db_spl": p.limit_db_spl,
                    "dose_limit_dba": None if dosimeter is None else dosimeter.dose_limit_dba,
                    "restored_energy_pa2s": self.restored_energy_pa2s,
                }
            ]
        )
        self._last_dose_s = now

    def _write(self, records: list[dict]) -> None:
        self._file.append(records)
        self.records_written += len(records)

    def _dose_record(self, now: float) -> dict | None:
        dosimeter = self.protector.dosimeter
        if dosimeter is None:
            return None
        energy = dosimeter.day_energy_pa2s
        lex = dosimeter.lex_8h_dba
        return {
            "type": "dose",
            "time": _now_iso(now),
            "energy_pa2s": energy,
            "lex_8h_dba": round(lex, 3) if math.isfinite(lex) else None,
            "dose_percent": round(dosimeter.dose_percent, 4),
        }

    def _event_records(self, now: float, events: list[dict]) -> list[dict]:
        fs = self.protector.sample_rate
        done = self.protector.samples_processed
        out = []
        for e in events:
            start_s = now - (done - e["start_sample"]) / fs
            out.append(
                {
                    "type": "event",
                    "time": _now_iso(start_s),
                    "kind": e["kind"],
                    "peak_db_spl": round(e["peak_db_spl"], 2),
                    "duration_s": round(e["duration_samples"] / fs, 4),
                    "max_reduction_db": round(e["max_reduction_db"], 2),
                }
            )
        return out

    def poll(self, final: bool = False) -> None:
        """Drain events, write a dose record when due, switch files at midnight."""
        if self._file is None:
            return
        now = self.clock()
        day = dt.date.fromtimestamp(now)
        events = self.protector.events.drain()
        if final:
            events += self.protector.open_events()
        records = self._event_records(now, events)
        if day != self._day:
            # Midnight: close yesterday with its dose, start today's count from zero.
            dose = self._dose_record(now)
            self._write(records + ([dose] if dose else []))
            records = []
            self._open_day(day, now)
        if final or now - self._last_dose_s >= self.dose_interval_s:
            dose = self._dose_record(now)
            if dose:
                records.append(dose)
            self._last_dose_s = now
        if records:
            self._write(records)
        if self.notify is not None:
            for rec in records:
                if rec["type"] == "event":
                    self.notify(rec)


def summarise_day(day: dt.date, records: list[dict]) -> dict:
    """What one day's log says: dose, events by kind, loudest peak, limiting time.

    Returns
    -------
    dict
        ``day`` (ISO date), ``sessions``, ``energy_pa2s``, ``lex_8h_dba`` (None without
        sound), ``dose_percent``, ``dose_limit_dba``, ``events`` (count), ``by_kind`` (counts),
        ``max_peak_db_spl`` (None without events), ``limiting_s`` (total duration of events),
        ``event_list`` (the event records), ``dose_points`` (``(time, dose %)`` pairs).
    """
    sessions = [r for r in records if r.get("type") == "session"]
    events = [r for r in records if r.get("type") == "event"]
    doses = [
        r
        for r in records
        if r.get("type") == "dose" and isinstance(r.get("energy_pa2s"), int | float)
    ]
    limit = 85.0
    for s in sessions:
        if isinstance(s.get("dose_limit_dba"), int | float):
            limit = float(s["dose_limit_dba"])
    energy = float(doses[-1]["energy_pa2s"]) if doses else 0.0
    lex = lex_8h_from_energy(energy) if energy > 0.0 else None
    by_kind: dict[str, int] = {}
    for e in events:
        by_kind[str(e.get("kind"))] = by_kind.get(str(e.get("kind")), 0) + 1
    peaks = [
        float(e["peak_db_spl"])
        for e in events
        if e.get("kind") in ("limit", "startle", "loud_caller")
        and isinstance(e.get("peak_db_spl"), int | float)
    ]
    return {
        "day": day.isoformat(),
        "sessions": len(sessions),
        "energy_pa2s": energy,
        "lex_8h_dba": lex,
        "dose_percent": 100.0 * energy / energy_from_lex_8h(limit),
        "dose_limit_dba": limit,
        "events": len(events),
        "by_kind": by_kind,
        "max_peak_db_spl": max(peaks) if peaks else None,
        "limiting_s": float(sum(float(e.get("duration_s", 0.0)) for e in events)),
        "event_list": events,
        "dose_points": [(r.get("time"), float(r.get("dose_percent", 0.0))) for r in doses],
    }
