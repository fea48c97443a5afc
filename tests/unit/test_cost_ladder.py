"""The cost ladder's rungs are cuts of the product's own job, each adding to the one before; its live shape
and its flame graphs."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.cost_ladder import FLOOR, STAGES, live_time, without
from bench.flame import PLUMBING, draw, hottest_frames, origin, short, thread_kind
from jobs.params import sql_params
from jobs.sqlfiles import load
from loanrisk.settings import REPO_ROOT, Settings


def _inserts(with_ladder: bool) -> list[str]:
    folders = ["risk", *(["ladder"] if with_ladder else [])]
    params = sql_params(Settings())
    return [s.insert_target or "" for f in folders for s in load(REPO_ROOT / "sql" / f, params) if s.is_insert]


def test_each_rung_submits_what_it_names_and_adds_to_the_one_before() -> None:
    """Every glob of every stage selects an INSERT; the product's INSERTs only grow up the ladder; the top
    is the whole job; the floor is what bench/job_throughput.py calls the floor; every ladder sink is a rung."""
    from jobs.sqlfiles import Statement
    targets = _inserts(with_ladder=True)
    product = set(_inserts(with_ladder=False))
    previous: set[str] = set()
    for stage in STAGES:
        for glob in stage.into:
            assert any(Statement("f", f"INSERT INTO {t} SELECT 1").inserts_into((glob,)) for t in targets), \
                f"{stage.name}: {glob} selects no INSERT"
        chosen = {t for t in targets if Statement("f", f"INSERT INTO {t} SELECT 1").inserts_into(stage.into)}
        if not stage.into:
            chosen = product  # the whole job, submitted without the ladder's sinks
        own = chosen & product
        assert previous <= own, f"{stage.name} drops {previous - own}"
        previous = own
    assert previous == product
    from bench.job_throughput import FLOOR_SINKS
    floor = next(s for s in STAGES if s.name == FLOOR)
    assert set(floor.into) == set(FLOOR_SINKS)
    used = {g for s in STAGES for g in s.into}
    assert {t for t in targets if t.startswith("ladder_")} <= used, "a ladder sink no stage measures"


def test_the_long_waits_arm_is_the_whole_job_with_only_the_serving_waits_changed_from_the_defaults() -> None:
    """An A/B of the waits compares something: the arm changes existing flink settings, each away from its default,
    and nothing else."""
    from bench.cost_ladder import LONG_STAGE
    from bench.serving_latency import ARMS
    defaults = Settings().flink
    assert LONG_STAGE.into == () and LONG_STAGE.root == REPO_ROOT
    changed = dict(LONG_STAGE.flink)
    assert set(changed) == {"python_bundle_time_ms", "serving_flush_ms"}
    assert all(getattr(defaults, k) != v for k, v in changed.items()), (changed, defaults)
    assert ARMS["long-waits"] == (changed, ())


def test_the_serving_apart_arm_splits_the_job_s_inserts_into_a_serving_job_and_a_lake_job_beside_it() -> None:
    """Together the two jobs write what the product writes, and no table twice: the lake job every Iceberg table,
    the measured job every other sink (PostgreSQL, the alert and dead-letter topics)."""
    from fnmatch import fnmatch

    from bench.job_throughput import inserts_without
    from bench.serving_latency import ARMS, LAKE_BESIDE, LAKE_TABLES
    from contracts.tables import LAKE_TABLES as LAKE
    product = _inserts(with_ladder=False)
    assert LAKE_BESIDE <= set(ARMS)
    flink, lake = ARMS["serving-apart"]
    assert flink == {} and set(lake) == set(LAKE_TABLES) == {t.name for t in LAKE}
    serving = inserts_without(Settings(), list(lake))
    beside = [t for t in product if any(fnmatch(t, g) for g in lake)]
    assert beside and serving and not set(serving) & set(beside)
    assert sorted([*serving, *beside]) == sorted(product)
    assert "pg_loan_scores_latest" in serving and "raw_loan_applications" in beside


def test_each_serving_latency_round_starts_one_arm_later() -> None:
    """The arm run first in a round was the slower one whatever it was, so no arm is always first."""
    from bench.serving_latency import round_order
    assert [round_order(["a", "b"], r) for r in range(3)] == [["a", "b"], ["b", "a"], ["a", "b"]]
    assert [round_order(["a", "b", "c"], r)[0] for r in range(3)] == ["a", "b", "c"]


def test_the_live_shape_keeps_order_and_lands_in_the_hours_before_its_end() -> None:
    end = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    first, last = 1_500_000_000_000, 1_500_000_000_000 + 200 * 86_400_000
    payload = json.dumps({"event_id": "e", "event_time": "2017-07-14T02:40:00.000Z", "amount_minor": 5}).encode()
    times = []
    for at in (first, first + 1_000, (first + last) // 2, last):
        event = json.loads(live_time(payload, at, first, last, end, hours=20))
        assert event["amount_minor"] == 5 and event["event_id"] == "e"
        times.append(event["event_time"])
    assert times == sorted(times) and len(set(times)) == 4
    assert times[0] == "2026-12-03T16:00:00.000Z" and times[-1] == "2026-12-04T12:00:00.000Z"


def _tree() -> dict:
    leaf = {"name": "loanrisk.flink.ParseEvent.eval:120", "value": 30, "children": []}
    parquet = {"name": "org.apache.parquet.column.impl.ColumnWriterV2.write:88", "value": 50, "children": []}
    task = {"name": "org.apache.flink.streaming.runtime.tasks.StreamTask.invoke:900", "value": 100,
            "children": [leaf, parquet]}
    return {"name": "root", "value": 100, "children": [task]}


def test_hottest_frames_are_self_time_shares() -> None:
    top = dict(hottest_frames(_tree(), 3))
    assert top == {"ColumnWriterV2.write": 0.5, "ParseEvent.eval": 0.3, "StreamTask.invoke": 0.2}
    assert short("org.apache.flink.Foo.bar:12") == "Foo.bar"
    assert origin("org.apache.iceberg.X.y:1")[0] == "Iceberg" and origin("loanrisk.flink.A.b:1")[0].startswith("loan")
    task = "Deduplicate[19] -> Calc[20] -> IcebergStreamWriter"
    assert short(f"task: {task}") == task


def test_a_flame_graph_is_drawn(tmp_path: Path) -> None:
    out = tmp_path / "flame.png"
    draw(_tree(), out, "a test graph")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000


def test_thread_kinds_and_the_task_loop_left_out_of_pictures() -> None:
    assert thread_kind("Source: kafka_transactions[4] -> (Calc[5] -> Calc[6]) (1/2)#0") == \
        "Source: kafka_transactions[4] -> (Calc[5] -> Calc[6])"
    assert thread_kind("iceberg-worker-pool-3") == "iceberg-worker-pool"
    assert PLUMBING.match("org.apache.flink.streaming.runtime.tasks.StreamTask.invoke:900")
    assert PLUMBING.match("org.apache.flink.streaming.runtime.tasks.CopyingChainingOutput.pushToOperator:92")
    assert not PLUMBING.match("org.apache.flink.table.runtime.operators.deduplicate.ProcTimeDeduplicateKeepFirstRowFunction"
                              ".processElement:40")
    assert not PLUMBING.match("org.apache.iceberg.io.PartitionedFanoutWriter.write:60")


def test_an_ab_run_leaves_out_exactly_the_named_sinks() -> None:
    import pytest
    product = _inserts(with_ladder=False)
    b = without(Settings(), ["pg_repeated_events", "risk_alerts*"])
    assert sorted(b.into) == sorted(t for t in product if t not in {"pg_repeated_events", "risk_alerts_topic"})
    with pytest.raises(SystemExit, match="no INSERT"):
        without(Settings(), ["no_such_table"])


def test_the_baseline_rung_runs_another_commits_jobs_and_sql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bench.cost_ladder import baseline
    stage = baseline("HEAD", tmp_path / "b")
    assert stage.name == "full@HEAD" and stage.into == ()
    assert (stage.root / "jobs" / "run_sql.py").is_file() and (stage.root / "sql" / "risk").is_dir()
    with pytest.raises(SystemExit, match="--baseline no-such-rev"):
        baseline("no-such-rev", tmp_path / "c")


def test_the_floor_with_other_settings_is_the_floor_compared_with_the_floor_and_a_bad_setting_is_one_line() -> None:
    from bench.cost_ladder import with_settings
    stage = with_settings(Settings(), "checkpoint_interval_ms=30000")
    floor = next(s for s in STAGES if s.name == FLOOR)
    assert (stage.into, stage.against, dict(stage.flink)) == (floor.into, FLOOR, {"checkpoint_interval_ms": 30000})
    assert stage.name not in {s.name for s in STAGES}
    assert dict(with_settings(Settings(), "lake_distribution=hash").flink) == {"lake_distribution": "hash"}
    for bad in ("nope=3", "checkpoint_interval_ms=ten", ",", "checkpoint_interval_ms=", "lake_distribution=range"):
        with pytest.raises(SystemExit, match="--floor-with") as caught:
            with_settings(Settings(), bad)
        assert "\n" not in str(caught.value)
    whole = with_settings(Settings(), "lake_distribution=hash", "full")
    assert (whole.into, whole.against, whole.name) == ((), "full", "full-lakehash")
    with pytest.raises(SystemExit, match="--full-with"):
        with_settings(Settings(), "nope=1", "full")


def test_each_a_b_line_reads_as_what_the_change_costs(capsys: pytest.CaptureFixture) -> None:
    """A dearer arm's settings show as a positive cost, and so does what a cheaper arm leaves out."""
    from bench.cost_ladder import Backlog, report
    backlog = Backlog("live", [("transaction", "c", b"{}")] * 1000, {"transaction": 1000}, 1)
    rung = {"shape": "live", "stage": FLOOR, "adds": "dead letters", "events_per_s": 500.0, "committed_s": 4.0,
            "tm_us_per_event": 30.0, "cores": {"flink taskmanager": 1.0}, "checkpoints": 2, "failed_checkpoints": 0}
    dearer = {**rung, "stage": "floor-hash", "adds": "the floor with lake_distribution=hash", "tm_us_per_event": 36.0,
              "against": FLOOR, "settings_changed": True}
    cheaper = {**rung, "stage": "floor-less", "adds": "the floor less its dead letters", "tm_us_per_event": 26.0,
               "against": FLOOR}
    report([rung, dearer, cheaper], {"live": backlog}, [])
    out = capsys.readouterr().out
    assert "+6 us/event with the arm's settings" in out
    assert "+4 us/event for what was left out" in out


