"""What a non-editable install carries: every subpackage, the demo speech, the calibration data."""

from __future__ import annotations

import tomllib
from pathlib import Path

from audio_engine.resources import calibration_dir, calibration_file

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "audio_engine").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    missing = found - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_calibration_data_is_found():
    assert calibration_dir().is_dir()
    for name in ("example_site.toml", "masking_target_default.csv"):
        assert calibration_file(name).is_file(), name
    assert any(calibration_file("headsets").glob("*.toml"))


def test_demo_speech_is_package_data():
    assert (ROOT / "audio_engine" / "data" / "demo_speech_en_ko_16k.flac").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "*.flac" in package_data["audio_engine.data"]
