"""Signal processing that knows no devices: processors and Numba kernels.

Every streaming stage follows :class:`audio_engine.dsp.base.Processor`. Nothing here imports
:mod:`audio_engine.io`.
"""
