"""Model code: one module per model family and task, on a small lazy-loading base (see base.py)."""
