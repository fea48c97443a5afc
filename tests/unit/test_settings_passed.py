"""Settings are handed on as copies (override), and code that reads them fails on an invalid one instead of
guessing a default."""

from __future__ import annotations

import pytest

from loanrisk.errors import ConfigError
from loanrisk.settings import Settings, get_settings, override


def test_override_changes_a_copy_and_leaves_the_original_and_the_environment_alone() -> None:
    import os
    base = Settings()
    before = dict(os.environ)
    copy = override(base, flink={"window_minutes": 1440, "checkpoint_interval_ms": 5000},
                    model={"poll_interval_s": 2.0})
    assert (copy.flink.window_minutes, copy.flink.checkpoint_interval_ms, copy.model.poll_interval_s) == (1440, 5000, 2.0)
    assert (base.flink.window_minutes, base.model.poll_interval_s) == (Settings().flink.window_minutes, 10.0)
    assert copy.kafka == base.kafka and dict(os.environ) == before


def test_override_names_an_unknown_setting() -> None:
    with pytest.raises(ConfigError, match="no setting flink.window_minute;"):
        override(Settings(), flink={"window_minute": 1})
    with pytest.raises(ConfigError, match="no settings section 'flnk'"):
        override(Settings(), flnk={"window_minutes": 1})


def test_the_models_alert_threshold_is_the_configured_one_or_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.pipeline import alert_threshold
    monkeypatch.setenv("LOANRISK_MODEL__ALERT_THRESHOLD", "0.3")
    get_settings.cache_clear()
    try:
        assert alert_threshold() == 0.3
        monkeypatch.setenv("LOANRISK_MODEL__ALERT_THRESHOLD", "high")
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match="LOANRISK_MODEL__ALERT_THRESHOLD"):
            alert_threshold()
    finally:
        get_settings.cache_clear()
