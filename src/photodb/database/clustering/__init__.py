"""Every SQL statement of identity clustering, as functions taking a psycopg connection so that
callers compose them into one transaction. The lock order they all follow is in `locks`."""
