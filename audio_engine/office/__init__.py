"""The simulated office: speech, office noises and rooms, for the demo, ``--simulate`` runs,
tests and benchmarks. Pure signal generation; knows no devices.
"""
