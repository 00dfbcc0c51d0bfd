"""The virtual microphone and virtual speaker on a PulseAudio or PipeWire-pulse server.

The **virtual microphone** is two objects:

* a mono null sink ``<name>_sink`` that the engine plays the cleaned headset signal into, loaded
  with ``norewinds=1`` — without it the server rewinds the sink when a stream starts and the
  first 10-15 ms of every stream are lost;
* a remap source ``<name>`` (``channels=1 channel_map=mono``) on the sink's monitor: this is what
  softphones list as a microphone (a bare ``.monitor`` source is hidden by many of them).

The **virtual speaker** is the mirror: a mono null sink ``<name>`` the softphone plays the far
end into; the engine reads its ``<name>.monitor``, processes the receive path and plays it to
the headset.

Everything goes through ``pactl``, so the same code drives PulseAudio and PipeWire's pulse
server. :func:`create_virtual_mic` and :func:`create_virtual_speaker` are idempotent (a second
call finds the objects and loads nothing), :func:`remove_virtual_mic` unloads exactly the
modules that own the named objects, source before sink. Nothing here is real-time code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from audio_engine.errors import ConfigError, DeviceError

#: Default object names; softphones show the source's description, the names are for scripts.
DEFAULT_MIC_NAME = "CleanMic"
DEFAULT_SPEAKER_NAME = "CleanSpeaker"

#: The virtual devices run at 48 kHz float32: the PipeWire default rate, so no resampling there,
#: and float so a suppressor's output is never quantised before the softphone's own encoder.
VIRTUAL_SAMPLE_RATE = 48000
VIRTUAL_FORMAT = "float32le"

#: pactl answers a local server in milliseconds; 10 s means the server is hung.
PACTL_TIMEOUT_S = 10.0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


def check_device_name(name: object) -> str:
    """Return ``name`` if it can name a sink/source (letters, digits, ``_.-``; 1-63 chars)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith(".monitor"):
        raise ConfigError(
            f"name={name!r} is not a valid virtual device name: use 1-63 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit, not ending in '.monitor'"
        )
    return name


def pactl(*args: str, timeout_s: float = PACTL_TIMEOUT_S) -> str:
    """Run ``pactl args...`` and return its stdout.

    Raises
    ------
    DeviceError
        If pactl is not installed, no server answers, or the command fails (with pactl's message).
    """
    exe = shutil.which("pactl")
    if exe is None:
        raise DeviceError(
            "pactl not found: the virtual microphone needs a PulseAudio or PipeWire-pulse "
            "server and its client tools (apt-get install pulseaudio-utils)"
        )
    try:
        result = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"pactl {' '.join(args)} did not answer within {timeout_s:g} s: the sound server hangs"
        ) from None
    if result.returncode != 0:
        # One line: pactl prints the error and pa_context_connect's echo of it on two.
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
        message = "; ".join(line for line in lines if line) or f"exit status {result.returncode}"
        if "Connection refused" in message or "Connection failure" in message:
            raise DeviceError(
                f"no PulseAudio/PipeWire sound server answers ({message}); start one, or on "
                "Windows/macOS use VB-Cable/BlackHole (docs/virtual_mic.md)"
            )
        raise DeviceError(f"pactl {' '.join(args)} failed: {message}")
    return result.stdout


