"""The Spark peer's validation (contracts/spark_sql.py) names the rule the Flink job names, message by message.

The rendering is checked without Spark; the parity test runs the rendered SQL in the Spark peer's environment
(bench/spark_peer_job.py ``check``) on the corpus tests/unit/test_event_parser.py checks the Java function on,
and is skipped where that environment is not installed (`riskctl setup --spark-peer` or the benchmark installs it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from contracts.events import INPUT_EVENTS, TRANSACTION
from contracts.heartbeat import is_heartbeat
from contracts.spark_sql import (
    checked_columns,
    create_table,
    hmac_pads,
    pseudonym,
    raw_select,
    raw_table_of,
    reason_case,
)
from contracts.tables import DEAD_LETTERS
from loanrisk.settings import REPO_ROOT, Settings
from tests.unit.test_event_parser import NOW_MS, TOLERANCE, corpus, python_reason  # noqa: F401 (corpus: a fixture)

TOLERANCE_MS = int(TOLERANCE.total_seconds() * 1000)
KEY = b"Sekret-key-for-the-parity-test\n"


def _rules_in_order(sql: str) -> list[str]:
    return re.findall(r"THEN '([^']+)'", sql)


def test_the_reason_checks_every_rule_in_the_java_validators_order() -> None:
    c = TRANSACTION
    rules = _rules_in_order(reason_case(c, TOLERANCE_MS))
    want = ["invalid_json", "too_large", "invalid_json", *(f"missing:{f.name}" for f in c.fields if not f.nullable),
            *(f"type:{f.name}" for f in c.fields), *(f"choice:{f.name}" for f in c.fields if f.choices),
            *(f"range:{f.name}" for f in c.fields if f.type == "double" or f.minimum is not None or f.maximum is not None),
            "future_event_time", "past_event_time"]
    assert rules == want


def test_each_topic_gets_its_own_contracts_reason_and_struct() -> None:
    topics = {c.name: f"bench-{c.name}" for c in INPUT_EVENTS}
    columns = checked_columns(topics, TOLERANCE_MS)
    assert all(f"WHEN 'bench-{c.name}' THEN CASE" in columns[0] for c in INPUT_EVENTS)
    for c in INPUT_EVENTS:
        (struct,) = [s for s in columns if s.endswith(f"AS `{c.name}`")]
        assert re.findall(r"'(\w+)', `t_", struct) == c.names


def test_the_padded_keys_give_python_hmac_for_short_and_long_keys() -> None:
    for key in (KEY.rstrip(), b"k" * 64, b"x" * 200):
        inner, outer = hmac_pads(key)
        message = "Jane Doe \u00e9".encode()
        ours = hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).hexdigest()
        assert ours == hmac.new(key, message, hashlib.sha256).hexdigest()
    sql = pseudonym("c", "k1", b"abc")
    assert sql.startswith("CASE WHEN c IS NOT NULL THEN concat('k1:', sha2(")


def test_raw_and_dead_letter_tables_are_rendered_from_their_declarations() -> None:
    for c in INPUT_EVENTS:
        table = raw_table_of(c)
        select = raw_select(table, c, c.name, "k1", b"abc")
        assert [re.search(r"AS `(\w+)`$", s).group(1) for s in select] == table.names  # type: ignore[union-attr]
        pii = [s for s in select if "sha2(" in s]
        assert len(pii) == len(c.pii_fields)
    ddl = create_table("lake", "ns", DEAD_LETTERS)
    assert "PARTITIONED BY (`received_date`)" in ddl and "'format-version' = '2'" in ddl


def test_the_spark_peers_pins_agree_with_the_flink_side() -> None:
    """pyspark is the Kafka connector's Spark release; the Iceberg Spark runtime is the Flink runtime's release."""
    from stack.jvm import load_pins
    groups = {g.name: g for g in load_pins()[1]}
    spark = groups["spark_peer"]
    assert spark.on_demand and not any(g.on_demand for name, g in groups.items() if name != "spark_peer")
    versions = dict(coord.split(":")[1:] for coord in spark.artifacts)
    pyspark = re.search(r"^pyspark==(\S+)$", (REPO_ROOT / "requirements" / "spark.lock").read_text(), re.M)
    assert pyspark and versions["spark-sql-kafka-0-10_2.13"] == pyspark.group(1)
    flink_iceberg = next(c for c in groups["flink_lib"].artifacts if ":iceberg-flink-runtime-" in c)
    assert versions["iceberg-spark-runtime-4.1_2.13"] == flink_iceberg.rpartition(":")[2]
    assert tomllib.loads((REPO_ROOT / "jvm" / "artifacts.toml").read_text())["groups"]["spark_peer"]["transitive"] is False


@pytest.mark.spark_peer
def test_spark_names_the_same_first_broken_rule_as_the_python_reference_and_the_java_function(
        corpus: list, tmp_path: Path) -> None:  # noqa: F811
    python = Settings().install_dir / "venvs" / "spark" / "bin" / "python"
    if not python.exists():
        pytest.skip("the Spark peer's environment is not installed (riskctl setup --spark-peer)")
    lines = "".join(json.dumps({"kind": kind, "payload": p, "ingested_ms": NOW_MS}) + "\n" for kind, p in corpus)
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"future_tolerance_ms": TOLERANCE_MS, "key": KEY.rstrip().decode(), "key_id": "k1"}))
    out = subprocess.run([str(python), str(REPO_ROOT / "bench" / "spark_peer_job.py"), "check", str(config)],
                         input=lines, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = {row["offset"]: row for row in map(json.loads, out.stdout.splitlines())}
    missing = [i for i in range(len(corpus)) if i not in got]
    assert all(is_heartbeat(corpus[i][1]) for i in missing), "only heartbeats are filtered out before validation"
    mismatches = [(kind, (p or "")[:120], want, got[i]["reason"]) for i, (kind, p) in enumerate(corpus)
                  if i in got and (want := python_reason(kind, p)) != got[i]["reason"]]
    assert not mismatches, f"{len(mismatches)} of {len(corpus)} differ, e.g. {mismatches[:8]}"
    reasons = {re.sub(":.*", "", r["reason"] or "valid") for r in got.values()}
    assert reasons >= {"valid", "too_large", "invalid_json", "missing", "type", "choice", "range",
                       "future_event_time", "past_event_time"}, reasons
    # A valid transaction's pseudonym is the job's (pii_hash: key id, then HMAC-SHA256 of the UTF-8 value).
    for i, (kind, p) in enumerate(corpus):
        if kind == "transaction" and i in got and got[i]["reason"] is None:
            account = json.loads(p)["account_number"]  # type: ignore[arg-type]
            mac = hmac.new(KEY.rstrip(), account.encode(), hashlib.sha256).hexdigest()
            assert got[i]["account_pseudonym"] == f"k1:{mac}"
            break
    else:
        pytest.fail("no valid transaction in the corpus")


def test_the_peer_reads_the_rungs_topics_and_logs_in_with_sparks_own_kafka_client(tmp_path: Path) -> None:
    from bench.cost_ladder import stage_settings
    from bench.spark_peer import peer_config
    base = Settings()
    run, warm = stage_settings(base, "live", "spark"), stage_settings(base, "warmup-live", "spark")
    conf = peer_config(run, warm, 20, [tmp_path / "a.jar"], tmp_path, "4g", None)
    t = run.kafka.topics
    assert conf["run"]["topics"] == {"loan_application": t.applications, "transaction": t.transactions,
                                     "repayment": t.repayments}
    assert conf["run"]["namespace"] != conf["warmup"]["namespace"] != base.catalog.namespace
    assert conf["catalog"]["name"] == base.catalog.name and conf["master"] == "local[2]"
    assert conf["dedup_retention_s"] == base.flink.dedup_retention_s
    jaas = conf["kafka"]["properties"].get("sasl.jaas.config", "")
    assert "shaded" not in jaas and (not jaas or jaas.startswith("org.apache.kafka.common.security."))


def test_the_peers_row_stands_beside_the_floors_with_the_ratio_to_its_commit(capsys: pytest.CaptureFixture) -> None:
    from bench.cost_ladder import Backlog, report_peers
    backlog = Backlog("live", [("transaction", "c", b"{}")] * 1000, {"transaction": 1000}, 1)
    floor = {"shape": "live", "stage": "dead_letters", "events_per_s": 500.0, "committed_s": 4.0, "tm_us_per_event": 30.0,
             "jm_us_per_event": 2.0, "cores": {"flink taskmanager": 1.0}, "checkpoints": 2}
    peer = {"shape": "live", "stage": "spark", "events_per_s": 125.0, "us_per_event": 90.0, "cores": {"spark peer": 1.5},
            "batches": 1, "counts": {"raw_transactions": 1000}, "rows_match": True, "batch_ms": [8000]}
    arm = {**floor, "stage": "floor-lakehash", "adds": "the floor with lake_distribution=hash", "committed_s": 2.0,
           "against": "dead_letters"}
    report_peers([floor, arm], [peer], {"live": backlog})
    out = capsys.readouterr().out
    assert "events/s to the commit: 2.00 (target >= 1.5: met)" in out and "as produced" in out
    assert "the floor with lake_distribution=hash / Spark, events/s to the commit: 4.00" in out
