"""The local Snowflake endpoint: fakesnow's HTTP server, every session sharing one persistent database folder.

Run as ``python -m stack.snowflake_endpoint --host 127.0.0.1 --port P --db-path DIR``. The real
snowflake-connector-python talks to it over HTTP exactly as to an account. Two bugs of the emulator
(fakesnow 0.12.1) are corrected here, where it starts, and nowhere else: the stack and the tests run
this same code, and the warehouse loader never special-cases them (tests/unit/test_warehouse_endpoint.py
fails when either workaround is removed).
"""

from __future__ import annotations

import argparse
import logging


def _workaround_null_timestamps() -> None:
    """WORKAROUND for an emulator bug: fakesnow's server returns NULL timestamps as 1970-01-01.

    fakesnow.arrow.timestamp_to_sf_struct rebuilds each timestamp column as the (epoch, fraction[,
    timezone]) struct the connector decodes, but drops the column's validity mask, so a NULL comes back
    as epoch 0. This wraps it to carry the mask over; values are untouched. Real Snowflake has no such bug.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    import fakesnow.arrow as fs_arrow

    original = fs_arrow.timestamp_to_sf_struct
    if getattr(original, "_loanrisk_workaround", False):
        return

    def timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(ts)
        if ts.null_count == 0:
            return struct
        children = [struct.field(i).fill_null(0) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=pc.is_null(ts))

    timestamp_to_sf_struct._loanrisk_workaround = True  # type: ignore[attr-defined]
    fs_arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def _workaround_merge_in_transaction() -> None:
    """WORKAROUND for an emulator bug: fakesnow fails a MERGE inside BEGIN ... COMMIT.

    fakesnow runs MERGE as CREATE TEMPORARY TABLE merge_candidates + UPDATE/INSERT, and records a
    (NULL) table comment for that temporary table in its global catalog database; DuckDB lets one
    transaction write to one attached database only, so the MERGE fails once the transaction has
    written to the target's database. This drops the empty comment record for CREATE statements that
    carry no comment (comments that are set are still recorded). Real Snowflake runs MERGE in a transaction.
    """
    import fakesnow.transforms as fs_transforms

    original = fs_transforms.extract_comment_on_table
    if getattr(original, "_loanrisk_workaround", False):
        return

    def extract_comment_on_table(expression):
        new = original(expression)
        table_comment = new.args.get("table_comment")
        if table_comment is not None and table_comment[1] is None:
            new.args.pop("table_comment")
        return new

    extract_comment_on_table._loanrisk_workaround = True  # type: ignore[attr-defined]
    fs_transforms.extract_comment_on_table = extract_comment_on_table


def apply_emulator_workarounds() -> None:
    """Install both workarounds (idempotent); called before the server starts serving."""
    _workaround_null_timestamps()
    _workaround_merge_in_transaction()


def main(argv: list[str] | None = None) -> int:
    """Start the endpoint in the foreground until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="snowflake-endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-path", required=True)
    args = parser.parse_args(argv)

    import uvicorn

    import fakesnow.server as server
    from fakesnow.instance import FakeSnow

    from loanrisk.logs import setup_logging
    setup_logging()
    apply_emulator_workarounds()
    # Sessions that do not name FAKESNOW_DB_PATH share this instance: persistent on disk.
    server.shared_fs = FakeSnow(db_path=args.db_path)
    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    # log_config=None: uvicorn's records go through setup_logging's handler, not a format of its own.
    uvicorn.run(server.app, host=args.host, port=args.port, log_level="warning", log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
