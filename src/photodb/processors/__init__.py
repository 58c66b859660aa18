"""Orchestration of stages over photos."""
