"""Connection management, migrations and every SQL statement PhotoDB runs."""
