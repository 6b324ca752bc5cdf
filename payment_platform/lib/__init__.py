"""Small helpers shared by several rooms (no I/O of their own, no Dagster)."""
