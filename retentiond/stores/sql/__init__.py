"""SQL stores through SQLAlchemy Core: PostgreSQL first, SQLite as the embedded default."""
