"""PostgreSQL: a cluster owned by the `postgres` user, holding the Iceberg catalog and serving databases."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from loanrisk.errors import StackError
from stack.process import stop_pid
from stack.services.base import Service


def pg_bindir() -> Path:
    """Debian keeps initdb and postgres off PATH: `pg_config --bindir` names their folder."""
    if shutil.which("pg_config") is None:
        raise StackError("PostgreSQL is not installed: apt-get install postgresql (riskctl setup does it)")
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def hba_conf(auth: str) -> str:
    """pg_hba.conf: the superuser over the Unix socket only; every TCP client with ``auth``."""
    return f"local all postgres trust\nhost all all 127.0.0.1/32 {auth}\n"


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), so no plain password is ever sent to it.

    A plain ``PASSWORD '...'`` would appear in the server log if the statement failed.
    """
    import base64
    import hashlib
    import hmac
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class Postgres(Service):
    """The PostgreSQL server on 127.0.0.1."""

    name = "postgres"
    user = "postgres"

    @property
    def ports(self) -> dict[str, int]:
        return {"sql": self.settings.postgres.port}

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def marker(self) -> str:
        return str(self.data_dir)

    def prepare(self) -> None:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("no `postgres` OS user: install PostgreSQL (apt-get install postgresql)") from None
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "sock").mkdir(exist_ok=True)
        for path in (self.home, self.home / "sock"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            proc = subprocess.run([str(pg_bindir() / "initdb"), "-D", str(self.data_dir), "-A", "trust",
                                   "-U", "postgres", "-E", "UTF8", "--no-instructions"],
                                  user="postgres", capture_output=True, text=True, cwd=self.home)
            if proc.returncode != 0:
                raise StackError(f"initdb failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else '?'}")
        # Written on every start, so switching postgres.auth applies to an existing cluster too. The stack
        # administers the server as `postgres` over its Unix socket (a folder only root and postgres reach).
        (self.data_dir / "pg_hba.conf").write_text(hba_conf(self.settings.postgres.auth))

    def command(self) -> list[str]:
        return [str(pg_bindir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.settings.postgres.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.home / 'sock'}",
                "-c", "max_connections=200", "-c", "shared_buffers=256MB", "-c", "log_min_messages=warning",
                "-c", "log_statement=none"]

    def _connect(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=str(self.home / "sock"), port=self.settings.postgres.port, user="postgres",
                               dbname=db, connect_timeout=2, autocommit=True)

    def healthy(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def after_start(self) -> None:
        pg = self.settings.postgres
        with self._connect() as conn:
            def role(name: str, extra: str, password: str) -> None:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                pw = psycopg.sql.SQL(" PASSWORD {}").format(psycopg.sql.Literal(scram_verifier(password))) \
                    if password else psycopg.sql.SQL(" PASSWORD NULL")
                conn.execute(psycopg.sql.SQL("{} ROLE {} LOGIN " + extra).format(
                    psycopg.sql.SQL(verb), psycopg.sql.Identifier(name)) + pw)
            role(pg.user, "CREATEDB", pg.secret())
            role(pg.reader_user, "", pg.reader_secret())
            for db in (pg.catalog_db, pg.serving_db):
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                    conn.execute(psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        psycopg.sql.Identifier(db), psycopg.sql.Identifier(pg.user)))
        with self._connect(pg.serving_db) as conn:
            # The reader role sees the serving tables and nothing it could change.
            conn.execute(psycopg.sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(pg.serving_db), psycopg.sql.Identifier(pg.reader_user)))
            conn.execute(psycopg.sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON "
                                         "TABLES TO {}").format(psycopg.sql.Identifier(pg.user),
                                                                psycopg.sql.Identifier(pg.reader_user)))
            conn.execute(psycopg.sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            conn.execute(psycopg.sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(
                psycopg.sql.Identifier(pg.user)))

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
        pid = self.pidfile.read()
        gone = True if pid is None else stop_pid(pid, self.marker, sig=signal.SIGINT)
        if gone:
            self.pidfile.clear()
        return gone
