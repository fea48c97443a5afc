"""The Flink SQL, lake and serving schemas follow the contracts (one source of truth)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from contracts.events import INPUT_EVENTS
from contracts.features import APPLICATION_FEATURE_NAMES, FEATURE_NAMES
from contracts.flink_sql import parse_spec, projection, scoring_fragments, sql_fragments
from contracts.validate import DEFAULT_FUTURE_TOLERANCE
from loanrisk.settings import REPO_ROOT

RISK_SQL = REPO_ROOT / "sql" / "risk"


def test_the_parse_spec_carries_every_field_with_its_type_and_rules() -> None:
    for contract in INPUT_EVENTS:
        spec = json.loads(parse_spec(contract))
        assert [f["name"] for f in spec["fields"]] == list(contract.names)
        for got, field in zip(spec["fields"], contract.fields):
            assert (got["type"], got["nullable"], got["minimum"], got["maximum"]) == \
                (field.type, field.nullable, field.minimum, field.maximum)
            assert got["choices"] == (list(field.choices) if field.choices else None)
        assert spec["event_time_field"] == contract.event_time_field


def spec_fragments(fragments: dict[str, str]) -> dict[str, dict]:
    """The parse_event and event_time_of specs among ``fragments``, decoded (SQL quotes undone)."""
    return {name: json.loads(text.replace("''", "'")) for name, text in fragments.items()
            if name.endswith("_spec")}


def test_every_spec_the_job_reads_carries_the_one_future_tolerance_it_is_given() -> None:
    specs = spec_fragments(sql_fragments(timedelta(seconds=42)))
    assert set(specs) == {f"{c.name}_spec" for c in INPUT_EVENTS} | {"source_event_time_spec"}
    assert {name: spec["future_tolerance_ms"] for name, spec in specs.items()} == dict.fromkeys(specs, 42_000)


def test_without_a_tolerance_the_specs_carry_the_contracts_default() -> None:
    assert {s["future_tolerance_ms"] for s in spec_fragments(sql_fragments()).values()} == \
        {DEFAULT_FUTURE_TOLERANCE // timedelta(milliseconds=1)}


def test_a_negative_future_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_spec(INPUT_EVENTS[0], timedelta(seconds=-1))


def test_pii_fields_are_pseudonymised_in_the_projection_and_nothing_else_is() -> None:
    for contract in INPUT_EVENTS:
        cols = projection(contract).split(",\n  ")
        for field, expr in zip(contract.fields, cols):
            assert ("pii_hash(" in expr) == field.pii, field.name
        assert [f["name"] for f in json.loads(parse_spec(contract))["fields"] if f["pii"]] == contract.pii_fields


def test_free_text_that_can_name_a_person_is_marked_pii() -> None:
    """counterparty holds payer, contact and merchant names (RazorpayX, Plaid): a person's data."""
    fields = {f.name: f for c in INPUT_EVENTS for f in c.fields}
    assert fields["counterparty"].pii and fields["full_name"].pii and fields["account_number"].pii


def test_the_scoring_sql_computes_every_model_feature() -> None:
    from jobs.params import sql_params
    from jobs.sqlfiles import render
    from loanrisk.settings import Settings
    text = render((RISK_SQL / "70_scoring_input.sql").read_text(), sql_params(Settings()))
    for name in FEATURE_NAMES:
        assert re.search(rf"AS `?{name}\b|\.`?{name}\b", text), name
    for name in APPLICATION_FEATURE_NAMES:
        assert re.search(rf"AS `?{name}\b", text), name


def test_the_udf_call_lists_the_features_in_contract_order() -> None:
    assert scoring_fragments("onnx")["score_call"] == f"score_loan({', '.join(f'`{n}`' for n in FEATURE_NAMES)})"
