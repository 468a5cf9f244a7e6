"""Benchmarks and evaluations. Each prints a table and writes JSON."""
