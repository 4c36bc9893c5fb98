"""Rerunnable speed, memory and load benchmarks (docs/speed.md, docs/memory.md,
docs/reliability.md); each runs from the repository root as a script or with `-m`."""
