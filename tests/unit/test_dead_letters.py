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
