"""The results database: one SQLite file, one row per (model, dataset, sample, spec, budget, seed, config).

Rows are written by one process (the driver) and committed one at a time, so a run killed at any
point keeps every finished row and no partial one; the UNIQUE key makes a rerun skip what is
recorded instead of duplicating it. ``config_hash`` covers everything else that changes a row's values
(model loading options, generation length, metric settings, the sample's content), so changing one
of those records new rows instead of silently mixing old and new.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import TokcompressError

__all__ = ["KEY_FIELDS", "ResultsDB", "ResultsDBError", "RowKey", "SCHEMA_VERSION", "APPLICATION_ID"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x746B6370
"""SQLite ``application_id`` of every results database ("tkcp"): a database without it was not made here
and is never written to."""


class ResultsDBError(TokcompressError, OSError):
    """The results database cannot be created, read or trusted (the message names the path)."""


KEY_FIELDS = ("model", "dataset", "sample", "spec_hash", "budget", "seed", "config_hash")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    model       TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    sample      TEXT NOT NULL,
    spec_hash   TEXT NOT NULL,
    budget      TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    spec        TEXT NOT NULL,          -- label in tables and plots
    suite       TEXT,
    spec_json   TEXT,                   -- the spec that ran (null for the unpruned reference)
    metrics     TEXT NOT NULL,          -- {metric: value or null}
    output      TEXT NOT NULL,          -- generated text, token ids, token counts
    versions    TEXT NOT NULL,          -- package versions of the worker
    machine     TEXT NOT NULL,          -- host, platform, accelerator of the worker
    created     TEXT NOT NULL,          -- UTC ISO time the row was computed
    duration_s  REAL,
    UNIQUE (model, dataset, sample, spec_hash, budget, seed, config_hash)
);
"""

_JSON_COLUMNS = ("spec_json", "metrics", "output", "versions", "machine")


@dataclass(frozen=True, order=True)
class RowKey:
    model: str
    dataset: str
    sample: str
    spec_hash: str
    budget: str
    seed: int
    config_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in KEY_FIELDS}


class ResultsDB:
    """SQLite results store; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        """Open the database at `path`, creating it (and its folder) when `create` and it does not exist.

        A file that is not SQLite, a SQLite file another program made, or one of another schema version
        is refused before anything is written to it.
        """
        self.path = Path(path)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh and not create:
            raise ResultsDBError(f"results database {self.path} does not exist")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise ResultsDBError(f"cannot open results database {self.path}: {exc}") from None
        try:
            self._check_or_create(fresh)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise ResultsDBError(f"{self.path} is not a usable results database: {exc}") from None
        except ResultsDBError:
            self.conn.close()
            raise

    def _check_or_create(self, fresh: bool) -> None:
        conn = self.conn
        conn.row_factory = sqlite3.Row
        app = conn.execute("PRAGMA application_id").fetchone()[0]  # reads the header: fails on a non-database
        if not fresh and app != APPLICATION_ID:
            raise ResultsDBError(f"{self.path} is a SQLite database that tokcompress did not create (application_id "
                                 f"{app:#x}); it is left untouched: pass another --db / --run-dir")
        conn.execute("PRAGMA journal_mode=WAL")  # readers (report) never block the writer
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
        if fresh:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.commit()
            return
        found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None or int(found[0]) != SCHEMA_VERSION:
            version = found[0] if found else "none"
            raise ResultsDBError(f"results database {self.path} has schema version {version}; this version of tokcompress "
                                 f"reads version {SCHEMA_VERSION}: use a new --run-dir")

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- writing -----------------------------------------------------------------------------
    def insert(self, row: dict[str, Any]) -> bool:
        """Record one row and commit; False (and nothing written) when its key is already recorded."""
        values = {k: (json.dumps(row.get(k)) if k in _JSON_COLUMNS else row.get(k)) for k in _COLUMNS}
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [values[k] for k in _COLUMNS],
        )
        self.conn.commit()
        return cur.rowcount == 1

    # -- reading -----------------------------------------------------------------------------
    def keys(self) -> set[RowKey]:
        """Keys of every recorded row."""
        cols = ", ".join(KEY_FIELDS)
        return {RowKey(*r) for r in self.conn.execute(f"SELECT {cols} FROM results")}

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def rows(self, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (JSON columns decoded), in insertion order; `where` filters on equal column values."""
        return list(self.iter_rows(where))

    def iter_rows(self, where: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        where = where or {}
        unknown = set(where) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown results column(s) {sorted(unknown)}; columns: {', '.join(_COLUMNS)}")
        clause = (" WHERE " + " AND ".join(f"{k} = ?" for k in where)) if where else ""
        for r in self.conn.execute(f"SELECT * FROM results{clause} ORDER BY id", list(where.values())):
            d = dict(r)
            for k in _JSON_COLUMNS:
                d[k] = json.loads(d[k]) if d[k] is not None else None
            yield d

    def suites(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM results ORDER BY suite") if r[0]]


_COLUMNS = (*KEY_FIELDS, "spec", "suite", "spec_json", "metrics", "output", "versions", "machine", "created", "duration_s")


def missing(keys: Iterable[RowKey], db: ResultsDB) -> list[RowKey]:
    """The keys not yet recorded in `db`, in the given order."""
    done = db.keys()
    return [k for k in keys if k not in done]
