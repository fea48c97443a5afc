"""``python -m scoring_api``: the scoring API on the settings' api.host and api.port (as ``riskctl serve``)."""

from __future__ import annotations

import argparse
import sys

from loanrisk.errors import LoanRiskError
from loanrisk.logs import setup_logging
from loanrisk.settings import get_settings
from scoring_api.server import run


def main() -> None:
    """Log as every process of ours does, then serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", help="the service's state folder (marks the process for `riskctl stack down`)")
    parser.parse_args()
    setup_logging()
    try:
        run(get_settings())
    except LoanRiskError as exc:
        print(f"scoring_api: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
