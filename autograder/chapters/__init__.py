"""The assignments the kit ships, one folder each (assignment.py reads them): chapter 3's attention is the default.

A folder holds `assignment.toml` (graded names, points, stub signatures, where the solutions are), `checks/`
(the pytest checks), `stand_ins.py` (run in the worker: the kit's stand-ins for graded classes other graded code
builds on) and, where it has them, its mistake knowledge (`explain/`, `measure/`).
"""