def test_a_listening_socket_is_found_by_its_port_among_the_sockets_its_process_holds() -> None:
    """How bench/serving_latency.py finds the TaskManager Flink names by its RPC port."""
    import os
    import socket

    from bench.serving_latency import _listening, _socket_inodes
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        inodes = {inode for inode, local in _listening() if local == port}
        assert len(inodes) == 1 and inodes <= _socket_inodes(os.getpid())
    assert not {inode for inode, local in _listening() if local == port}


def test_a_process_tree_is_held_to_some_cores_and_let_go_again() -> None:
    import os
    import subprocess
    import sys

    from bench.serving_latency import set_affinity_tree
    every = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        set_affinity_tree(os.getpid(), {min(every)})
        assert os.sched_getaffinity(child.pid) == {min(every)} == os.sched_getaffinity(0)
    finally:
        set_affinity_tree(os.getpid(), every)
        assert os.sched_getaffinity(child.pid) == every == os.sched_getaffinity(0)
        child.kill()
        child.wait()


def test_a_rung_an_arm_is_compared_with_drains_again_after_the_arms_and_the_arm_meets_their_mean(
        capsys: pytest.CaptureFixture) -> None:
    from bench.cost_ladder import LONG_STAGE, Backlog, bracketing, report, with_settings
    floor = next(s for s in STAGES if s.name == FLOOR)
    full = next(s for s in STAGES if s.name == "full")
    arm = with_settings(Settings(), "lake_distribution=hash")
    assert bracketing([floor, full], [arm]) == [floor]
    assert bracketing([floor, full], [arm, LONG_STAGE]) == [floor, full]
    assert bracketing([floor, full], []) == []
    backlog = Backlog("live", [("transaction", "c", b"{}")] * 1000, {"transaction": 1000}, 1)
    rung = {"shape": "live", "stage": FLOOR, "adds": "dead letters", "events_per_s": 500.0, "committed_s": 4.0,
            "tm_us_per_event": 30.0, "cores": {"flink taskmanager": 1.0}, "checkpoints": 2, "failed_checkpoints": 0}
    measured = {**rung, "stage": arm.name, "adds": arm.adds, "tm_us_per_event": 33.0, "against": FLOOR,
                "settings_changed": True}
    again = {**rung, "stage": f"{FLOOR}-again", "tm_us_per_event": 26.0, "again_of": FLOOR}
    report([rung, measured, again], {"live": backlog}, [])
    out = capsys.readouterr().out
    assert "again after the arms 500 events/s, 26 us/event, mean 28" in out
    assert "+5 us/event with the arm's settings" in out
    assert f"{FLOOR}-again" not in out, "the second drain is no rung of its own"


