"""Regenerate schema.sql from migrations/ (tests fail while the two disagree)."""

from pathlib import Path

from photodb.database.migrations import render_schema

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "schema.sql"
    target.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {target}")
