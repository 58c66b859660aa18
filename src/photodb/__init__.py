"""PhotoDB: a personal photo indexing pipeline on PostgreSQL + pgvector."""

__version__ = "0.1.0"
