"""`riskctl` loads every command module it lists, and says which one it cannot load instead of skipping it."""

from __future__ import annotations

import importlib

import pytest

from riskctl import main as riskctl_main


def test_a_missing_command_module_fails_naming_it_and_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(riskctl_main, "COMMANDS", (("riskctl.commands.not_written", "nothing"),))
    monkeypatch.setattr("sys.argv", ["riskctl", "--help"])
    with pytest.raises(SystemExit) as exit_:
        riskctl_main.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "riskctl.commands.not_written" in err and "make setup" in err


def test_every_listed_command_module_loads() -> None:
    riskctl_main._register()
    listed = {getattr(importlib.import_module(module), attr).name for module, attr in riskctl_main.COMMANDS}
    assert listed <= set(riskctl_main.cli.commands)
    assert {"serve", "api-key"} <= listed
