"""Benchmarks: `python -m bench.<name> --help`; results in docs/benchmarks/."""
