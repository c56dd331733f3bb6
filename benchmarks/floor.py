"""The physical limit here: raw psycopg round trips, no library in between."""

from __future__ import annotations

import time
from typing import Any

import psycopg

N = 1000


def run(url: str, params: dict[str, Any]) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS floor (id bigint PRIMARY KEY, v jsonb)")
        conn.execute("TRUNCATE floor")
        for i in range(50):  # warm up (and let psycopg prepare the statements)
            conn.execute("INSERT INTO floor VALUES (%s, '{}')", (-1 - i,))
        start = time.perf_counter()
        for i in range(N):
            conn.execute("INSERT INTO floor VALUES (%s, '{}')", (i,))
        insert = (time.perf_counter() - start) / N * 1e6
        start = time.perf_counter()
        for i in range(N):
            conn.execute("SELECT v FROM floor WHERE id = %s", (i,)).fetchone()
        select = (time.perf_counter() - start) / N * 1e6
    return {"floor_insert_commit": insert, "floor_select_pk": select}
