"""The risk job's Flink configuration follows the settings (checkpointing mode, unaligned barriers, bundles)."""

from __future__ import annotations

from loanrisk.settings import Settings
from riskctl.commands.job import job_flink_conf


def test_job_conf_checkpoints_exactly_once_with_aligned_barriers() -> None:
    """Iceberg's FlinkSink can lose data files on recovery from an unaligned checkpoint (apache/iceberg#15846)."""
    conf = job_flink_conf(Settings(), "loan-risk")
    assert conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert conf["execution.checkpointing.interval"] == "10000 ms"
    assert conf["execution.checkpointing.unaligned.enabled"] == "false"
    assert not any("aligned-checkpoint-timeout" in key for key in conf)  # would switch to unaligned
    assert conf["pipeline.name"] == "loan-risk"


def test_job_conf_follows_environment_overrides(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_INTERVAL_MS", "2500")
    monkeypatch.setenv("LOANRISK_FLINK__PYTHON_BUNDLE_TIME_MS", "40")
    conf = job_flink_conf(Settings(), "x")
    assert conf["execution.checkpointing.interval"] == "2500 ms"
    assert conf["python.fn-execution.bundle.time"] == 40


def test_buffer_debloat_is_on_by_default_and_can_be_turned_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from stack.flink_conf import flink_config
    key = "taskmanager.network.memory.buffer-debloat.enabled"
    assert flink_config(Settings())[key] is True
    monkeypatch.setenv("LOANRISK_FLINK__BUFFER_DEBLOAT", "false")
    assert flink_config(Settings())[key] is False
