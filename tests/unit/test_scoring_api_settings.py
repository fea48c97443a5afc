"""The scoring API's settings: loopback by default, decision bands in order, every band reachable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loanrisk.errors import ConfigError
from loanrisk.settings import ApiSettings, Settings, get_settings


def test_the_api_listens_on_loopback_and_publishes_only_when_asked() -> None:
    api = Settings().api
    assert api.host == "127.0.0.1" and api.publish_default is False


def test_decision_bands_split_at_the_thresholds() -> None:
    api = ApiSettings(approve_below=0.1, decline_at=0.3)
    assert [api.decision(p) for p in (0.0, 0.0999, 0.1, 0.2999, 0.3, 1.0)] == \
        ["approve", "approve", "refer", "refer", "decline", "decline"]
    assert ApiSettings(approve_below=0.2, decline_at=0.2).decision(0.2) == "decline"  # no refer band


def test_bands_out_of_order_are_refused_naming_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="approve_below"):
        ApiSettings(approve_below=0.5, decline_at=0.3)
    monkeypatch.setenv("LOANRISK_API__APPROVE_BELOW", "0.5")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"api\.decline_at"):
            get_settings()
    finally:
        get_settings.cache_clear()
