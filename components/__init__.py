"""Kubeflow Pipelines components: thin wrappers that parse inputs, call ``nexus`` and write outputs."""
