"""The daily risk report renders from small frames: HTML, every plot, PSI against the training reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.drift import psi, score_reference
from prefect_flows.risk_report import ReportInputs, by_version, render


def _inputs(seed: int = 0) -> ReportInputs:
    rng = np.random.default_rng(seed)
    n = 400
    p1, p2 = rng.beta(2, 20, n), rng.beta(2, 6, n)
    scores = pd.DataFrame({"trigger_kind": np.where(rng.random(2 * n) < 0.7, "application", "behaviour_window"),
                           "loan_id": [f"l{i}" for i in range(2 * n)],
                           "trigger_time": pd.date_range("2018-01-01", periods=2 * n, freq="h", tz="UTC"),
                           "probability": np.concatenate([p1, p2]), "model_version": ["v0001"] * n + ["v0002"] * n})
    labelled = scores[scores["trigger_kind"] == "application"].iloc[::2][["loan_id", "probability", "model_version"]].copy()
    labelled["defaulted"] = (rng.random(len(labelled)) < labelled["probability"]).astype(float)
    meta = {"v0001": {"score_reference": score_reference(rng.beta(2, 20, 2000)), "family": "random_forest"},
            "v0002": {"score_reference": score_reference(rng.beta(2, 20, 2000))}}
    return ReportInputs(scores=scores, labelled=labelled, metadata=meta, champion="v0002", threshold=0.3)


def test_report_writes_html_with_every_plot(tmp_path: Path) -> None:
    path = render(_inputs(), tmp_path / "r", "Daily risk report")
    page = path.read_text()
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == sorted(["volumes.png", "score_distribution.png", "high_risk_share.png", "calibration.png",
                           "realised_vs_predicted.png", "psi.png"])
    assert all((path.parent / p).stat().st_size > 1000 for p in pngs)
    assert all(f"src='{p}'" in page for p in pngs)
    assert "v0002" in page and "Model in use" in page


def test_psi_is_small_for_the_training_distribution_and_large_for_a_shifted_one() -> None:
    table = by_version(_inputs().scores, _inputs().labelled, _inputs().metadata).set_index("model_version")
    assert table.loc["v0001", "psi_vs_training"] < 0.1 and table.loc["v0001", "drift"] == "stable"
    assert table.loc["v0002", "psi_vs_training"] > 0.25 and table.loc["v0002", "drift"] == "major shift"


def test_psi_of_a_reference_against_its_own_scores_is_zero() -> None:
    p = np.random.default_rng(1).uniform(0, 1, 5000)
    assert psi(score_reference(p), p) < 1e-9
