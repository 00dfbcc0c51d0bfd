"""The command line: help, exit codes and error messages (no traceback ever reaches a user)."""

from __future__ import annotations

import subprocess

import pytest

from audio_engine.cli import main
from audio_engine.commands import command_modules
from tests.conftest import CLI


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for module in command_modules():
        assert module.NAME in out
    assert "audio-engine demo" in out


@pytest.mark.parametrize("name", [m.NAME for m in command_modules()])
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 200, f"`audio-engine {name} --help` explains too little"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_engine_errors_are_one_line_not_a_traceback(capsys):
    assert main(["demo", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "audio-engine demo: error: --seconds=0.0 is not in 1..3600"
    assert "Traceback" not in err


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout.startswith("audio-engine ")


def test_help_does_not_import_sounddevice_or_numba():
    # `--help` must work on a machine without PortAudio and stay fast: commands import heavy
    # modules inside run().
    code = (
        "import sys; from audio_engine.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('sounddevice', 'numba') if m in sys.modules))"
    )
    r = subprocess.run([CLI[0], "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
