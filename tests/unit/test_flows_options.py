"""Every flow task retries with exponential backoff and a timeout taken from settings; deterministic errors do not retry."""

from __future__ import annotations

import pytest

from loanrisk.settings import get_settings


@pytest.fixture()
def fast_retries(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOANRISK_PREFECT__TASK_RETRIES", "4")
    monkeypatch.setenv("LOANRISK_PREFECT__RETRY_DELAY_S", "3")
    monkeypatch.setenv("LOANRISK_PREFECT__TASK_TIMEOUT_S", "120")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_task_options_double_the_delay_on_every_retry(fast_retries: None) -> None:
    from prefect_flows.options import task_options

    opts = task_options()
    assert opts["retries"] == 4
    assert opts["retry_delay_seconds"] == [3, 6, 12, 24]
    assert opts["timeout_seconds"] == 120


def test_every_flow_task_carries_the_shared_policy() -> None:
    from prefect_flows.deployments import DEPLOYMENTS, load_flow

    s = get_settings().prefect
    for d in DEPLOYMENTS:
        flow = load_flow(d.flow)
        assert flow.on_failure_hooks, f"{d.flow} has no failure hook"
    from prefect_flows import compact_lake, data_quality, expire_snapshots, ingest_apis, maintain_lake, retrain
    from prefect_flows.options import retry_unless_deterministic, with_policy
    for task in (retrain.load_training_set, retrain.register, data_quality.check_table, ingest_apis.pull,
                 maintain_lake.upkeep, expire_snapshots.expire_table, compact_lake.compact_table):
        assert task.retry_condition_fn is retry_unless_deterministic, task.name
        t = with_policy(task)
        assert t.retries == s.task_retries and t.timeout_seconds == s.task_timeout_s, t.name
        assert len(t.retry_delay_seconds) == s.task_retries


def test_importing_a_flow_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow takes the settings of the process that runs it, when it runs; an invalid one still imports."""
    import importlib
    import sys

    from loanrisk.errors import ConfigError
    from prefect_flows.deployments import DEPLOYMENTS

    monkeypatch.setenv("LOANRISK_PREFECT__TASK_RETRIES", "many")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError):
            get_settings()
        for name in [m for m in sys.modules if m.startswith("prefect_flows.")]:
            monkeypatch.delitem(sys.modules, name)
        for d in DEPLOYMENTS:
            importlib.import_module(f"prefect_flows.{d.flow}")
    finally:
        get_settings.cache_clear()


def test_retry_condition_skips_configuration_and_data_errors_only() -> None:
    from prefect.states import Failed

    from loanrisk.errors import ConfigError
    from models.errors import DatasetError, RegistryError
    from prefect_flows.options import retry_unless_deterministic

    def failed(exc: BaseException):
        return Failed(data=exc)
    assert retry_unless_deterministic(None, None, failed(ConnectionError("refused"))) is True
    assert retry_unless_deterministic(None, None, failed(RegistryError("S3 down"))) is True
    assert retry_unless_deterministic(None, None, failed(ConfigError("bad setting"))) is False
    assert retry_unless_deterministic(None, None, failed(DatasetError("3 defaults is too few"))) is False


def test_the_retrain_deployment_runs_every_six_hours_in_utc() -> None:
    from prefect_flows.deployments import spec

    d = spec("retrain")
    assert d.cron == "0 */6 * * *" and d.full_name == "retrain/retrain"
