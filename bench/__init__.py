"""Benchmarks of the sending path: `make bench` (see docs/performance.md)."""
