"""An erasure request removes a customer's lake rows (dead letters included) and the files that held them."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from erasure.customer import ERASURE_KEY, ErasureReport, erase_lake
from loanrisk.settings import Settings


@pytest.fixture()
def lake(tmp_path: Path):
    from pyiceberg.catalog.sql import SqlCatalog
    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'wh'}")
    cat.create_namespace("risk")
    scores = cat.create_table("risk.scores", pa.schema([("loan_id", pa.string()), ("customer_id", pa.string())]))
    for batch in (["c1", "c2"], ["c1", "c3"]):  # two commits: two data files hold c1
        scores.append(pa.table({"loan_id": [f"l-{c}" for c in batch], "customer_id": batch}))
    dlq = cat.create_table("risk.dead_letters", pa.schema([("dlq_id", pa.string()), ("payload", pa.string())]))
    dlq.append(pa.table({"dlq_id": ["d1", "d2", "d3"],
                         "payload": ['{"customer_id":"c1","amount":"x"', '{"customer_id":"c2"}', "not json c1"]}))
    windows = cat.create_table("risk.risk_by_window", pa.schema([("segment", pa.string())]))
    windows.append(pa.table({"segment": ["c1"]}))
    return cat


def _files(table) -> set[str]:
    return set(table.inspect.all_files().column("file_path").to_pylist())


def test_erasure_deletes_the_customer_everywhere_in_the_lake_and_purges_old_files(lake) -> None:
    scores = lake.load_table("risk.scores")
    files_before = _files(scores)
    report = ErasureReport("c1")
    erase_lake(Settings(), "c1", report, cat=lake)
    assert report.removed == {"lake.scores": 2, "lake.dead_letters": 2} and not report.failed
    scores = lake.load_table("risk.scores")
    assert sorted(scores.scan().to_arrow()["customer_id"].to_pylist()) == ["c2", "c3"]
    assert lake.load_table("risk.dead_letters").scan().to_arrow()["dlq_id"].to_pylist() == ["d2"]
    assert lake.load_table("risk.risk_by_window").scan().to_arrow().num_rows == 1  # no customer column: untouched
    # No snapshot can bring c1 back (time travel), and the files that held c1 are gone from storage.
    for snap in scores.snapshots():
        assert "c1" not in scores.scan(snapshot_id=snap.snapshot_id).to_arrow()["customer_id"].to_pylist()
    gone = files_before - _files(scores)
    assert gone and not any(Path(p.removeprefix("file://")).exists() for p in gone)


def test_erasure_is_idempotent(lake) -> None:
    erase_lake(Settings(), "c1", ErasureReport("c1"), cat=lake)
    again = ErasureReport("c1")
    erase_lake(Settings(), "c1", again, cat=lake)
    assert again.removed == {"lake.scores": 0, "lake.dead_letters": 0} and not again.failed


def test_erasure_keeps_the_jobs_latest_commit_so_a_restored_job_does_not_commit_twice(lake) -> None:
    scores = lake.load_table("risk.scores")
    scores.append(pa.table({"loan_id": ["l-c4"], "customer_id": ["c4"]}),
                  snapshot_properties={"flink.max-committed-checkpoint-id": "7", "flink.job-id": "j"})
    flink_commit = lake.load_table("risk.scores").current_snapshot().snapshot_id
    erase_lake(Settings(), "c1", ErasureReport("c1"), cat=lake)
    kept = {s.snapshot_id for s in lake.load_table("risk.scores").snapshots()}
    assert flink_commit in kept and len(kept) == 2  # the job's commit and the erasure on top of it


class _OtherWriterInterferes:
    """A real scores table, loaded twice: the erasure works on the first handle while ``interfere``
    commits through the second, once, at the moment a subclass picks."""

    def __init__(self, lake) -> None:
        self._table, self._other, self.done = lake.load_table("risk.scores"), lake.load_table("risk.scores"), False

    def __getattr__(self, name: str):
        return getattr(self._table, name)

    def refresh(self):
        self._table.refresh()
        return self

    def interfere_once(self) -> None:
        if not self.done:
            self.done = True
            self.interfere(self._other)

    def interfere(self, other) -> None:
        raise NotImplementedError

    def erase(self, customer_id: str) -> ErasureReport:
        """``erase_lake`` over a catalog holding only this table."""
        table = self

        class Catalog:
            def list_tables(self, ns):
                return [("risk", "scores")]

            def load_table(self, ident):
                return table

        report = ErasureReport(customer_id)
        erase_lake(Settings(), customer_id, report, cat=Catalog())
        return report


class _JobCommitsDuringTheDelete(_OtherWriterInterferes):
    """The job commits a row of the customer after the delete read the table."""

    def interfere(self, other) -> None:
        other.append(pa.table({"loan_id": ["l-c1-late"], "customer_id": ["c1"]}))

    def delete(self, row_filter, **kwargs) -> None:
        self.interfere_once()
        self._table.delete(row_filter, **kwargs)


def test_a_delete_overtaken_by_a_commit_of_the_customers_rows_is_redone_and_removes_them_too(lake) -> None:
    scores = _JobCommitsDuringTheDelete(lake)
    report = scores.erase("c1")
    assert scores.done and not report.failed, report.failed
    assert sorted(lake.load_table("risk.scores").scan().to_arrow()["customer_id"].to_pylist()) == ["c2", "c3"]


class _MaintainedDuringTheScan(_OtherWriterInterferes):
    """Lake maintenance makes the metadata the first scan reads stale: the files rewritten, the old
    snapshots expired and the old files removed."""

    def interfere(self, other) -> None:
        from datetime import timedelta

        from prefect_flows.lake_upkeep import expire_snapshots, local_lister_deleter, remove_orphans
        other.overwrite(other.scan().to_arrow())  # same rows, new files, as a compaction commits them
        expire_snapshots(other.refresh(), timedelta(0))
        remove_orphans(other.refresh(), *local_lister_deleter(), timedelta(0))

    def scan(self, *args, **kwargs):
        self.interfere_once()
        return self._table.scan(*args, **kwargs)


def test_an_erasure_whose_files_maintenance_removed_meanwhile_reads_the_table_again(lake) -> None:
    scores = _MaintainedDuringTheScan(lake)
    report = scores.erase("c1")
    assert scores.done and not report.failed, report.failed
    assert report.removed == {"lake.scores": 2}
    assert sorted(lake.load_table("risk.scores").scan().to_arrow()["customer_id"].to_pylist()) == ["c2", "c3"]


def test_the_delete_reads_only_the_day_partitions_holding_the_customer(lake, monkeypatch) -> None:
    """pyiceberg's delete reads, one after another, every file its filter may match; a customer id's column bounds
    match nearly every file, so the delete is narrowed to the days the customer's rows are in."""
    from datetime import date

    from pyiceberg.io.pyarrow import PyArrowFileIO
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DateType, NestedField, StringType
    schema = Schema(NestedField(1, "event_id", StringType()), NestedField(2, "customer_id", StringType()),
                    NestedField(3, "event_date", DateType()))
    raw = lake.create_table("risk.raw_transactions", schema, partition_spec=PartitionSpec(
        PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name="event_date")))
    days = [date(2024, 1, d) for d in range(1, 13)]
    for d in days:  # one file per day; c1 only on the 3rd and the 8th
        who = ["c0", "c2", "c9"] + (["c1"] if d.day in (3, 8) else [])
        raw.append(pa.table({"event_id": [f"{c}-{d.day}" for c in who], "customer_id": who,
                             "event_date": [d] * len(who)}, schema=schema.as_arrow()))
    opened: list[str] = []
    real = PyArrowFileIO.new_input
    monkeypatch.setattr(PyArrowFileIO, "new_input",
                        lambda io, location: opened.append(location) or real(io, location))
    report = ErasureReport("c1")
    erase_lake(Settings(), "c1", report, cat=lake)
    data_reads = [f for f in opened if f.endswith(".parquet") and "/raw_transactions/" in f]
    # The finding scan reads each day's file once; the delete only the two that hold c1 (not all twelve again).
    assert len(data_reads) == len(days) + 2, sorted(data_reads)
    assert report.removed["lake.raw_transactions"] == 2 and not report.failed
    left = lake.load_table("risk.raw_transactions").scan().to_arrow()
    assert "c1" not in left["customer_id"].to_pylist() and left.num_rows == 3 * len(days)


