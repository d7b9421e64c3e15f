"""The DuckDB store: migrations from older files, refusal of newer ones, locking, transactions, threads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmrec_core.store.database import LATEST_VERSION, MIGRATIONS, Store, StoreError


def test_a_file_made_by_an_older_version_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = Store(path, upto=1)  # what version 1 of mmrec wrote
    old.cursor().execute("INSERT INTO items (dataset, item_id, title) VALUES ('d', 'i1', 'Jacket')")
    assert old.version == 1
    assert old.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'descriptions'") == 0
    old.close()

    new = Store(path)
    assert new.version == LATEST_VERSION == MIGRATIONS[-1][0]
    assert new.scalar("SELECT title FROM items WHERE item_id = 'i1'") == "Jacket"
    new.cursor().execute("INSERT INTO jobs (job_id, kind, status) VALUES ('j', 'test', 'done')")
    assert new.scalar("SELECT count(*) FROM schema_version") == LATEST_VERSION
    new.close()


def test_a_file_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    s = Store(path)
    s.cursor().execute("INSERT INTO schema_version (version, note) VALUES (?, 'future')", [LATEST_VERSION + 1])
    s.close()
    with pytest.raises(StoreError, match="newer than this mmrec"):
        Store(path)


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from mmrec_core.store import Store; s = Store({str(path)!r}); "
                               "print('open', flush=True); import time; time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="open in another process"):
            Store(path)
    finally:
        holder.kill()
        holder.wait()


def test_transaction_rolls_back_everything_on_error(tmp_path: Path) -> None:
    s = Store(tmp_path / "tx.duckdb")
    with pytest.raises(RuntimeError, match="boom"):
        with s.transaction() as tx:
            tx.execute("INSERT INTO items (dataset, item_id) VALUES ('d', 'a')")
            raise RuntimeError("boom")
    assert s.scalar("SELECT count(*) FROM items") == 0
    with s.transaction() as tx:
        tx.execute("INSERT INTO items (dataset, item_id) VALUES ('d', 'a')")
    assert s.scalar("SELECT count(*) FROM items") == 1
    s.close()


def test_each_thread_gets_its_own_cursor_and_sees_committed_rows(tmp_path: Path) -> None:
    s = Store(tmp_path / "threads.duckdb")
    with s.transaction() as tx:
        tx.execute("INSERT INTO items (dataset, item_id) SELECT 'd', 'i' || range FROM range(1000)")
    cursors, counts = [], []

    def work() -> None:
        mine = s.cursor()
        cursors.append(mine)  # the object itself: a freed cursor's id could be reused by the next thread's
        time.sleep(0.01)
        assert s.cursor() is mine  # the same one for the whole thread (else `counts` misses this thread)
        counts.append(s.scalar("SELECT count(*) FROM items"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [1000] * 4
    assert len({id(c) for c in cursors}) == 4 and all(s.cursor() is not c for c in cursors)
    s.close()
