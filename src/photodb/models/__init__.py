"""Pydantic schemas exchanged with outside services."""
