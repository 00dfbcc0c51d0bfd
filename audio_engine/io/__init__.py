"""Devices, files, the simulated clock and the virtual audio device. Knows no DSP.

Backends drive a callback with sounddevice's signature
``callback(indata, outdata, frames, time_info, status)``; :mod:`audio_engine.engine` supplies
that callback from a pipeline.
"""
