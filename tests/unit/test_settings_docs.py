"""docs/CONFIGURATION.md is what `python -m loanrisk.config_docs` prints for the settings as they are."""

from __future__ import annotations

import contextlib
import io

from loanrisk import config_docs
from loanrisk.settings import REPO_ROOT


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        config_docs.main()
    assert (REPO_ROOT / "docs" / "CONFIGURATION.md").read_text() == out.getvalue(), \
        "docs/CONFIGURATION.md is stale: run `python -m loanrisk.config_docs > docs/CONFIGURATION.md`"
