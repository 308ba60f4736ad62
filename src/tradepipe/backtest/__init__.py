"""Execution engine, metrics, benchmarks and reports."""
