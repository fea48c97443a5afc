"""The local Snowflake endpoint as the stack starts it, through the real connector: exact round trips, and the
two emulator workarounds of stack/snowflake_endpoint.py (these tests fail when either is removed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from loanrisk.settings import Settings
from tests.warehouse_support import snowflake_endpoint
from warehouse.connection import connect


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with snowflake_endpoint(Path(tmp_path_factory.mktemp("sf"))) as settings:
        yield settings


def test_null_timestamps_come_back_null_not_1970(endpoint: Settings) -> None:
    # fakesnow's server returns NULL timestamps as 1970-01-01 without the workaround in stack/snowflake_endpoint.py.
    with connect(endpoint) as conn:
        cur = conn.cursor()
        cur.execute("CREATE OR REPLACE TABLE NULL_TS (ID NUMBER(10,0), TZ TIMESTAMP_TZ(6), NTZ TIMESTAMP_NTZ(6), "
                    "D DATE)")
        cur.execute("INSERT INTO NULL_TS VALUES (1, NULL, NULL, NULL)")
        cur.execute("INSERT INTO NULL_TS VALUES (2, %s, %s, %s)",
                    (datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc), datetime(2026, 3, 4, 5, 6, 7, 12),
                     date(2026, 3, 4)))
        cur.execute("SELECT ID, TZ, NTZ, D FROM NULL_TS ORDER BY ID")
        rows = cur.fetchall()
    assert rows[0] == (1, None, None, None)
    assert rows[1][1] == datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc)
    assert rows[1][2] == datetime(2026, 3, 4, 5, 6, 7, 12) and rows[1][3] == date(2026, 3, 4)


def test_decimals_big_integers_and_floats_round_trip_exactly(endpoint: Settings) -> None:
    values = (Decimal("12345678901.23"), 2**63 - 1, 0.1 + 0.2, datetime(1999, 12, 31, 23, 59, 59, 999999,
                                                                       tzinfo=timezone(timedelta(0))))
    with connect(endpoint) as conn:
        cur = conn.cursor()
        cur.execute("CREATE OR REPLACE TABLE EXACT (M NUMBER(13,2), N NUMBER(19,0), F FLOAT, T TIMESTAMP_TZ(6))")
        cur.execute("INSERT INTO EXACT VALUES (%s, %s, %s, %s)", values)
        cur.execute("INSERT INTO EXACT VALUES (NULL, NULL, NULL, NULL)")
        cur.execute("SELECT M, N, F, T FROM EXACT ORDER BY N NULLS LAST")
        rows = cur.fetchall()
    assert rows[0] == values and isinstance(rows[0][0], Decimal)
    assert rows[1] == (None, None, None, None)


def test_merge_and_control_row_commit_or_roll_back_together(endpoint: Settings) -> None:
    # fakesnow fails a MERGE inside BEGIN ... COMMIT without the workaround in stack/snowflake_endpoint.py.
    merge = ("MERGE INTO TGT AS t USING SRC AS s ON t.K = s.K WHEN MATCHED THEN UPDATE SET V = s.V "
             "WHEN NOT MATCHED THEN INSERT (K, V) VALUES (s.K, s.V)")
    with connect(endpoint) as conn:
        cur = conn.cursor()
        cur.execute("CREATE OR REPLACE TABLE TGT (K VARCHAR, V NUMBER(10,0))")
        cur.execute("CREATE OR REPLACE TABLE CTL (K VARCHAR)")
        cur.execute("CREATE OR REPLACE TABLE SRC (K VARCHAR, V NUMBER(10,0))")
        cur.execute("INSERT INTO SRC VALUES ('a', 1), ('b', 2)")
        cur.execute("BEGIN")
        cur.execute(merge)
        cur.execute("INSERT INTO CTL VALUES ('rolled back')")
        cur.execute("ROLLBACK")
        cur.execute("SELECT (SELECT COUNT(*) FROM TGT), (SELECT COUNT(*) FROM CTL)")
        assert cur.fetchone() == (0, 0)
        cur.execute("BEGIN")
        cur.execute(merge)
        cur.execute("INSERT INTO CTL VALUES ('committed')")
        cur.execute("COMMIT")
        cur.execute("SELECT (SELECT COUNT(*) FROM TGT), (SELECT COUNT(*) FROM CTL)")
        assert cur.fetchone() == (2, 1)