def test_the_submit_benchmark_compares_each_arms_median_with_flinks_default(capsys: pytest.CaptureFixture) -> None:
    from bench.submit_time import report
    rows = [{"arm": arm, "wall_s": wall, "cpu_s": cpu, "job_id": "0" * 32}
            for arm, wall, cpu in (("default", 40.0, 60.0), ("product", 30.0, 30.0), ("default", 44.0, 66.0),
                                   ("product", 34.0, 36.0), ("default", 60.0, 70.0), ("product", 20.0, 33.0))]
    report(rows)
    out = capsys.readouterr().out
    assert "default        44.0 s      66.0 s  Flink's default" in out
    assert "product        30.0 s      33.0 s  -XX:TieredStopAtLevel=1" in out
    assert "takes 0.68 x its wall time (14.0 s less) and 0.50 x its CPU" in out


def test_a_drain_counts_only_its_own_checkpoints_and_the_refused_triggers_before_the_release_apart() -> None:
    """Flink's counts cover the job's life; triggers refused while tasks start fail with no history entry."""
    from bench.cost_ladder import drain_checkpoints
    before = {"counts": {"completed": 1, "failed": 3}, "latest": {"failed": None}}
    clean = {"counts": {"completed": 8, "failed": 3},
             "latest": {"failed": {"trigger_timestamp": 900, "failure_message": "from before"}}}
    assert drain_checkpoints(before, clean, released_ms=1000) == {
        "checkpoints": 7, "failed_checkpoints": 0, "failed_before_release": 3, "checkpoint_failure": None}
    failing = {"counts": {"completed": 6, "failed": 5},
               "latest": {"failed": {"trigger_timestamp": 1500, "failure_message": "Checkpoint expired"}}}
    assert drain_checkpoints(before, failing, released_ms=1000) == {
        "checkpoints": 5, "failed_checkpoints": 2, "failed_before_release": 3,
        "checkpoint_failure": "Checkpoint expired"}
    assert drain_checkpoints({}, {"counts": {"completed": 2}}, 0)["failed_checkpoints"] == 0


def test_the_end_to_end_target_is_read_per_shape_to_the_lake_commit(capsys: pytest.CaptureFixture) -> None:
    """The whole job's rate against the 20,000 events/s target counts until its last rows are committed."""
    from bench.cost_ladder import Backlog, report
    backlogs = {shape: Backlog(shape, [("transaction", "c", b"{}")] * 100_000, {"transaction": 100_000}, 1)
                for shape in ("live", "replay")}
    full = {"stage": "full", "adds": "the rest", "events_per_s": 50_000.0, "tm_us_per_event": 40.0,
            "cores": {"flink taskmanager": 1.5}, "checkpoints": 2, "failed_checkpoints": 0}
    report([{**full, "shape": "live", "committed_s": 4.0}, {**full, "shape": "replay", "committed_s": 10.0}],
           backlogs, [])
    out = capsys.readouterr().out
    assert re.search(r"whole job events/s to the lake commit \(live\) +25,000 +>= 20,000 +yes", out)
    assert re.search(r"whole job events/s to the lake commit \(replay\) +10,000 +>= 20,000 +NO", out)
