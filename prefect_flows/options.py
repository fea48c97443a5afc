"""Task options every flow shares: retries with exponential backoff and a timeout, from settings.prefect.

The settings are read when a flow runs (``with_policy``), not when its module is imported: a flow module
imports without a valid configuration, and a run takes the settings of the process that runs it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from loanrisk.errors import ConfigError
from loanrisk.settings import PrefectSettings, get_settings

T = TypeVar("T")


def retry_delays(retries: int, first_delay_s: float) -> list[float]:
    """Delays before each retry: ``first_delay_s`` doubling every time (Prefect's exponential_backoff)."""
    from prefect.tasks import exponential_backoff

    return exponential_backoff(backoff_factor=first_delay_s)(retries) if retries else []


def deterministic_errors() -> tuple[type[BaseException], ...]:
    """Failures another attempt cannot fix: bad configuration, too few labels, refused models."""
    from ingestion.apis.http import ApiAuthError
    from models.errors import DatasetError, FeatureMismatchError, ParityError, PromotionRefused

    return ConfigError, ApiAuthError, DatasetError, FeatureMismatchError, ParityError, PromotionRefused


def retry_unless_deterministic(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless it failed in a way retrying cannot fix (see deterministic_errors)."""
    try:
        state.result()
    except deterministic_errors():
        return False
    except BaseException:  # noqa: BLE001 - any other failure (network, timeout, a crash) is worth another attempt
        return True
    return True


# What every ``@task`` gets where it is defined; the rest of the policy comes from the settings at run time.
TASK_DEFAULTS: dict[str, Any] = {"retry_condition_fn": retry_unless_deterministic, "log_prints": True}


def task_options(retries: int | None = None, timeout_s: float | None = None,
                 prefect: PrefectSettings | None = None) -> dict[str, Any]:
    """Task options: retries, exponential retry delays, jitter, timeout, retry condition (``prefect``: the settings)."""
    p = prefect or get_settings().prefect
    n = p.task_retries if retries is None else retries
    return {"retries": n, "retry_delay_seconds": retry_delays(n, p.retry_delay_s), "retry_jitter_factor": 0.2,
            "timeout_seconds": p.task_timeout_s if timeout_s is None else timeout_s, **TASK_DEFAULTS}


def with_policy(task: T, retries: int | None = None, timeout_s: float | None = None) -> T:
    """``task`` with the retry and timeout policy of the settings; a flow calls it as it runs."""
    return task.with_options(**task_options(retries, timeout_s))  # type: ignore[attr-defined]


def log_as_configured(flow: Any, flow_run: Any, state: Any) -> None:
    """A run starting: its process (one `flows serve` starts per run) logs in stack.log_format from here on."""
    from loanrisk.logs import setup_logging
    setup_logging()


def flow_options(name: str, description: str) -> dict[str, Any]:
    """Keyword arguments for ``@flow``: name, description, log format, failure notification, printed lines as logs."""
    from prefect_flows.notify import notify_failure

    return {"name": name, "description": description, "on_running": [log_as_configured],
            "on_failure": [notify_failure], "log_prints": True, "validate_parameters": True}
