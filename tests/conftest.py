"""Shared pytest configuration: markers and the sound-server probe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

# Tests run the CLI as `audio-engine ...` in subprocesses: make the interpreter's own scripts
# folder (a venv's bin/) findable even when the venv is not activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

#: The command line as a subprocess argv prefix, independent of PATH.
CLI = [sys.executable, "-m", "audio_engine"]


def sound_server_running() -> tuple[bool, str]:
    """Whether a PulseAudio/PipeWire-pulse server answers ``pactl info``, and why not."""
    if shutil.which("pactl") is None:
        return False, "pactl not installed (apt-get install pulseaudio-utils)"
    try:
        r = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False, "pactl info timed out"
    if r.returncode != 0:
        return False, f"no sound server answers pactl: {r.stderr.strip() or r.stdout.strip()}"
    return True, ""


@pytest.fixture(scope="session")
def sound_server():
    """Skip (with the reason) unless a sound server runs; in CI (CI=true) fail instead."""
    ok, why = sound_server_running()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must start a sound server before the tests: {why}")
        pytest.skip(f"needs a running sound server: {why}")
    return True