def test_a_dry_run_counts_the_customers_rows_and_changes_nothing(lake) -> None:
    scores = lake.load_table("risk.scores")
    snapshots, files = [s.snapshot_id for s in scores.snapshots()], _files(scores)
    report = ErasureReport("c1", dry_run=True)
    erase_lake(Settings(), "c1", report, cat=lake)
    assert report.removed == {"lake.scores": 2, "lake.dead_letters": 2} and not report.failed
    assert report.lines()[0] == "lake.dead_letters: 2 row(s) would be removed"
    scores = lake.load_table("risk.scores")
    assert [s.snapshot_id for s in scores.snapshots()] == snapshots and _files(scores) == files
    assert lake.load_table("risk.dead_letters").scan().to_arrow().num_rows == 3


def test_an_erasure_removes_the_customers_records_from_every_recorded_export_and_only_theirs(tmp_path: Path) -> None:
    import json
    import stat

    from erasure.customer import erase_exports
    from loanrisk.exports import exported_files, record_export
    base = Settings()
    s = base.model_copy(update={"stack": base.stack.model_copy(update={"state_dir": tmp_path / "state"})})
    records = [{"dlq_id": "d1", "event": {"customer_id": "c1", "full_name": "Ann"}},
               {"dlq_id": "d2", "event": {"customer_id": "c12", "full_name": "Bo"}},
               {"dlq_id": "d3", "event": '{"customer_id": "c1", broken'}]
    one, two, gone = tmp_path / "fixes.jsonl", tmp_path / "more.jsonl", tmp_path / "deleted.jsonl"
    one.write_text("".join(json.dumps(r) + "\n" for r in records))
    two.write_text(json.dumps(records[1]) + "\n")
    for path in (one, two, gone):
        record_export(s, path, 3, "test")
    one.chmod(0o600)
    record_export(s, one, 3, "test")  # written again: still one entry
    assert [Path(e["path"]).name for e in exported_files(s)] == ["more.jsonl", "deleted.jsonl", "fixes.jsonl"]
    assert stat.S_IMODE(os.stat(s.state_dir / "exports.json").st_mode) == 0o600

    dry = ErasureReport("c1", dry_run=True)
    erase_exports(s, "c1", dry)
    assert dry.removed == {"export.fixes.jsonl": 2, "export.more.jsonl": 0} and one.read_text().count("\n") == 3

    report = ErasureReport("c1")
    erase_exports(s, "c1", report)
    assert report.removed == {"export.fixes.jsonl": 2, "export.more.jsonl": 0} and not report.failed
    assert [json.loads(line)["dlq_id"] for line in one.read_text().splitlines()] == ["d2"]  # c12 is not c1
    assert two.read_text() == json.dumps(records[1]) + "\n"
    assert stat.S_IMODE(os.stat(one).st_mode) == 0o600
    assert not list(tmp_path.glob(".*.erasing"))


