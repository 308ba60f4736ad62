"""Market data: sources, the canonical bar schema and atomic storage."""
