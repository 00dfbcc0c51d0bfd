"""The engine's documented errors.

Every public entry point either works or raises one of these (or a ``ValueError`` /
``TypeError`` subclass of them), with a message that names the bad value and says what is
allowed. The command line turns them into a one-line message and exit status 2, never a
traceback.
"""


class AudioEngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(AudioEngineError, ValueError):
    """A parameter, site config or command-line value is out of range or malformed."""


class CalibrationError(AudioEngineError, ValueError):
    """A calibration file is corrupt, of an unknown version, or does not fit the site."""


class AudioFileError(AudioEngineError, OSError):
    """An audio file cannot be read or written (missing, truncated, unsupported format)."""


class DeviceError(AudioEngineError, RuntimeError):
    """No audio device matches, the device refuses the settings, or PortAudio is missing."""
