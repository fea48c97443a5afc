"""`riskctl produce`: --loans replays whole Lending Club lives (applications included); bad combinations are one line."""

from __future__ import annotations

import re
from collections import Counter

from click.testing import CliRunner

from ingestion.lendingclub import LendingClubReplay, ReplayConfig
from riskctl.commands.produce import produce


def test_loans_replays_each_loan_whole_life_applications_and_repayments_included() -> None:
    events = list(LendingClubReplay(ReplayConfig(seed=2018, limit=5)).events())
    kinds = Counter(kind for _, kind, _ in events)  # (event time ms, kind, event)
    assert kinds["loan_application"] == 5 and kinds["repayment"] > 0 and kinds["transaction"] > 0, kinds
    result = CliRunner().invoke(produce, ["--source", "lendingclub", "--loans", "5", "--rate", "0", "--seed", "2018",
                                          "--dry-run"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"sent={len(events)} failed=0", result.output), result.output


def test_loans_is_refused_in_one_line_for_the_synthetic_source_and_below_one() -> None:
    for args, text in ((["--source", "synthetic", "--loans", "3", "--count", "5"], "lendingclub only"),
                       (["--source", "lendingclub", "--loans", "0"], "at least 1")):
        result = CliRunner().invoke(produce, [*args, "--dry-run"])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert text in result.output.strip().splitlines()[-1], result.output
