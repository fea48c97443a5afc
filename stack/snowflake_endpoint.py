"""The local Snowflake endpoint: fakesnow's HTTP server, every session sharing one persistent database folder.

Run as ``python -m stack.snowflake_endpoint --host 127.0.0.1 --port P --db-path DIR``. The real
snowflake-connector-python talks to it over HTTP exactly as to an account.
"""

from __future__ import annotations

import argparse
import logging


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

    # Sessions that do not name FAKESNOW_DB_PATH share this instance: persistent on disk.
    server.shared_fs = FakeSnow(db_path=args.db_path)
    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    uvicorn.run(server.app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
