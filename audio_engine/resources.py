"""Where the engine finds its data: the ``calibration/`` folder.

``calibration/`` (target curves, the example site, headset profiles) is data at the top of the
repository. A wheel or non-editable install carries a copy of it as the package
``audio_engine.calibration_data`` (mapped in ``pyproject.toml``), so the demo and the default
profiles work wherever the engine is installed. Working from a checkout, the checkout's own
folder wins, so edits to it take effect at once.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

#: The repository's calibration folder, when the package runs from a checkout.
_CHECKOUT = _PACKAGE.parent / "calibration"

#: The installed copy (``audio_engine.calibration_data``, a data-only namespace package).
_INSTALLED = _PACKAGE / "calibration_data"


def calibration_dir() -> Path:
    """The folder holding the calibration data (checkout first, then the installed copy)."""
    if _CHECKOUT.is_dir():
        return _CHECKOUT
    return _INSTALLED


def calibration_file(*parts: str) -> Path:
    """Path of a file in the calibration data, e.g. ``calibration_file("example_site.toml")``."""
    return calibration_dir().joinpath(*parts)
