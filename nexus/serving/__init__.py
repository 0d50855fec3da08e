"""Model serving: a KServe predictor with dynamic batching, a canary router and cluster manifests.

Import the pieces from their modules (``nexus.serving.predictor``, ``nexus.serving.router``, ...);
this package itself imports nothing heavy, so the CPU path stays free of torch and Ultralytics.
"""
