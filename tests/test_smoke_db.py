def test_fresh_database_has_default_collection(db):
    with db.connection() as conn:
        assert conn.execute("SELECT name FROM collection").fetchall() == [("default",)]
