"""first_seen (jvm/functions), the job's de-duplication and count of copies, called as sql/risk/40_valid_events.sql calls it.

Runs in a local Flink (the Flink environment's Python, the built functions jar) over events with copies and
late arrivals: every event id is passed on once with seen_before 0, each copy with the number of messages
before it, a late event is not dropped, and the windows downstream still see event_time as a time attribute.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from loanrisk.settings import REPO_ROOT, Settings
from stack.flink_conf import flink_env

VALID_EVENTS_SQL = REPO_ROOT / "sql" / "risk" / "40_valid_events.sql"


def product_call() -> str:
    """The job's first_seen call for transactions, with ``{table}`` where it names its input."""
    m = re.search(r"first_seen\(\s*TABLE accepted_transactions (PARTITION BY event_id, .*?'[^']*')\)",
                  VALID_EVENTS_SQL.read_text(), flags=re.S)
    assert m, "sql/risk/40_valid_events.sql no longer calls first_seen on accepted_transactions"
    return "first_seen(TABLE {table} " + m.group(1) + ")"


@pytest.mark.setup
def test_first_seen_passes_each_id_once_counts_its_copies_and_keeps_late_events(tmp_path: Path) -> None:
    rng = random.Random(7)
    t0, rows = datetime(2025, 1, 1), []
    for i in range(3000):
        at = t0 + timedelta(seconds=60 * i)
        if rng.random() < 0.05:
            at -= timedelta(hours=rng.uniform(6, 12))  # far behind the watermark's hour
        copies = 1 + (rng.random() < 0.05) + (rng.random() < 0.01)
        rows += [(f"e{i}", at)] * copies
    late = sum(1 for k, (_, at) in enumerate(rows) if at < max(a for _, a in rows[:k + 1]) - timedelta(hours=1))
    assert late > 50, "the input has too few late events to show they are kept"
    csv = tmp_path / "events.csv"
    csv.write_text("".join(f"{e},{at:%Y-%m-%d %H:%M:%S}\n" for e, at in rows))
    out = tmp_path / "out.json"
    s = Settings()
    conf = tmp_path / "conf"  # an empty configuration: not the stack's reporters and ports
    conf.mkdir()
    (conf / "config.yaml").write_text("parallelism.default: 2\n")
    env = {**os.environ, **flink_env(s), "FLINK_CONF_DIR": str(conf), "FLINK_LOG_DIR": str(tmp_path)}
    proc = subprocess.run([str(s.flink_python), str(Path(__file__).with_name("first_seen_driver.py")), str(csv),
                           product_call(), str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    sent = Counter(e for e, _ in rows)
    firsts = Counter(e for e, n in got["rows"] if n == 0)
    assert firsts == Counter(set(sent)), "an event id was dropped or passed on twice"
    assert sorted(n for _, n in got["rows"] if n > 0) == sorted(k for c in sent.values() for k in range(1, c))
    assert 0 < got["window_rows"] <= len(sent)
