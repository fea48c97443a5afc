"""Dead-letter tooling without a stack: correction files, topic-to-contract mapping, CLI argument errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ingestion.dead_letters import DeadLetterError, contract_kind, read_corrections
from loanrisk.settings import Settings


def test_corrections_are_read_from_json_lines() -> None:
    got = read_corrections(['{"dlq_id": "abc", "event": {"amount_minor": 5}}', "", '{"dlq_id": "d", "event": {}}'])
    assert got == {"abc": {"amount_minor": 5}, "d": {}}


@pytest.mark.parametrize(("line", "says"), [("{not json", "not JSON"), ('{"dlq_id": "a"}', "expected"),
                                             ('{"event": {}}', "expected"), ('[1, 2]', "expected")])
def test_a_bad_corrections_line_is_one_clear_error_naming_the_line(line: str, says: str) -> None:
    with pytest.raises(DeadLetterError, match=f"line 2: .*{says}"):
        read_corrections(['{"dlq_id": "ok", "event": {}}', line])


def test_topics_map_to_contracts_through_the_settings() -> None:
    s = Settings()
    assert contract_kind(s, s.kafka.topics.transactions) == "transaction"
    assert contract_kind(s, s.kafka.topics.applications) == "loan_application"
    with pytest.raises(DeadLetterError, match="not one of the configured input topics"):
        contract_kind(s, s.kafka.topics.dead_letters)


def test_redrive_without_a_selection_is_a_usage_error() -> None:
    from riskctl.commands.dlq import dlq
    result = CliRunner().invoke(dlq, ["redrive"])
    assert result.exit_code == 2 and "choose dead letters" in result.output


def _redaction_patterns() -> list[tuple[str, str]]:
    """The (pattern, replacement) pairs of the dead-letter view's REGEXP_REPLACE calls, innermost first."""
    import re

    from loanrisk.settings import REPO_ROOT
    sql = (REPO_ROOT / "sql" / "risk" / "50_dead_letters.sql").read_text()
    return re.findall(r"^\s*'((?:[^']|'')+)', '([^']*)'\),?$", sql, flags=re.M)


def _redact(text: str) -> str:
    import re
    for pattern, replacement in _redaction_patterns():
        text = re.sub(pattern.replace("''", "'"), replacement.replace("$1", r"\1"), text)
    return text


def test_dead_letter_redaction_masks_pii_shaped_text_but_keeps_dates_and_times() -> None:
    assert len(_redaction_patterns()) == 3
    payload = ('{"event_time": "2018-01-01T10:20:30.000Z", "due_date": "2018-02-01", "note": '
               '"call +1 (555) 555-0123 or +91 91234 56789 or (020) 7946 0958, acct 123456789012, '
               'mail jo.doe@example.com", "email": "x@y.io", "amount_minor": 44754}')
    got = _redact(payload)
    for kept in ("2018-01-01T10:20:30.000Z", "2018-02-01", "44754"):
        assert kept in got, got
    for gone in ("555-0123", "91234 56789", "7946 0958", "123456789012", "jo.doe@example.com", "x@y.io"):
        assert gone not in got, got