def test_the_erasure_ledger_keeps_each_customer_once_and_replays_them_while_a_source_may_bring_rows_back(
        tmp_path: Path) -> None:
    import stat

    from erasure.ledger import due, erasures, record_erasure, replay_window_s
    base = Settings()
    s = base.model_copy(update={"stack": base.stack.model_copy(update={"state_dir": tmp_path})})
    now = 1_800_000_000.0
    window = replay_window_s(s)
    # Restore points kept 14 days outlive a message in the topics (168 h, plus a segment and the delete delay).
    assert s.kafka.topics.longest_life_ms() / 1000 < window == 14 * 86_400
    record_erasure(s, "c1", at=now - window - 1)  # past the window: no source holds their events any more
    record_erasure(s, "c2", at=now - 60)
    record_erasure(s, "c3", at=now - window + 1)
    record_erasure(s, "c2", at=now - 30)  # erased again: one entry, the latest time
    assert [e["customer_id"] for e in erasures(s)] == ["c1", "c3", "c2"]
    assert due(s, now) == ["c3", "c2"]
    assert stat.S_IMODE(os.stat(tmp_path / "erasures.json").st_mode) == 0o600
    longer = s.model_copy(update={"flink": s.flink.model_copy(update={"restore_point_retention_days": 29.0})})
    assert replay_window_s(longer) == 29 * 86_400 and due(longer, now) == ["c1", "c3", "c2"]


