"""The Flink standalone cluster: JobManager and TaskManager run under stack.supervisor."""

from __future__ import annotations

import json
import sys
import urllib.request

from loanrisk.errors import StackError
from loanrisk.settings import REPO_ROOT
from stack.flink_conf import write_flink_config
from stack.process import PidFile
from stack.services.base import Service


class FlinkCluster(Service):
    """JobManager (REST on flink.rest_port) and flink.taskmanagers TaskManagers, supervised."""

    name = "flink"

    @property
    def marker(self) -> str:
        return f"stack.supervisor --state {self.state}"

    @property
    def ports(self) -> dict[str, int]:
        return {"rest": self.settings.flink.rest_port, "rpc": self.settings.flink.jobmanager_rpc_port}

    def prepare(self) -> None:
        from stack.setup import s3_plugin_installed
        if not (self.settings.cluster_flink_home / "lib").exists():
            raise StackError(f"{self.settings.cluster_flink_home} is not laid out: run `riskctl setup` first")
        if self.settings.flink.checkpoint_storage == "s3" and not s3_plugin_installed(self.settings):
            raise StackError(f"no S3 file system in {self.settings.flink_home / 'plugins'} for checkpoints on the "
                             "object store: run `riskctl setup` (or set LOANRISK_FLINK__CHECKPOINT_STORAGE=local)")
        write_flink_config(self.settings)
        if self.settings.flink.checkpoint_storage == "local":
            for sub in ("checkpoints", "savepoints"):
                (self.home / sub).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.supervisor", "--state", str(self.state)]

    def env(self) -> dict[str, str]:
        # The supervisor reads its settings from the environment: pass on what `stack up` may have overridden.
        f = self.settings.flink
        return {"PYTHONPATH": str(REPO_ROOT), "LOANRISK_STACK__STATE_DIR": str(self.state),
                "LOANRISK_STACK__INSTALL_DIR": str(self.settings.install_dir),
                "LOANRISK_FLINK__TASKMANAGERS": str(f.taskmanagers), "LOANRISK_FLINK__CLUSTER_HOME": f.cluster_home}

    def overview(self) -> dict:
        """The REST API's /overview document."""
        with urllib.request.urlopen(f"{self.settings.flink.rest_url}/overview", timeout=2) as resp:
            return json.load(resp)

    def healthy(self) -> bool:
        try:
            return self.overview().get("taskmanagers", 0) >= self.settings.flink.taskmanagers
        except OSError:
            return False

    def child_pid(self, role: str) -> int | None:
        """PID of the supervised JobManager or a TaskManager (stack.supervisor.taskmanager_role)."""
        return PidFile(self.state / "run" / f"flink-{role}.pid", "flink").read()
