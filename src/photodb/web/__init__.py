"""`photodb web`: a local review page for people, clusters and match candidates (127.0.0.1 only)."""
