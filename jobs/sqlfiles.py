"""Loads sql/ files in order, fills ``${name}`` parameters and splits them into statements (stdlib only).

Shared by the PyFlink jobs and by `riskctl sql` (which turns the same files into a SQL-client init
file), so every statement lives once, in sql/.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_PARAM = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
_SET = re.compile(r"^\s*SET\s+'([^']+)'\s*=\s*'([^']*)'\s*$", re.IGNORECASE | re.DOTALL)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:INTO|OVERWRITE)\s+([^\s(]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One SQL statement and where it came from."""

    file: str
    text: str

    @property
    def is_insert(self) -> bool:
        """True for INSERT statements (they go into the job's statement set)."""
        return self.text.lstrip().upper().startswith(("INSERT", "EXECUTE"))

    @property
    def insert_target(self) -> str | None:
        """The table name an INSERT writes to, without catalog and database (``scores``), else None."""
        m = _INSERT_INTO.match(self.text)
        return m.group(1).split(".")[-1].strip("`") if m else None

    def inserts_into(self, globs: list[str] | tuple[str, ...]) -> bool:
        """True for an INSERT whose target table name matches one of ``globs`` (fnmatch), or any INSERT if none."""
        return self.is_insert and (not globs or any(fnmatch.fnmatch(self.insert_target or "", g) for g in globs))

    @property
    def set_pair(self) -> tuple[str, str] | None:
        """(key, value) of a ``SET 'key' = 'value'`` statement, else None."""
        m = _SET.match(self.text)
        return (m.group(1), m.group(2)) if m else None

    @property
    def is_query(self) -> bool:
        """True for ad-hoc SELECTs (only in example files for the SQL client)."""
        return self.text.lstrip().upper().startswith(("SELECT", "WITH"))


class MissingParameter(KeyError):
    """A ``${name}`` in a SQL file has no value."""


def sql_string(value: object) -> str:
    """``value`` as the inside of a SQL string literal: each single quote doubled, so a quote in a password
    or a key ends nothing (and no parser error echoes a secret cut at its quote into a log)."""
    return str(value).replace("'", "''")


def render(text: str, params: Mapping[str, object]) -> str:
    """Replace every ``${name}`` with its parameter value."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in params:
            raise MissingParameter(f"SQL parameter ${{{name}}} has no value")
        return str(params[name])
    return _PARAM.sub(sub, text)


def strip_comments(text: str) -> str:
    """Drop ``--`` line comments outside string literals."""
    out_lines = []
    for line in text.splitlines():
        in_str = False
        cut = len(line)
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "'":
                in_str = not in_str
            elif not in_str and line.startswith("--", i):
                cut = i
                break
            i += 1
        out_lines.append(line[:cut])
    return "\n".join(out_lines)


def split_statements(text: str) -> list[str]:
    """Split on semicolons outside string literals; empty statements are dropped."""
    buf: list[str] = []
    parts, in_str = [], False
    for ch in strip_comments(text):
        if ch == "'":
            in_str = not in_str
        if ch == ";" and not in_str:
            stmt = "".join(buf).strip()
            if stmt:
                parts.append(stmt)
            buf = []
        else:
            buf.append(ch)
    tail = "".join(buf).strip()
    if tail:
        parts.append(tail)
    return parts


def sql_files(folder: Path) -> list[Path]:
    """The folder's .sql files in load order (by their numeric prefix)."""
    return sorted(p for p in folder.glob("*.sql") if p.is_file())


def load(folder: Path, params: dict[str, object]) -> list[Statement]:
    """Every statement of every file in ``folder``, rendered with ``params``."""
    stmts: list[Statement] = []
    for path in sql_files(folder):
        for text in split_statements(render(path.read_text(), params)):
            stmts.append(Statement(path.name, text))
    return stmts
