"""The scaling knobs (config.Scaling) as a deployment applies them: the run coordinator's limits written into a
dagster.yaml (run_limits.py) and `payment-platform scaling` (cli.py)."""
