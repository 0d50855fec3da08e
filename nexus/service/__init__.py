"""The metadata service: FastAPI app, SQLAlchemy tables, Alembic migrations, auth, storage, metrics.

Start it with ``nexus api`` or build it in code with :func:`nexus.service.app.create_app`.
"""
