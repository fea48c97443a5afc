"""`riskctl model ...`: the whole cycle on a labeled file and a local registry; errors are one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from models.synthetic import toy_applications
from riskctl.commands.model import model


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "apps.csv"
    toy_applications(1500, seed=41).to_csv(path, index=False)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(model, list(args))
    return result.exit_code, result.output


def one_line_error(code: int, out: str, text: str) -> None:
    assert code != 0 and "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], out


def test_train_list_promote_rollback_evaluate_score(tmp_path: Path, data: Path) -> None:
    reg = str(tmp_path / "registry")
    code, out = run("train", "--file", str(data), "--registry", reg, "--families", "logistic_regression",
                    "--budget", "2", "--promote")
    assert code == 0, out
    assert "registered v0001" in out and "promoted v0001" in out and "parity max |diff|" in out
    code, out = run("train", "--file", str(data), "--registry", reg, "--families", "logistic_regression",
                    "--budget", "1", "--seed", "3")
    assert code == 0 and "registered v0002" in out, out
    code, out = run("list", "--registry", reg)
    assert code == 0 and "v0001" in out and "v0002" in out and "*" in out
    one_line_error(*run("promote", "v0001", "--registry", reg), "already the champion")
    code, out = run("promote", "v0002", "--registry", reg, "--force")
    assert code == 0 and "champion is now v0002" in out and "[forced]" in out, out
    code, out = run("rollback", "--registry", reg)
    assert code == 0 and "champion is now v0001" in out
    one_line_error(*run("rollback", "--registry", reg), "no previous champion")
    report = tmp_path / "report"
    code, out = run("evaluate", "--file", str(data), "--registry", reg, "--report", str(report))
    assert code == 0 and "sub_grade" in out and "logistic_regression" in out, out
    assert {p.name for p in report.iterdir()} >= {"index.html", "roc.png", "calibration.png", "importance.png",
                                                  "score_distribution.png", "reliability.png"}
    code, out = run("train", "--file", str(data), "--registry", reg, "--families", "logistic_regression",
                    "--budget", "1", "--calibration", "isotonic", "--compare-calibration", "--no-register")
    assert code == 0 and "ECE" in out, out
    assert "calibration sigmoid" in out and "calibration isotonic" in out, out
    scored = tmp_path / "scored.parquet"
    code, out = run("score", "--file", str(data), "--out", str(scored), "--registry", reg)
    assert code == 0, out
    frame = pd.read_parquet(scored)
    assert len(frame) == 1500 and frame["default_probability"].between(0, 1).all()


@pytest.mark.parametrize("args, text", [
    (["promote", "v0042", "--registry", "{reg}"], "no version v0042"),
    (["train", "--file", "{missing}", "--registry", "{reg}"], "no such file"),
    (["score", "--file", "{missing}", "--out", "{tmp}/o.csv", "--registry", "{reg}"], "no champion"),
    (["train", "--registry", "{reg}"], "exactly one of --dataset or --file"),
    (["train", "--file", "{missing}", "--families", "xgboost"], "unknown family"),
])
def test_errors_are_one_line(tmp_path: Path, args: list[str], text: str) -> None:
    fill = {"reg": str(tmp_path / "reg"), "missing": str(tmp_path / "nope.csv"), "tmp": str(tmp_path)}
    code, out = run(*[a.format(**fill) for a in args])
    assert code != 0 and "Traceback" not in out and text in out, out


def test_backtest_on_a_file_prints_paired_differences_and_writes_json(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "bt.json"
    code, text = run("backtest", "--file", str(data), "--families", "logistic_regression", "--budget", "1",
                     "--folds", "3", "--repeats", "1", "--json", str(out))
    assert code == 0, text
    assert "paired ROC AUC, model - sub_grade" in text and "no-skill Brier" in text
    import json
    digest = json.loads(out.read_text())
    assert set(digest["paired_roc_auc"]) == {"logistic_regression", "prevalence", "sub_grade"}
    assert digest["paired_roc_auc"]["sub_grade"]["n"] == 3 and len(digest["per_fold_roc_auc"]["model"]) == 3
    assert digest["summary"]["model"]["roc_auc_mean"] > digest["summary"]["prevalence"]["roc_auc_mean"]


def test_backtest_side_by_side_pairs_the_same_folds_with_and_without_an_attribute(tmp_path: Path) -> None:
    """An informative declared attribute in the file: the variant with it wins on the same folds, in one table."""
    import json

    import numpy as np
    frame = toy_applications(1500, seed=43)
    rng = np.random.default_rng(5)
    frame["historical_failures_to_pay"] = rng.poisson(0.3 + 2.5 * frame["defaulted"])  # a strong bureau fact
    path = tmp_path / "apps.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "bt.json"
    code, text = run("backtest", "--file", str(path), "--families", "logistic_regression", "--budget", "1",
                     "--folds", "3", "--repeats", "2", "--side-by-side", "--json", str(out))
    assert code == 0, text
    table = text[text.index("side by side on"):]
    rows = {line.split("  ")[0]: line for line in table.splitlines()
            if line.startswith(("with attributes", "without attributes"))}
    assert set(rows) == {"with attributes", "without attributes"}, table
    assert "paired ROC AUC, without attributes - with attributes: -" in table, table
    digest = json.loads(out.read_text())
    with_, without = digest["with attributes"], digest["without attributes"]
    assert with_["settings"]["features"] == without["settings"]["features"] + 1
    assert with_["summary"]["model"]["roc_auc_mean"] > without["summary"]["model"]["roc_auc_mean"]
    gain = with_["paired_roc_auc"]["sub_grade"]
    assert gain["se_corrected"] > gain["se"] > 0  # folds share training rows: the plain error is too small
    assert "outer fold 6/6" in text


def test_backtest_side_by_side_monotonic_pairs_the_constrained_procedure_with_the_unconstrained_one(
        tmp_path: Path) -> None:
    """The monotonic default is decided on a paired figure: both procedures on the same folds, in one table."""
    import json
    data = tmp_path / "apps.csv"
    toy_applications(1200, seed=44).to_csv(data, index=False)
    out = tmp_path / "bt.json"
    code, text = run("backtest", "--file", str(data), "--families", "logistic_regression", "--budget", "1",
                     "--folds", "3", "--repeats", "1", "--side-by-side", "monotonic", "--json", str(out))
    assert code == 0, text
    table = text[text.index("side by side on"):]
    assert {line.split("  ")[0] for line in table.splitlines()
            if line.startswith(("unconstrained", "monotonic"))} == {"unconstrained", "monotonic"}, table
    assert "paired ROC AUC, monotonic - unconstrained:" in table, table
    digest = json.loads(out.read_text())
    assert (digest["unconstrained"]["settings"]["monotonic"], digest["monotonic"]["settings"]["monotonic"]) == (
        False, True)
    assert len(digest["monotonic"]["per_fold_roc_auc"]["model"]) == 3
    code, text = run("backtest", "--file", str(data), "--side-by-side", "bogus")
    assert code != 0 and "bogus" in text and "Traceback" not in text


def test_the_model_monotonic_setting_is_the_default_and_the_flag_overrides_it(
        tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retrain flow reads model.monotonic; `riskctl model train` follows it unless told otherwise."""
    from loanrisk.settings import get_settings
    args = ("train", "--file", str(data), "--families", "logistic_regression", "--budget", "1", "--no-register")
    try:
        for setting, given, trained in (("true", (), "constrained"), ("true", ("--no-monotonic",), "unconstrained"),
                                        ("false", (), "unconstrained"), ("false", ("--monotonic",), "constrained")):
            monkeypatch.setenv("LOANRISK_MODEL__MONOTONIC", setting)
            get_settings.cache_clear()
            code, out = run(*args, *given)
            assert code == 0 and f"monotonicity: {trained}" in out, (setting, given, out)
    finally:
        monkeypatch.delenv("LOANRISK_MODEL__MONOTONIC")
        get_settings.cache_clear()
