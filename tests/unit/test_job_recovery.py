"""Resuming the risk job: which checkpoint or savepoint is the latest (a folder and a moto S3 bucket), what a
submission records, `riskctl job resume`, and when the supervisor resubmits after a JobManager crash."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from click.testing import CliRunner

from loanrisk.settings import Settings
from stack.recovery import (
    ResumePolicy, RestorePoint, Submission, latest_restore_point, mark_stopped, record_submission, restore_point_at,
    restore_points, resubmit, submissions,
)
from stack.supervisor import JobKeeper
from tests.moto_s3 import moto_server

JOB_A = "a" * 32
JOB_B = "b" * 32
NAME = "loan-risk"


def local_settings(state: Path) -> Settings:
    settings = Settings()
    return settings.model_copy(update={
        "stack": settings.stack.model_copy(update={"state_dir": state}),
        "flink": settings.flink.model_copy(update={"checkpoint_storage": "local"})})


def completed(folder: Path, at: float, files: tuple[str, ...] = ("_metadata", "state-1")) -> Path:
    """A checkpoint or savepoint folder as Flink leaves it, its files dated ``at``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (at, at))
    return folder


# -- the latest restore point ------------------------------------------------------------------------
def test_the_latest_completed_checkpoint_wins_across_job_ids_by_time_not_by_number(tmp_path: Path) -> None:
    s = local_settings(tmp_path)
    checkpoints, t0 = tmp_path / "flink" / "checkpoints" / NAME, 1_800_000_000.0
    completed(checkpoints / JOB_A / "chk-41", t0)
    completed(checkpoints / JOB_A / "chk-42", t0 + 10)
    # A later job submitted without state numbers its checkpoints from 1 again.
    completed(checkpoints / JOB_B / "chk-3", t0 + 30)
    completed(checkpoints / JOB_B / "chk-4", t0 + 60, files=("state-1",))  # in progress: no _metadata yet
    (checkpoints / JOB_B / "shared").mkdir()
    completed(tmp_path / "flink" / "checkpoints" / "bench-floor" / JOB_A / "chk-99", t0 + 90)  # another job
    point = latest_restore_point(s, NAME)
    assert point == RestorePoint(f"file://{checkpoints / JOB_B / 'chk-3'}", "checkpoint", t0 + 30, 3, JOB_B)
    assert [p.checkpoint_id for p in restore_points(s, NAME)] == [41, 42, 3]
    assert point.describe().startswith(f"checkpoint 3 of job {JOB_B[:8]} (file://")


def test_a_savepoint_newer_than_every_checkpoint_is_taken_and_an_older_one_is_not(tmp_path: Path) -> None:
    s = local_settings(tmp_path)
    t0 = 1_800_000_000.0
    completed(tmp_path / "flink" / "checkpoints" / NAME / JOB_A / "chk-7", t0 + 20)
    savepoints = tmp_path / "flink" / "savepoints" / NAME
    completed(savepoints / "savepoint-aaaaaa-0123456789ab", t0 + 10)
    assert latest_restore_point(s, NAME).kind == "checkpoint"
    completed(savepoints / "savepoint-aaaaaa-ba9876543210", t0 + 30)
    point = latest_restore_point(s, NAME)
    assert (point.kind, point.uri) == ("savepoint", f"file://{savepoints / 'savepoint-aaaaaa-ba9876543210'}")


def test_nothing_to_resume_from_is_none_and_a_path_without_metadata_is_refused(tmp_path: Path) -> None:
    s = local_settings(tmp_path)
    assert latest_restore_point(s, NAME) is None
    unfinished = completed(tmp_path / "flink" / "checkpoints" / NAME / JOB_A / "chk-5", 1.0, files=("state-1",))
    assert latest_restore_point(s, NAME) is None
    assert restore_point_at(s, str(unfinished)) is None
    assert restore_point_at(s, str(tmp_path / "no-such-folder")) is None


