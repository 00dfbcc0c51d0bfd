"""The ``audio-engine`` subcommands, one module each.

A command module defines ``NAME`` (the subcommand), ``ORDER`` (its place in ``--help``),
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. It imports heavy
libraries inside ``run`` so that ``audio-engine --help`` stays fast and works without PortAudio.
Modules are discovered, so adding a command is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil


def command_modules() -> list:
    """Every command module in this package, in ``ORDER``."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))
