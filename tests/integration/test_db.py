async def test_migrate_twice(pool, settings):
    from ordinaut.store import db

    conn = await pool.acquire()
    try:
        assert await db.migrate(conn, settings.migrations_dir) == []
    finally:
        await pool.release(conn)
