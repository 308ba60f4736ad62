"""The bottom layer: array types, the bar schema, atomic I/O, the execution accounting, market arrays, the
scaler and the performance metrics. It imports nothing else of tradepipe."""

__all__ = ["execution", "io", "market", "metrics", "scaler", "schema", "types"]