def test_a_given_path_may_name_the_folder_or_its_metadata_file(tmp_path: Path) -> None:
    s = local_settings(tmp_path)
    folder = completed(tmp_path / "elsewhere" / JOB_A / "chk-12", 1_800_000_000.0)
    for given in (str(folder), f"{folder}/", f"{folder}/_metadata", f"file://{folder}"):
        point = restore_point_at(s, given)
        assert point is not None and (point.uri, point.checkpoint_id) == (f"file://{folder}", 12), given


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def test_the_latest_checkpoint_on_an_s3_bucket(moto_endpoint: str) -> None:
    from loanrisk.objectstore import s3_client
    settings = Settings()
    s = settings.model_copy(update={"s3": settings.s3.model_copy(update={"endpoint": moto_endpoint,
                                                                         "secret_access_key": SecretStr("testing"),
                                                                         "bucket": "resume-test"}),
                                    "flink": settings.flink.model_copy(update={"checkpoint_storage": "s3"})})
    client = s3_client(s.s3)
    client.create_bucket(Bucket="resume-test")
    base = f"flink/checkpoints/{NAME}"
    # chk-3 first: if the clock passes a second between the writes, chk-9 is still the newest.
    for key in (f"{base}/{JOB_A}/chk-3/_metadata", f"{base}/{JOB_A}/chk-9/_metadata", f"{base}/{JOB_A}/chk-9/state-1",
                f"{base}/{JOB_A}/chk-10/state-1", f"{base}/{JOB_A}/shared/",
                f"flink/checkpoints/other/{JOB_B}/chk-50/_metadata"):
        client.put_object(Bucket="resume-test", Key=key, Body=b"x")
    point = latest_restore_point(s, NAME)  # same second: the higher checkpoint number
    assert (point.uri, point.checkpoint_id) == (f"s3://resume-test/{base}/{JOB_A}/chk-9", 9)
    time.sleep(1.1)  # S3 times have whole seconds
    savepoint = f"flink/savepoints/{NAME}/savepoint-bbbbbb-00112233aabb"
    client.put_object(Bucket="resume-test", Key=f"{savepoint}/_metadata", Body=b"x")
    point = latest_restore_point(s, NAME)
    assert (point.kind, point.uri) == ("savepoint", f"s3://resume-test/{savepoint}")
    assert restore_point_at(s, f"s3://resume-test/{base}/{JOB_A}/chk-3/_metadata").checkpoint_id == 3
    assert restore_point_at(s, f"s3://resume-test/{base}/{JOB_A}/chk-10") is None


# -- what a submission records ----------------------------------------------------------------------
def submission(tmp_path: Path, job_id: str = JOB_A, at: float = 100.0, wanted: bool = True) -> Submission:
    params = tmp_path / "params.json"
    if not params.exists():
        params.write_text(json.dumps({"sql": {"window_minutes": 1440}, "flink_conf": {"pipeline.name": NAME}}))
    return Submission(NAME, job_id, "/repo/jobs/run_sql.py", ["--params", str(params), "--name", NAME],
                      ["/repo/jobs"], str(params), submitted_at=at, wanted=wanted)


def test_submitting_the_risk_job_records_how_to_submit_it_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import loanrisk.lake
    import loanrisk.serving
    import stack.flink_client
    from jobs.submit import submit_risk_job
    runs: list[tuple[Path, list[str]]] = []
    monkeypatch.setattr(loanrisk.serving, "ensure_serving_tables", lambda settings: None)
    monkeypatch.setattr(loanrisk.lake, "upgrade_lake_tables", lambda settings: {})
    monkeypatch.setattr(loanrisk.lake, "add_missing_columns", lambda settings: {})
    monkeypatch.setattr(stack.flink_client, "flink_run", lambda settings, job, args, py_files=None:
                        runs.append((job, args)) or JOB_A)
    s = local_settings(tmp_path)
    assert submit_risk_job(s) == JOB_A
    (record,) = submissions(s)
    assert (record.name, record.job_id, record.wanted) == (NAME, JOB_A, True)
    assert (Path(record.job), record.args) == runs[0]
    assert record.args[record.args.index("--params") + 1] == record.params
    assert json.loads(Path(record.params).read_text())["flink_conf"]["execution.checkpointing.dir"].endswith(
        f"/checkpoints/{NAME}")
    mark_stopped(s, JOB_A)
    assert not submissions(s)[0].wanted


