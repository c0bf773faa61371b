"""Command-line failures are one line naming the path or flag, with a non-zero status and no traceback
(unless ``--debug``); a database tokcompress did not create is never written to."""

from __future__ import annotations

import sqlite3

import pytest

from tokcompress.cli import main
from tokcompress.study.db import APPLICATION_ID, ResultsDB


def run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_unwritable_run_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(["ablate", "tiny-cpu", "--run-dir", str(blocker / "sub"), "--no-progress", "--no-report"], capsys)
    assert code == 2 and f"cannot open results database {blocker / 'sub' / 'results.sqlite'}" in err


def test_a_file_that_is_not_a_database(tmp_path, capsys):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    before = bad.read_bytes()
    code, err = run(["report", str(bad)], capsys)
    assert code == 2 and f"{bad} is not a usable results database" in err
    code, err = run(["ablate", "tiny-cpu", "--db", str(bad), "--no-progress"], capsys)
    assert code == 2 and str(bad) in err and bad.read_bytes() == before


def test_a_foreign_sqlite_file_is_left_untouched(tmp_path, capsys):
    foreign = tmp_path / "theirs.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE results (x INTEGER)")
    before = foreign.read_bytes()
    code, err = run(["ablate", "tiny-cpu", "--db", str(foreign), "--no-progress"], capsys)
    assert code == 2 and "tokcompress did not create" in err and "left untouched" in err
    assert foreign.read_bytes() == before
    with sqlite3.connect(foreign) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["results"]


def test_schema_version_mismatch(tmp_path, capsys):
    path = tmp_path / "r.sqlite"
    ResultsDB(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    code, err = run(["report", str(path)], capsys)
    assert code == 2 and "has schema version 99; this version of tokcompress reads version 1" in err


def test_missing_model_and_negative_threads(tmp_path, capsys):
    code, err = run(["generate", "--model", str(tmp_path / "missing"), "--repeats", "1"], capsys)
    assert code == 2 and f"model {str(tmp_path / 'missing')!r} is neither a local checkpoint folder" in err
    with pytest.raises(SystemExit) as exit_:
        main(["ablate", "tiny-cpu", "--threads", "-3"])
    assert exit_.value.code == 2 and "--threads: expected an int >= 1, got -3" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"garbage" * 200)
    with pytest.raises(Exception, match="is not a usable results database"):
        main(["--debug", "report", str(bad)])
