"""Fills a coordinator state database with copies of one real job.

    python3 bench/fill_state.py SOURCE_DB DEST_DB COUNT [--without_job_columns]

Takes the newest job of SOURCE_DB (a state database a retrain-server wrote)
and writes COUNT copies of it into DEST_DB's jobs table, each with its own id
j-000001 ... and sequence and without its request_id, plus next_job_seq. With --without_job_columns the
jobs table has only (seq, id, job), as databases written before the type,
state and request_id columns: the server fills them in on its first start.
"""
import sqlite3
import sys

from protowire import varint, without_fields


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 3:
        sys.exit(__doc__)
    src, dst, count = args[0], args[1], int(args[2])
    without_columns = "--without_job_columns" in sys.argv
    row = sqlite3.connect(src).execute(
        "SELECT job, type, state FROM jobs ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        sys.exit(f"{src}: no job to copy")
    blob, job_type, state = row
    # Each copy gets its own id (Job field 1) and no request_id (field 4).
    rest = without_fields(blob, {1, 4})
    db = sqlite3.connect(dst)
    if without_columns:
        db.execute("CREATE TABLE jobs(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                   "job BLOB NOT NULL)")
    else:
        db.execute("CREATE TABLE jobs(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                   "type INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0, "
                   "request_id TEXT NOT NULL DEFAULT '', job BLOB NOT NULL)")
    rows = []
    for seq in range(1, count + 1):
        job_id = b"j-%06d" % seq
        rows.append((seq, job_id.decode(), b"\x0a" + varint(len(job_id)) + job_id + rest))
    if without_columns:
        db.executemany("INSERT INTO jobs(seq, id, job) VALUES(?, ?, ?)", rows)
    else:
        db.executemany("INSERT INTO jobs(seq, id, type, state, job) VALUES(?, ?, ?, ?, ?)",
                       [(s, i, job_type, state, b) for s, i, b in rows])
    db.execute("CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("INSERT INTO counters VALUES('next_job_seq', ?)", (count + 1,))
    db.commit()
    print(f"{dst}: {count} copies of a {len(blob)}-byte job")


if __name__ == "__main__":
    main()
