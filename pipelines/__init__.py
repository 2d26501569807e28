"""ZenML pipelines: wiring of steps only (run.py picks one, configs/ give the values)."""
