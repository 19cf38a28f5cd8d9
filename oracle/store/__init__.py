"""Store stage: SQLAlchemy 2 models, Alembic migrations and the async repository.

``open_repository(url)`` is the entry point; see ``oracle.store.repository``.
"""

from oracle.store.repository import Repository, open_repository

__all__ = ["Repository", "open_repository"]