def server_name() -> str:
    """The server's name from ``pactl info`` (``"pulseaudio"`` or ``"PulseAudio (on PipeWire ...)"``)."""
    for line in pactl("info").splitlines():
        if line.startswith("Server Name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


@dataclass
class Module:
    """One loaded module from ``pactl list short modules``."""

    index: int
    name: str
    arguments: str

    def argument(self, key: str) -> str | None:
        """The value of ``key=value`` in the module arguments (unquoted values only)."""
        m = re.search(rf"(?:^|\s){re.escape(key)}=(\S+)", self.arguments)
        return m.group(1) if m else None


def list_modules() -> list[Module]:
    """Every loaded module."""
    modules = []
    for line in pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            modules.append(Module(int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return modules


def _short_list(kind: str) -> list[list[str]]:
    return [line.split("\t") for line in pactl("list", "short", kind).splitlines() if line.strip()]


def list_sinks() -> dict[str, str]:
    """Sink name -> ``"format channels rate"`` sample spec."""
    return {row[1]: row[3] if len(row) > 3 else "" for row in _short_list("sinks") if len(row) > 1}


def list_sources() -> dict[str, str]:
    """Source name (monitors included) -> ``"format channels rate"`` sample spec."""
    return {
        row[1]: row[3] if len(row) > 3 else "" for row in _short_list("sources") if len(row) > 1
    }


def _streams_on(kind: str, object_index: str) -> int:
    """How many sink inputs / source outputs are connected to the sink/source ``object_index``."""
    return sum(1 for row in _short_list(kind) if len(row) > 1 and row[1] == object_index)


def _index_of(kind: str, name: str) -> str | None:
    for row in _short_list(kind):
        if len(row) > 1 and row[1] == name:
            return row[0]
    return None


def _find_module(module_name: str, key: str, value: str, modules: list[Module]) -> Module | None:
    for m in modules:
        if m.name == module_name and m.argument(key) == value:
            return m
    return None


def _load(module_name: str, *arguments: str) -> int:
    out = pactl("load-module", module_name, *arguments).strip()
    return int(out) if out.isdigit() else -1


def _null_sink_arguments(sink_name: str, description: str, sample_rate: int) -> list[str]:
    # media.class goes inside sink_properties: PipeWire-pulse turns it into the node's class,
    # PulseAudio keeps it as a harmless property (as a bare module argument PulseAudio rejects it).
    return [
        f"sink_name={sink_name}",
        f"rate={sample_rate}",
        "channels=1",
        "channel_map=mono",
        f"format={VIRTUAL_FORMAT}",
        "norewinds=1",
        f"sink_properties=\"device.description='{description}' media.class=Audio/Sink\"",
    ]


@dataclass
class VirtualDeviceStatus:
    """What exists of one virtual device on the server.

    ``play_to`` is the sink the engine (virtual mic) or the softphone (virtual speaker) plays
    into; ``record_from`` is the source the softphone (virtual mic) or the engine (virtual
    speaker) records from.
    """

    kind: str
    name: str
    play_to: str
    record_from: str
    sink_present: bool = False
    source_present: bool = False
    sink_module: int | None = None
    source_module: int | None = None
    sample_spec: str = ""
    players: int = 0
    recorders: int = 0
    server: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Both ends exist and can be used."""
        return self.sink_present and self.source_present

    def to_text(self) -> str:
        """A short readable status."""
        state = "ready" if self.complete else ("partial" if self.sink_present else "absent")
        lines = [
            f"virtual {self.kind} '{self.name}': {state} (server: {self.server or 'unknown'})",
            f"  play into : {self.play_to}  "
            + (
                f"[module {self.sink_module}, {self.sample_spec}, {self.players} playing]"
                if self.sink_present
                else "[missing]"
            ),
            f"  record    : {self.record_from}  "
            + (
                f"[module {self.source_module}, {self.recorders} recording]"
                if self.source_present
                else "[missing]"
            ),
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def virtual_mic_status(name: str = DEFAULT_MIC_NAME) -> VirtualDeviceStatus:
    """Status of the virtual microphone ``name`` (sink ``<name>_sink``, source ``<name>``)."""
    check_device_name(name)
    sink_name = f"{name}_sink"
    status = VirtualDeviceStatus("microphone", name, sink_name, name, server=server_name())
    modules = list_modules()
    sinks, sources = list_sinks(), list_sources()
    status.sink_present = sink_name in sinks
    status.source_present = name in sources
    status.sample_spec = sinks.get(sink_name, "")
    sink_module = _find_module("module-null-sink", "sink_name", sink_name, modules)
    source_module = _find_module("module-remap-source", "source_name", name, modules)
    status.sink_module = sink_module.index if sink_module else None
    status.source_module = source_module.index if source_module else None
    if status.sink_present:
        status.players = _streams_on("sink-inputs", _index_of("sinks", sink_name) or "")
    if status.source_present:
        status.recorders = _streams_on("source-outputs", _index_of("sources", name) or "")
    if status.sink_present and sink_module is None:
        status.notes.append(f"{sink_name} was not loaded by pactl (a config file owns it)")
    return status


def create_virtual_mic(
    name: str = DEFAULT_MIC_NAME, sample_rate: int = VIRTUAL_SAMPLE_RATE
) -> VirtualDeviceStatus:
    """Create the virtual microphone ``name`` if it is not there yet; return its status.

    Idempotent: existing objects are kept, only what is missing is loaded.

    Raises
    ------
    ConfigError
        If ``name`` is not a valid device name.
    DeviceError
        If no server answers or a module does not load.
    """
    check_device_name(name)
    if sample_rate not in (8000, 16000, 24000, 32000, 44100, 48000, 96000):
        raise ConfigError(
            f"sample_rate={sample_rate!r} is not one of 8000, 16000, 24000, 32000, 44100, "
            "48000, 96000 Hz"
        )
    sink_name = f"{name}_sink"
    sinks, sources = list_sinks(), list_sources()
    if name in sinks:
        raise DeviceError(
            f"a sink named '{name}' already exists; the virtual microphone needs that name for "
            "its source: pick another --name"
        )
    if sink_name not in sinks:
        _load(
            "module-null-sink",
            *_null_sink_arguments(
                sink_name, f"{name} input (audio-engine plays here)", sample_rate
            ),
        )
    if name not in sources:
        _load(
            "module-remap-source",
            f"source_name={name}",
            f"master={sink_name}.monitor",
            "channels=1",
            "channel_map=mono",
            "master_channel_map=mono",
            "remix=no",
            f"source_properties=\"device.description='{name} (noise-suppressed microphone)'\"",
        )
    status = virtual_mic_status(name)
    if not status.complete:
        raise DeviceError(
            f"virtual microphone '{name}' is incomplete after creation:\n{status.to_text()}"
        )
    return status


def remove_virtual_mic(name: str = DEFAULT_MIC_NAME) -> list[int]:
    """Unload the modules of the virtual microphone ``name``; return the unloaded indices.

    Removing what is not there is not an error (idempotent). The remap source goes first, so no
    softphone is ever left on a source whose master vanished.
    """
    check_device_name(name)
    modules = list_modules()
    unloaded = []
    source = _find_module("module-remap-source", "source_name", name, modules)
    sink = _find_module("module-null-sink", "sink_name", f"{name}_sink", modules)
    for module in (source, sink):
        if module is not None:
            pactl("unload-module", str(module.index))
            unloaded.append(module.index)
    return unloaded


def virtual_speaker_status(name: str = DEFAULT_SPEAKER_NAME) -> VirtualDeviceStatus:
    """Status of the virtual speaker ``name`` (sink ``<name>``, read by the engine at ``<name>.monitor``)."""
    check_device_name(name)
    monitor = f"{name}.monitor"
    status = VirtualDeviceStatus("speaker", name, name, monitor, server=server_name())
    sinks = list_sinks()
    status.sink_present = name in sinks
    status.source_present = status.sink_present and monitor in list_sources()
    status.sample_spec = sinks.get(name, "")
    module = _find_module("module-null-sink", "sink_name", name, list_modules())
    status.sink_module = status.source_module = module.index if module else None
    if status.sink_present:
        status.players = _streams_on("sink-inputs", _index_of("sinks", name) or "")
        status.recorders = _streams_on("source-outputs", _index_of("sources", monitor) or "")
    return status


def create_virtual_speaker(
    name: str = DEFAULT_SPEAKER_NAME, sample_rate: int = VIRTUAL_SAMPLE_RATE
) -> VirtualDeviceStatus:
    """Create the virtual speaker null sink ``name`` if it is not there yet; return its status."""
    check_device_name(name)
    if name not in list_sinks():
        _load(
            "module-null-sink",
            *_null_sink_arguments(name, f"{name} (audio-engine hearing protection)", sample_rate),
        )
    status = virtual_speaker_status(name)
    if not status.complete:
        raise DeviceError(
            f"virtual speaker '{name}' is incomplete after creation:\n{status.to_text()}"
        )
    return status


def remove_virtual_speaker(name: str = DEFAULT_SPEAKER_NAME) -> list[int]:
    """Unload the virtual speaker's null sink; return the unloaded module indices (idempotent)."""
    check_device_name(name)
    module = _find_module("module-null-sink", "sink_name", name, list_modules())
    if module is None:
        return []
    pactl("unload-module", str(module.index))
    return [module.index]
