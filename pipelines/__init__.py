"""Pipeline definitions built from ``components/`` and their compiled IR YAML."""
