"""Store stage: SQLAlchemy 2 models, Alembic migrations and the async repository.

``open_repository(url)`` is the entry point; see ``oracle.store.repository``.
"""
