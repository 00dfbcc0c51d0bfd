"""Keep a device stream alive: notice a lost device, count it, reopen it or exit with a message.

A :class:`DeviceStream` on a USB headset or a zone amplifier's interface can stop at any moment:
the cable is pulled, the host API errors, the sound server (PulseAudio/PipeWire) restarts. When
that happens PortAudio simply stops calling the callback and the stream becomes inactive;
nothing in the audio thread can or should react. :class:`DeviceSupervisor` is the control-thread
half: the command's status loop calls :meth:`DeviceSupervisor.poll` every few hundred ms, and
the supervisor

* notices the stream is no longer active, counts the loss, closes what is left of the stream
  (a vanished device's ``stop`` raises; that is expected and swallowed), and calls ``on_lost``
  (masking: make the generator silent, so it can only come back through its fade-in);
* under ``policy="reopen"`` tries to open a new stream every ``retry_s`` through the same
  factory (which resolves devices by name, so a device that returns under a new index after a
  server restart is found), and when one opens calls ``on_restored`` (masking: fade in) and
  starts it; after ``give_up_s`` without a device it gives up like ``policy="exit"``;
* under ``policy="exit"`` raises a :class:`~audio_engine.errors.DeviceError` that says which
  device was lost, why and for how long it was tried, for the command line to print as one line
  with exit status 2.

The pipeline (and with it its latency meter and every processor's state) is the same object
across reopened streams, so one report covers the whole run; the report adds the supervisor's
counters (device losses, reopen attempts, reopens, time without a device) and the counts of
every closed stream (callback faults, non-finite input samples).

Not real-time: nothing here runs in the audio callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from audio_engine.errors import ConfigError, DeviceError

Policy = Literal["reopen", "exit"]

#: Default seconds between reopen attempts: a USB device re-enumerates and a sound server
#: restarts in about a second; trying more often only floods the log of a dead device.
DEFAULT_RETRY_S = 1.0

#: Default seconds to keep trying before giving up (0: forever, as a masking system that should
#: come back whenever the amplifier does).
DEFAULT_GIVE_UP_S = 0.0


class DeviceSupervisor:
    """Owns a :class:`~audio_engine.io.device.DeviceStream` and replaces it when it dies.

    Parameters
    ----------
    open_stream : callable
        ``open_stream() -> DeviceStream`` (not started). Called once by :meth:`start` and again
        for every reopen attempt; it raises :class:`DeviceError` while the device is missing.
        Build it with device *names* so a device that returns under a new index is found.
    policy : {"reopen", "exit"}
        What to do when the stream dies.
    retry_s : float
        Seconds between reopen attempts, 0.05..60.
    give_up_s : float
        Seconds without a device after which ``"reopen"`` gives up and raises (0: never).
    on_lost : callable, optional
        ``on_lost(reason: str)``, called once per loss, before any reopen attempt.
    on_restored : callable, optional
        ``on_restored()``, called after a new stream opened and before it starts.
    clock : callable
        Monotonic seconds (tests pass a fake clock).

    Examples
    --------
    >>> supervisor = DeviceSupervisor(
    ...     lambda: DeviceStream(pipeline, "output", output_device="Zone amp"),
    ...     policy="reopen", on_lost=lambda why: generator.reset(),
    ...     on_restored=generator.start)                              # doctest: +SKIP
    >>> supervisor.start()                                           # doctest: +SKIP
    >>> while True:
    ...     time.sleep(0.5)
    ...     supervisor.poll()                                        # doctest: +SKIP
    """

    def __init__(
        self,
        open_stream: Callable[[], object],
        policy: Policy = "reopen",
        retry_s: float = DEFAULT_RETRY_S,
        give_up_s: float = DEFAULT_GIVE_UP_S,
        on_lost: Callable[[str], None] | None = None,
        on_restored: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if policy not in ("reopen", "exit"):
            raise ConfigError(f"policy={policy!r} is not one of 'reopen', 'exit'")
        for name, value, low, high in (
            ("retry_s", retry_s, 0.05, 60.0),
            ("give_up_s", give_up_s, 0.0, 7 * 24 * 3600.0),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (low <= value <= high)
            ):
                raise ConfigError(f"{name}={value!r} is not a number in {low:g}..{high:g} s")
        self._open_stream = open_stream
        self.policy = policy
        self.retry_s = float(retry_s)
        self.give_up_s = float(give_up_s)
        self.on_lost = on_lost
        self.on_restored = on_restored
        self._clock = clock
        self.stream = None
        self.device_losses = 0
        self.reopen_attempts = 0
        self.reopens = 0
        self.seconds_without_device = 0.0
        self.last_error: str | None = None
        self._lost_at: float | None = None
        self._lost_total = 0.0  # seconds without a device in earlier, ended losses
        self._next_attempt = 0.0
        self._closed_totals = {"callback faults": 0, "non-finite input samples zeroed": 0}
        self._description = ""

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Open and start the first stream. Raises DeviceError if the device is missing now
        (there is nothing running to keep; the command should exit)."""
        self.stream = self._open_stream()
        self._description = self.stream.describe()
        self.stream.start()

    @property
    def running(self) -> bool:
        """Whether a stream is open and active right now."""
        return self.stream is not None and bool(self.stream.active)

    def poll(self) -> bool:
        """Check the stream; handle a loss or a pending reopen. Call every few hundred ms.

        Returns
        -------
        bool
            Whether audio is running after the call.

        Raises
        ------
        DeviceError
            Under ``policy="exit"`` when the stream has died, or under ``"reopen"`` after
            ``give_up_s`` without a device; the message names the device and the reason.
        """
        now = self._clock()
        if self._lost_at is None:
            if self.running:
                return True
            self._lose(now)
        if self.policy == "exit":
            raise DeviceError(
                f"the audio stream stopped ({self.last_error}) on {self._description}; "
                "exiting as configured (policy 'exit'); use policy 'reopen' to wait for the "
                "device"
            )
        waited = now - self._lost_at
        self.seconds_without_device = self._lost_total + waited
        if self.give_up_s > 0.0 and waited >= self.give_up_s:
            raise DeviceError(
                f"the audio device did not come back within {self.give_up_s:g} s "
                f"({self.reopen_attempts} reopen attempts; last error: {self.last_error}); "
                f"was {self._description}"
            )
        if now < self._next_attempt:
            return False
        self._next_attempt = now + self.retry_s
        self.reopen_attempts += 1
        try:
            stream = self._open_stream()
        except DeviceError as exc:
            self.last_error = str(exc)
            return False
        if self.on_restored is not None:
            self.on_restored()
        try:
            stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError: the device vanished again
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._close(stream)
            return False
        self.stream = stream
        self._description = stream.describe()
        self.reopens += 1
        self._lost_total = self.seconds_without_device
        self._lost_at = None
        return True

    def _lose(self, now: float) -> None:
        stream = self.stream
        self.device_losses += 1
        self._lost_at = now
        self._next_attempt = now  # the first reopen attempt is immediate
        self.last_error = f"stream on {self._description} became inactive"
        if stream is not None:
            self._close(stream)
            self.stream = None
        if self.on_lost is not None:
            self.on_lost(self.last_error)

    def _close(self, stream) -> None:
        """Close a dead stream, keeping its counts; a vanished device's stop raises: ignore it."""
        try:
            extra = stream.report().telemetry
        except Exception:  # noqa: BLE001 - a dead stream may not even report its latency
            extra = {}
        for key in self._closed_totals:
            self._closed_totals[key] += int(extra.get(key, 0) or 0)
        for action in (stream.stop, stream.close):
            try:
                action()
            except Exception:  # noqa: BLE001 - PortAudioError from a device that is gone
                pass

    def stop(self) -> None:
        """Stop and close the running stream (idempotent)."""
        if self.stream is not None:
            self._close(self.stream)
            self.stream = None

    def __enter__(self) -> DeviceSupervisor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reporting -------------------------------------------------------------------------------
    def telemetry(self) -> dict:
        """The supervisor's counters, for the latency report and status lines."""
        return {
            "device losses": self.device_losses,
            "device reopen attempts": self.reopen_attempts,
            "device reopens": self.reopens,
            "seconds without device": round(self.seconds_without_device, 3),
            "device policy": self.policy,
            "last device error": self.last_error or "",
        }

    def report(self, pipeline=None, telemetry: dict | None = None):
        """The latency report of the whole run (all streams), with the supervisor's counters.

        ``pipeline`` is needed only when no stream is open (the device is gone right now).
        """
        extra = self.telemetry()
        if self.stream is not None:
            report = self.stream.report(telemetry={**extra, **(telemetry or {})})
            for key, value in self._closed_totals.items():
                report.telemetry[key] = int(report.telemetry.get(key, 0)) + value
            return report
        if pipeline is None:
            raise ConfigError("no stream is open: pass the pipeline to report on")
        return pipeline.report(telemetry={**extra, **self._closed_totals, **(telemetry or {})})
