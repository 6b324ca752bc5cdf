"""Replay: drain the failed-payment backup into the stores it missed, oldest first, rate-bounded, idempotent."""