def test_the_ledger_forgets_an_erasure_once_neither_the_topics_nor_a_restore_point_can_undo_it(tmp_path: Path) -> None:
    from erasure.ledger import at_risk_since, due, erasures, forget_past, record_erasure
    base = Settings()
    s = base.model_copy(update={"stack": base.stack.model_copy(update={"state_dir": tmp_path})})
    now, day = 1_800_000_000.0, 86_400.0
    topics_life = s.kafka.topics.longest_life_ms() / 1000
    assert 8 * day < topics_life < 10 * day
    record_erasure(s, "old", at=now - 40 * day)
    record_erasure(s, "month", at=now - 30 * day)
    record_erasure(s, "fortnight", at=now - 12 * day)
    record_erasure(s, "recent", at=now - 2 * day)
    # Every restore point taken after the erasures but the recent one: only the topics can undo those.
    assert at_risk_since(s, now, [now - 3 * day, now - day]) == now - topics_life
    assert due(s, now, [now - 3 * day, now - day]) == ["recent"]
    assert due(s, now, []) == ["recent"]
    # The job has been down 35 days: its latest checkpoint, kept past the retention, predates the month-old erasure.
    assert due(s, now, [now - 35 * day]) == ["month", "fortnight", "recent"]
    # Storage not listable: the retention rule (14 days) stands in.
    assert due(s, now, None) == ["fortnight", "recent"]
    assert forget_past(s, now, [now - 35 * day]) == 1
    assert [e["customer_id"] for e in erasures(s)] == ["month", "fortnight", "recent"]
    assert forget_past(s, now, [now - day]) == 2
    assert erasures(s) == [{"customer_id": "recent", "erased_at": now - 2 * day}]
    assert forget_past(s, now, [now - day]) == 0


def test_a_replay_lists_the_jobs_restore_points_and_forgets_what_none_can_undo(tmp_path: Path) -> None:
    import time

    from erasure.customer import _restore_point_times, replay_erasures
    from erasure.ledger import due, erasures, record_erasure
    from stack.flink_conf import checkpoint_dir
    from jobs.params import RISK_JOB_NAME
    base = Settings()
    s = base.model_copy(update={"stack": base.stack.model_copy(update={"state_dir": tmp_path})})
    record_erasure(s, "long-gone", at=time.time() - 60 * 86_400)
    chk = Path(checkpoint_dir(s, RISK_JOB_NAME).removeprefix("file://")) / ("ab" * 16) / "chk-7"
    chk.mkdir(parents=True)
    (chk / "_metadata").write_bytes(b"x")
    old = time.time() - 90 * 86_400  # a checkpoint older than the erasure: a resume from it could undo it
    os.utime(chk / "_metadata", (old, old))
    assert _restore_point_times(s) == [pytest.approx(old)]
    assert due(s, restore_points=_restore_point_times(s)) == ["long-gone"]
    os.utime(chk / "_metadata")  # now completed after the erasure
    later = replay_erasures(s, dry_run=False, warehouse=False)
    assert later.reports == [] and later.forgotten == 1 and erasures(s) == []


VICTIM = "cus_0123456789abcdef"  # the generator's shape: 20 characters, longer than a truncated bound (16)


def _holding(table, needle: str) -> list[str]:
    """Files under the table's location that hold ``needle``, decoded (Avro blocks decompressed, Parquet read)."""
    from tests.lake_bytes import holds
    root = Path(table.location().removeprefix("file://"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and holds(p.read_bytes(),
                                                                                                 needle.encode()))


def _job_commit(table, customers: list[str], checkpoint: int) -> None:
    """An append as the Flink committer makes it: its checkpoint id in the snapshot summary."""
    table.append(pa.table({"loan_id": [f"l-{c}" for c in customers], "customer_id": customers}),
                 snapshot_properties={"flink.max-committed-checkpoint-id": str(checkpoint), "flink.job-id": "j"})


def test_once_the_job_committed_again_an_erasure_leaves_no_file_holding_the_customer_id_in_rows_or_bounds(
        tmp_path: Path) -> None:
    """A table written with bounds (made before the lake's properties): manifests keep a 16-character prefix of
    the customer id; the files of the snapshots the job's last commit keeps go once the job has committed again."""
    from pyiceberg.catalog.sql import SqlCatalog
    from tests.lake_bytes import AVRO_MAGIC
    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'wh'}")
    cat.create_namespace("risk")
    scores = cat.create_table("risk.scores", pa.schema([("loan_id", pa.string()), ("customer_id", pa.string())]))
    _job_commit(scores, [VICTIM, "cus_ffffffffffffffff"], 1)
    _job_commit(scores, ["cus_1111111111111111"], 2)
    bound = VICTIM[:16]  # the lower bound truncate(16) writes
    in_manifests = [f for f in _holding(scores, bound) if f.endswith(".avro")]
    assert in_manifests, "the scan must see bounds inside compressed manifests, or it proves nothing"
    manifests = list(Path(scores.location().removeprefix("file://")).rglob("*.avro"))
    assert all(p.read_bytes().startswith(AVRO_MAGIC) for p in manifests)
    assert not [p for p in manifests if bound.encode() in p.read_bytes()], "compressed: a raw scan sees no bound"

    ahead = ErasureReport(VICTIM, dry_run=True)
    erase_lake(Settings(), VICTIM, ahead, cat=cat)
    first = ErasureReport(VICTIM)
    erase_lake(Settings(), VICTIM, first, cat=cat)
    assert first.removed == {"lake.scores": 1} and first.history["lake.scores"].kept == 1
    assert ahead.history["lake.scores"].kept == 1, "the dry run foretold another count of kept snapshots"
    erased = cat.load_table("risk.scores").current_snapshot().summary.additional_properties
    assert ERASURE_KEY in erased and VICTIM not in str(erased)
    assert "run the request again after its next checkpoint" in first.lines()[-1]
    assert _holding(cat.load_table("risk.scores"), VICTIM), "the job's last commit still references the old file"

    _job_commit(cat.load_table("risk.scores"), ["cus_2222222222222222"], 3)
    # A commit of lake maintenance (a compaction) on top of the job's: the chain now keeps the job's commit, which
    # is after the erasure and holds none of the customer's rows, so nothing is kept from before it.
    cat.load_table("risk.scores").append(pa.table({"loan_id": ["l-m"], "customer_id": ["cus_3333333333333333"]}))
    dry = ErasureReport(VICTIM, dry_run=True)
    erase_lake(Settings(), VICTIM, dry, cat=cat)
    preview = dry.history["lake.scores"]
    assert preview.snapshots == 2 and preview.files > 0 and preview.kept == 0
    again = ErasureReport(VICTIM)
    erase_lake(Settings(), VICTIM, again, cat=cat)
    assert again.removed == {"lake.scores": 0}
    assert (again.history["lake.scores"].snapshots, again.history["lake.scores"].files) == (2, preview.files)
    scores = cat.load_table("risk.scores")
    assert not _holding(scores, VICTIM) and not _holding(scores, bound)
    assert sorted(scores.scan().to_arrow()["customer_id"].to_pylist()) == [
        "cus_1111111111111111", "cus_2222222222222222", "cus_3333333333333333", "cus_ffffffffffffffff"]


