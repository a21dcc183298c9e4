"""Benchmarks of the booking core on PostgreSQL, run by `make bench` (see bench/run.py)."""
