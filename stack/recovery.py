"""Bringing a job back with its state: where its checkpoints and savepoints are, which one to resume from,
what was submitted (so it can be submitted again as it was), and when the supervisor should do so.

A standalone JobManager without high availability forgets its jobs when it dies (Flink 2.1 offers
ZooKeeper and Kubernetes HA only). The checkpoints stay on the object store, so the job can be submitted
again from the latest one: by a person (`riskctl job resume`) or by stack/supervisor.py after it
restarted a crashed JobManager, for a job that was running then.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from loanrisk.files import write_private
from loanrisk.settings import Settings
from stack.flink_conf import checkpoint_dir, savepoint_dir

# Job states in which the job is running or about to run again; every other state (CANCELLING, CANCELED,
# FINISHED, FAILED, SUSPENDED) means it ended, or is being ended, on purpose or for good.
ALIVE = frozenset({"INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "FAILING", "RECONCILING"})
METADATA = "_metadata"
_CHECKPOINT = re.compile(r"(?:^|/)(?P<job>[0-9a-f]{32})/chk-(?P<n>\d+)/_metadata$")
_SAVEPOINT = re.compile(r"(?:^|/)(?P<folder>savepoint-(?P<job>[0-9a-f]{6})-[0-9a-f]+)/_metadata$")


# -- restore points -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestorePoint:
    """A completed checkpoint or savepoint: a folder holding a ``_metadata`` file."""

    uri: str
    kind: str  # "checkpoint" or "savepoint"
    completed_at: float  # the _metadata file's time (epoch seconds)
    checkpoint_id: int | None = None  # the n of chk-<n>; savepoints do not show theirs in the name
    job_id: str = ""  # the full job id of a checkpoint; the first six hex digits of a savepoint's

    def describe(self) -> str:
        """One line for people: what it is, where, and when it completed."""
        when = datetime.fromtimestamp(self.completed_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = f"checkpoint {self.checkpoint_id} of job {self.job_id[:8]}" if self.kind == "checkpoint" \
            else f"savepoint of job {self.job_id[:6]}"
        return f"{what} ({self.uri}, completed {when})"


def list_metadata(settings: Settings, folder_uri: str) -> list[tuple[str, float]]:
    """Every ``_metadata`` file under ``folder_uri`` (s3:// or file://, or a plain path), with its time."""
    parsed = urlparse(folder_uri)
    if parsed.scheme in ("s3", "s3a"):
        from loanrisk.objectstore import list_objects, s3_client
        client = s3_client(settings.s3)
        prefix = parsed.path.lstrip("/").rstrip("/") + "/"
        return [(f"{parsed.scheme}://{parsed.netloc}/{obj['Key']}", obj["LastModified"].timestamp())
                for obj in list_objects(client, parsed.netloc, prefix) if obj["Key"].endswith("/" + METADATA)]
    root = Path(parsed.path if parsed.scheme == "file" else folder_uri)
    if not root.is_dir():
        return []
    return [(f"file://{p}", p.stat().st_mtime) for p in root.rglob(METADATA) if p.is_file()]


def restore_points(settings: Settings, job_name: str) -> list[RestorePoint]:
    """Completed checkpoints (every job id) and savepoints of the jobs called ``job_name``, oldest first."""
    points = []
    for uri, when in list_metadata(settings, checkpoint_dir(settings, job_name)):
        if found := _CHECKPOINT.search(uri):
            points.append(RestorePoint(uri.removesuffix("/" + METADATA), "checkpoint", when, int(found["n"]),
                                       found["job"]))
    for uri, when in list_metadata(settings, savepoint_dir(settings, job_name)):
        if found := _SAVEPOINT.search(uri):
            points.append(RestorePoint(uri.removesuffix("/" + METADATA), "savepoint", when, None, found["job"]))
    # Newest first by the time it completed (chk numbers restart at 1 for a job submitted without state);
    # within one second, a savepoint (taken on purpose, often to stop) before a checkpoint, then the higher n.
    return sorted(points, key=lambda p: (p.completed_at, p.kind == "savepoint", p.checkpoint_id or 0))


def latest_restore_point(settings: Settings, job_name: str) -> RestorePoint | None:
    """The most recently completed checkpoint or savepoint of ``job_name``, or None when there is none."""
    points = restore_points(settings, job_name)
    return points[-1] if points else None


def restore_point_at(settings: Settings, path: str) -> RestorePoint | None:
    """The checkpoint or savepoint at ``path`` (its folder or its _metadata file), None without a _metadata."""
    folder = path.rstrip("/").removesuffix("/" + METADATA)
    if "://" not in folder:
        folder = f"file://{Path(folder).resolve()}"
    metadata = f"{folder}/{METADATA}"
    matches = [(uri, when) for uri, when in list_metadata(settings, folder) if uri == metadata]
    if not matches:
        return None
    if found := _CHECKPOINT.search(metadata):
        return RestorePoint(folder, "checkpoint", matches[0][1], int(found["n"]), found["job"])
    found = _SAVEPOINT.search(metadata)
    return RestorePoint(folder, "savepoint", matches[0][1], None, found["job"] if found else "")


def prunable(settings: Settings, job_name: str, alive_job_ids: set[str], now: float | None = None) -> list[RestorePoint]:
    """The checkpoints and savepoints of ``job_name`` older than ``flink.restore_point_retention_days``, less the
    latest one (what `riskctl job resume` would take) and the checkpoints of a job still alive (Flink keeps and
    may restore those itself)."""
    points = restore_points(settings, job_name)
    cutoff = (time.time() if now is None else now) - settings.flink.restore_point_retention_days * 86_400
    return [p for p in points[:-1]
            if p.completed_at < cutoff and not (p.kind == "checkpoint" and p.job_id in alive_job_ids)]


def prune_restore_points(settings: Settings, job_name: str, dry_run: bool = False,
                         say: Callable[[str], None] = print) -> list[RestorePoint]:
    """Dispose of :func:`prunable` restore points with Flink's own savepoint disposal (the JobManager deletes the
    state files, the metadata and the folder); returns them. A local job folder left with empty folders only is
    removed too."""
    from stack.flink_client import dispose_savepoint, list_jobs
    alive = {j["jid"] for j in list_jobs(settings) if j.get("state") in ALIVE}
    old = prunable(settings, job_name, alive)
    for point in old:
        say(f"{'would dispose of' if dry_run else 'disposing of'} {point.describe()}")
        if not dry_run:
            dispose_savepoint(settings, point.uri)
            _remove_empty_folders(point)
    return old


def _remove_empty_folders(point: RestorePoint) -> None:
    """The chk-<n> folder's job folder (local storage) once nothing but empty folders is left in it."""
    parsed = urlparse(point.uri)
    if parsed.scheme not in ("", "file") or point.kind != "checkpoint":
        return
    job_folder = Path(parsed.path).parent
    if not job_folder.is_dir() or any(p.is_file() for p in job_folder.rglob("*")):
        return
    for folder in sorted((p for p in job_folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        folder.rmdir()
    job_folder.rmdir()


# -- what was submitted ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    """How a job was submitted (`flink run` arguments and its parameter file), to submit it again as it was.

    The supervisor resubmits from this record rather than from its own settings: the submitter may have
    run with other settings (the tests' compressed time, a changed checkpoint interval), and a job only
    restores its state into the plan it was compiled from.
    """

    name: str
    job_id: str
    job: str  # the PyFlink entry point
    args: list[str]
    py_files: list[str]
    params: str  # the parameter file (mode 0600) the args name
    submitted_at: float = field(default_factory=time.time)
    wanted: bool = True  # False once stopped on purpose through riskctl (cancel, stop with savepoint)


def _records_dir(settings: Settings) -> Path:
    return settings.state_dir / "run" / "jobs"


def record_submission(settings: Settings, submission: Submission) -> Path:
    """Keep ``submission`` as the latest of its job name (written whole, then renamed into place)."""
    folder = _records_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{submission.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(submission), indent=1))
    tmp.replace(path)
    return path


def submissions(settings: Settings) -> list[Submission]:
    """The latest submission of every job name submitted through riskctl on this stack."""
    found = []
    for path in sorted(_records_dir(settings).glob("*.json")):
        try:
            found.append(Submission(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # a record being replaced or from another version: not one to act on
    return found


def mark_stopped(settings: Settings, job_id: str) -> None:
    """Record that ``job_id`` was stopped on purpose, so no one brings it back by themselves."""
    for sub in submissions(settings):
        if sub.job_id == job_id and sub.wanted:
            record_submission(settings, replace(sub, wanted=False))


def resubmit(settings: Settings, submission: Submission, point: RestorePoint) -> str:
    """Submit ``submission`` again, restoring ``point``; records the new job id and returns it."""
    from stack.flink_client import flink_run
    params_path = Path(submission.params)
    params: dict[str, Any] = json.loads(params_path.read_text())
    params.setdefault("flink_conf", {})["execution.state-recovery.path"] = point.uri
    tmp = params_path.with_name(params_path.name + ".tmp")
    write_private(tmp, json.dumps(params)).replace(params_path)  # it holds credentials
    job_id = flink_run(settings, Path(submission.job), submission.args, [Path(p) for p in submission.py_files])
    record_submission(settings, replace(submission, job_id=job_id, submitted_at=time.time(), wanted=True))
    return job_id


# -- the supervisor's decision --------------------------------------------------------------------
@dataclass
class ResumePolicy:
    """Which jobs to bring back after a JobManager crash, from what the supervisor saw of the cluster.

    A job is brought back when its latest submission was not stopped through riskctl and either the last
    look at the crashed JobManager showed it alive, or it was submitted to that JobManager after its start
    and no look saw it yet. A job seen cancelled, finished or failed stays down. Each job waits in
    ``pending`` until it is resubmitted once, found running again, or found to have nothing to resume from;
    a JobManager that dies again meanwhile does not add or drop anything.
    """

    started_at: float = field(default_factory=time.time)
    generation: int = 0
    seen: dict[str, str] = field(default_factory=dict)  # job id -> last state seen on this JobManager
    pending: dict[str, Submission] = field(default_factory=dict)

    def observe(self, generation: int, jobs: list[dict[str, Any]]) -> None:
        """A look at the JobManager of ``generation`` (its /jobs/overview list); ignored if it is gone since."""
        if generation == self.generation:
            self.seen.update({str(j["jid"]): str(j["state"]) for j in jobs})

    def was_running(self, submission: Submission) -> bool:
        """True when ``submission``'s job was running on the JobManager that just died."""
        if not submission.wanted:
            return False
        state = self.seen.get(submission.job_id)
        if state is not None:
            return state in ALIVE
        return submission.submitted_at >= self.started_at

    def jobmanager_lost(self, records: list[Submission]) -> None:
        """The JobManager died: queue every job that was running on it."""
        for sub in records:
            if self.was_running(sub):
                self.pending[sub.name] = sub

    def jobmanager_started(self, now: float | None = None) -> None:
        """A new JobManager started: it knows no job yet."""
        self.generation += 1
        self.started_at = time.time() if now is None else now
        self.seen = {}

    def resubmitted(self, name: str, job_id: str, generation: int) -> None:
        """``name`` was resubmitted as ``job_id`` to the JobManager of ``generation``."""
        if generation != self.generation:
            return  # that JobManager died meanwhile: still pending (a live job of that name is found first)
        self.pending.pop(name, None)
        self.seen[job_id] = "CREATED"

    def settled(self, name: str) -> None:
        """Nothing more to do for ``name`` (running again, or nothing to resume from)."""
        self.pending.pop(name, None)
