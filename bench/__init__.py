"""Benchmarks of the operator against a floor (raw aiohttp doing the irreducible work).

Entry point: `python -m bench` (or `make bench`); method and results in docs/performance.md.
"""
