"""audio_engine: a real-time audio engine for a call centre.

Headset noise suppression, office sound masking, calibration, hearing protection and
per-frame latency reporting, on one streaming processor protocol.

The folder tree is the architecture: :mod:`audio_engine.dsp` is signal processing that knows no
devices; :mod:`audio_engine.io` is devices, files and the simulated clock and knows no DSP;
:mod:`audio_engine.commands` wires the two together for the command line.
"""

from audio_engine.errors import (
    AudioEngineError,
    AudioFileError,
    CalibrationError,
    ConfigError,
    DeviceError,
)

__version__ = "0.1.0"

__all__ = [
    "AudioEngineError",
    "AudioFileError",
    "CalibrationError",
    "ConfigError",
    "DeviceError",
    "__version__",
]
