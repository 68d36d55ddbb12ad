"""Benchmarks of GFL from Scratch; run them all with ``python -m benchmarks.run``."""