def test_an_existing_table_gets_the_declared_properties_once_and_pyiceberg_then_writes_no_bounds_of_the_customer(
        lake) -> None:
    from contracts.table_sql import lake_table_properties
    from contracts.tables import SCORES
    from loanrisk.lake import upgrade_table_properties
    scores = lake.load_table("risk.scores")
    wanted = lake_table_properties(SCORES)
    assert upgrade_table_properties(scores, wanted) == wanted
    location = scores.refresh().metadata_location
    assert upgrade_table_properties(scores, wanted) == {} and scores.refresh().metadata_location == location
    old = set(scores.inspect.files().column("file_path").to_pylist())
    scores.append(pa.table({"loan_id": ["l-new"], "customer_id": [VICTIM]}))
    ids = {f.name: f.field_id for f in scores.schema().fields}
    (new,) = [f for f in scores.inspect.files().to_pylist() if f["file_path"] not in old]
    assert ids["customer_id"] not in dict(new["lower_bounds"]) and ids["customer_id"] in dict(new["value_counts"])
    assert ids["loan_id"] in dict(new["lower_bounds"])  # other columns keep theirs
    assert [f for f in _holding(scores, VICTIM[:16]) if not f.endswith(".parquet")] == []  # only its rows have it


def test_a_history_purge_deletes_the_files_of_a_commit_that_landed_after_it_started(lake) -> None:
    """A commit between the request's first look and its expiry (the job's, or a compaction's), expired by the
    purge, leaves no data file behind: what is deleted is computed from the snapshots as the expiry found them."""
    from erasure.customer import _purge_history
    table = lake.load_table("risk.scores")
    refresh, calls = table.refresh, []

    def refresh_while_another_writer_commits():
        calls.append(1)
        if len(calls) == 2:  # after the purge's first look, before its expiry
            other = lake.load_table("risk.scores")
            other.append(pa.table({"loan_id": ["l-late"], "customer_id": ["c9"]}))
            other.delete("customer_id == 'c9'")  # the late file is live in one snapshot only, then expired
        return refresh()

    table.refresh = refresh_while_another_writer_commits
    _purge_history(table)
    fresh = lake.load_table("risk.scores")
    on_disk = {str(p) for p in Path(fresh.location().removeprefix("file://"), "data").rglob("*.parquet")}
    live = {p.removeprefix("file://") for p in _files(fresh)}
    assert len(calls) >= 2 and on_disk == live, sorted(on_disk - live)
