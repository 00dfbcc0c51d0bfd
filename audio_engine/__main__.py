"""``python -m audio_engine`` is the ``audio-engine`` command."""

from audio_engine.cli import main

raise SystemExit(main())