def test_resubmitting_restores_the_point_with_the_recorded_parameters(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import stack.flink_client
    calls: list[list[str]] = []
    monkeypatch.setattr(stack.flink_client, "flink_run", lambda settings, job, args, py_files=None:
                        calls.append(args) or JOB_B)
    s = local_settings(tmp_path)
    sub = submission(tmp_path)
    point = RestorePoint("s3://warehouse/flink/checkpoints/loan-risk/x/chk-7", "checkpoint", 1.0, 7, JOB_A)
    assert resubmit(s, sub, point) == JOB_B
    params = json.loads(Path(sub.params).read_text())
    assert params["flink_conf"]["execution.state-recovery.path"] == point.uri
    assert params["sql"] == {"window_minutes": 1440}  # the submitter's settings, not the supervisor's
    assert stat.S_IMODE(Path(sub.params).stat().st_mode) == 0o600
    assert calls == [sub.args]
    assert submissions(s)[0].job_id == JOB_B


def test_riskctl_job_resume_says_what_it_resumed_from_or_that_there_is_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import riskctl.commands.job as job_cmd
    import stack.flink_client
    from loanrisk.settings import get_settings
    monkeypatch.setenv("LOANRISK_STACK__STATE_DIR", str(tmp_path))
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_STORAGE", "local")
    get_settings.cache_clear()
    jobs: list[dict[str, Any]] = []
    submitted: list[str | None] = []
    monkeypatch.setattr(stack.flink_client, "list_jobs", lambda settings: jobs)
    monkeypatch.setattr(job_cmd, "submit_risk_job",
                        lambda settings, savepoint=None: submitted.append(savepoint) or JOB_B)
    try:
        result = CliRunner().invoke(job_cmd.job, ["resume"])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1, result.output
        assert "nothing to resume loan-risk from: no completed checkpoint under" in lines[0]
        chk = completed(tmp_path / "flink" / "checkpoints" / NAME / JOB_A / "chk-8", 1_800_000_000.0)
        result = CliRunner().invoke(job_cmd.job, ["resume"])
        assert result.exit_code == 0, result.output
        assert result.output.strip().startswith(f"resumed loan-risk as job {JOB_B} from checkpoint 8 of job aaaaaaaa")
        assert submitted == [f"file://{chk}"]
        result = CliRunner().invoke(job_cmd.job, ["resume", "--from", str(tmp_path / "nowhere")])
        assert result.exit_code != 0 and "no _metadata file there" in result.output
        jobs.append({"jid": JOB_B, "name": NAME, "state": "RUNNING"})
        result = CliRunner().invoke(job_cmd.job, ["resume"])
        assert result.exit_code != 0 and "already running as job" in result.output
        assert len(submitted) == 1
    finally:
        get_settings.cache_clear()


# -- the supervisor's decision ----------------------------------------------------------------------
def running(job_id: str, state: str = "RUNNING") -> dict[str, str]:
    return {"jid": job_id, "name": NAME, "state": state}


def test_a_job_running_when_the_jobmanager_died_is_queued_once(tmp_path: Path) -> None:
    policy = ResumePolicy(started_at=50.0)
    policy.observe(0, [running(JOB_A)])
    policy.jobmanager_lost([submission(tmp_path)])
    assert list(policy.pending) == [NAME]
    policy.jobmanager_started(now=200.0)
    policy.jobmanager_lost([submission(tmp_path)])  # died again before the job was back: still one entry
    assert list(policy.pending) == [NAME]


@pytest.mark.parametrize("state", ["CANCELED", "CANCELLING", "FINISHED", "FAILED"])
def test_a_job_cancelled_finished_or_failed_stays_down(tmp_path: Path, state: str) -> None:
    policy = ResumePolicy(started_at=50.0)
    policy.observe(0, [running(JOB_A, state)])
    policy.jobmanager_lost([submission(tmp_path)])
    assert not policy.pending


def test_a_job_stopped_through_riskctl_stays_down_even_if_last_seen_running(tmp_path: Path) -> None:
    policy = ResumePolicy(started_at=50.0)
    policy.observe(0, [running(JOB_A)])
    policy.jobmanager_lost([submission(tmp_path, wanted=False)])
    assert not policy.pending


def test_a_job_submitted_to_this_jobmanager_but_not_seen_yet_counts_and_one_from_an_earlier_cluster_does_not(
        tmp_path: Path) -> None:
    policy = ResumePolicy(started_at=50.0)
    policy.jobmanager_lost([submission(tmp_path, at=60.0)])
    assert list(policy.pending) == [NAME]
    policy = ResumePolicy(started_at=50.0)
    policy.jobmanager_lost([submission(tmp_path, at=40.0)])
    assert not policy.pending


def test_a_look_at_a_jobmanager_that_is_gone_is_ignored(tmp_path: Path) -> None:
    policy = ResumePolicy(started_at=50.0)
    policy.jobmanager_started(now=60.0)
    policy.observe(0, [running(JOB_A)])  # the round began before the restart
    assert policy.seen == {}


class Cluster:
    """What the keeper sees and does, faked: the JobManager's job list, the TaskManager, the checkpoints."""

    def __init__(self, tmp_path: Path) -> None:
        self.jobs: list[dict[str, str]] = [running(JOB_A)]
        self.ready = True
        self.point: RestorePoint | None = RestorePoint("s3://w/flink/checkpoints/loan-risk/a/chk-9", "checkpoint",
                                                        1.0, 9, JOB_A)
        self.fail_submits = 0
        self.submitted: list[str] = []
        self.record = submission(tmp_path)

    def keeper(self) -> JobKeeper:
        return JobKeeper(Settings(), ResumePolicy(started_at=0.0), list_jobs=lambda: list(self.jobs),
                         cluster_ready=lambda: self.ready, latest=lambda name: self.point, resubmit=self.resubmit,
                         records=lambda: [self.record])

    def resubmit(self, sub: Submission, point: RestorePoint) -> str:
        from loanrisk.errors import StackError
        if self.fail_submits:
            self.fail_submits -= 1
            raise StackError("flink run failed: connection refused")
        self.submitted.append(point.uri)
        job_id = f"{len(self.submitted):032x}"
        self.jobs.append(running(job_id, "CREATED"))
        self.record = Submission(**{**sub.__dict__, "job_id": job_id, "submitted_at": time.time()})
        return job_id

    def crash(self, keeper: JobKeeper) -> None:
        """kill -9 of the JobManager, and the supervisor starting a new one (which knows no job)."""
        keeper.jobmanager_lost()
        self.jobs = []
        keeper.jobmanager_started()


def test_after_a_jobmanager_crash_the_running_job_is_resubmitted_exactly_once(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    keeper = cluster.keeper()
    keeper.tick()
    cluster.crash(keeper)
    for _ in range(5):
        keeper.tick()
    assert cluster.submitted == [cluster.point.uri]
    assert [j["state"] for j in cluster.jobs] == ["CREATED"]
    cluster.crash(keeper)  # and it comes back again after a second crash
    for _ in range(3):
        keeper.tick()
    assert len(cluster.submitted) == 2 and len(cluster.jobs) == 1


def test_after_a_deliberate_cancel_a_jobmanager_crash_brings_nothing_back(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    keeper = cluster.keeper()
    cluster.jobs = [running(JOB_A, "CANCELED")]
    keeper.tick()
    cluster.crash(keeper)
    for _ in range(3):
        keeper.tick()
    assert cluster.submitted == [] and cluster.jobs == []


def test_the_keeper_waits_for_a_taskmanager_and_retries_a_failed_submission_without_doubling(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    keeper = cluster.keeper()
    keeper.tick()
    cluster.crash(keeper)
    cluster.ready = False
    keeper.tick()
    assert cluster.submitted == []
    cluster.ready, cluster.fail_submits = True, 2
    for _ in range(4):
        keeper.tick()
    assert len(cluster.submitted) == 1 and len(cluster.jobs) == 1


def test_a_job_someone_already_resubmitted_is_left_alone(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    keeper = cluster.keeper()
    keeper.tick()
    cluster.crash(keeper)
    cluster.jobs = [running(JOB_B)]  # `riskctl job resume` got there first
    keeper.tick()
    keeper.tick()
    assert cluster.submitted == [] and not keeper.policy.pending


def test_a_job_with_no_checkpoint_is_not_started_without_state(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    cluster.point = None
    keeper = cluster.keeper()
    keeper.tick()
    cluster.crash(keeper)
    keeper.tick()
    keeper.tick()
    assert cluster.submitted == [] and not keeper.policy.pending


def test_a_resubmission_to_a_jobmanager_that_died_meanwhile_is_made_again_once(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    keeper = cluster.keeper()
    keeper.tick()
    cluster.crash(keeper)
    real = cluster.resubmit

    def dies_under_the_submission(sub: Submission, point: RestorePoint) -> str:
        job_id = real(sub, point)
        cluster.crash(keeper)  # the new job went to a JobManager that is gone now
        return job_id

    keeper.resubmit = dies_under_the_submission
    keeper.tick()
    keeper.resubmit = real
    for _ in range(3):
        keeper.tick()
    assert len(cluster.submitted) == 2 and len(cluster.jobs) == 1


def test_records_survive_as_files_and_a_broken_one_is_skipped(tmp_path: Path) -> None:
    s = local_settings(tmp_path)
    record_submission(s, submission(tmp_path))
    (tmp_path / "run" / "jobs" / "half-written.json").write_text("{")
    assert [r.job_id for r in submissions(s)] == [JOB_A]


# -- pruning old restore points ------------------------------------------------------------------------
def test_prunable_points_are_past_the_retention_but_never_the_latest_nor_a_live_jobs_checkpoints(
        tmp_path: Path) -> None:
    from stack.recovery import prunable
    s = local_settings(tmp_path)
    s = s.model_copy(update={"flink": s.flink.model_copy(update={"restore_point_retention_days": 1.0})})
    checkpoints, savepoints = tmp_path / "flink" / "checkpoints" / NAME, tmp_path / "flink" / "savepoints" / NAME
    now, day = 1_800_000_000.0, 86_400.0
    completed(checkpoints / JOB_A / "chk-7", now - 3 * day)  # an old job's: past the retention
    completed(savepoints / "savepoint-aaaaaa-000000000001", now - 2 * day)  # past it
    completed(savepoints / "savepoint-bbbbbb-000000000002", now - 0.5 * day)  # within it
    completed(checkpoints / JOB_B / "chk-2", now - 5 * day)  # the live job's: Flink's to keep
    completed(checkpoints / JOB_B / "chk-3", now - 4 * day)  # the live job's, older still
    old = prunable(s, NAME, alive_job_ids={JOB_B}, now=now)
    assert sorted(p.uri.rsplit("/", 1)[-1] for p in old) == ["chk-7", "savepoint-aaaaaa-000000000001"]
    # Everything past the retention once nothing is alive, but the latest point stays even when it is old.
    for folder in (savepoints / "savepoint-bbbbbb-000000000002",):
        for f in folder.iterdir():
            os.utime(f, (now - 9 * day, now - 9 * day))
    everything = prunable(s, NAME, alive_job_ids=set(), now=now)
    latest = latest_restore_point(s, NAME)
    assert latest is not None and latest not in everything
    assert len(everything) == len(restore_points(s, NAME)) - 1


def test_a_restore_point_retention_longer_than_the_erasure_deadline_is_refused_in_one_line() -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="restore_point_retention_days .* longer than privacy.erasure_deadline"):
        Settings(flink={"restore_point_retention_days": 45})
