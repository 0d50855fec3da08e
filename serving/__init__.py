"""KServe predictor/transformer entry points (``python -m serving``); the logic lives in ``nexus.serving``."""
