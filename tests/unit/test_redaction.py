"""Dead-letter redaction and PII pseudonyms, run through the job's own Java code (jvm/functions Redactor).

The corpus holds what a dead letter must still show (nanosecond timestamps, epoch milliseconds, large
amounts, the broken value of a type error) and what it must not (names in arrays, escaped and
differently cased keys, free text, single-quoted and truncated JSON, national phone formats).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from pathlib import Path

import pytest

from contracts.events import INPUT_EVENTS
from contracts.flink_sql import parse_spec
from loanrisk.settings import REPO_ROOT
from stack.java import java_bin
from tests.unit.test_event_parser import job_jars

CONTRACTS = {c.name: c for c in INPUT_EVENTS}
KEY, KEY_ID = "unit-test-hmac-key", "t7"
NAME, EMAIL, PHONE, ACCOUNT = "Zelda Quuxworth", "zelda.q@example.org", "+44 20 7946 0958", "GB29NWBK60161331926819"


def pseudonym(value: str) -> str:
    """What pii_hash must give: the key id and the hex HMAC-SHA256 of the UTF-8 value."""
    return f"{KEY_ID}:{hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()}"


@pytest.fixture(scope="module")
def redact(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A function sending requests to the jar's harness in one JVM: (contract, payload) pairs or values."""
    key_file = tmp_path_factory.mktemp("key") / "pii-key"
    key_file.write_text(KEY + "\n")  # the trailing newline an editor adds is not part of the key
    functions, dist = job_jars()

    def run(requests: list[dict]) -> list[str]:
        lines = "".join(json.dumps(r) + "\n" for r in requests)
        out = subprocess.run([java_bin(), "-cp", f"{functions}:{dist}", "loanrisk.flink.RedactCli", str(key_file),
                              KEY_ID], input=lines, capture_output=True, text=True, encoding="utf-8", timeout=120,
                             check=True).stdout
        return [json.loads(line) for line in out.splitlines()]
    return run


def payloads(redact, kind: str, *texts: str | None) -> list[str]:  # type: ignore[no-untyped-def]
    spec = parse_spec(CONTRACTS[kind])
    return redact([{"spec": spec, "payload": t} for t in texts])


def test_the_java_pseudonym_is_the_keyed_hmac_sha256_of_the_value(redact) -> None:  # type: ignore[no-untyped-def]
    values = [NAME, EMAIL, "", "\u00e9\u4e2d\U0001f600"]
    assert redact([{"pseudonym": v} for v in values]) == [pseudonym(v) for v in values]


def test_a_parsed_payload_keeps_numbers_and_times_and_pseudonymises_pii(redact) -> None:  # type: ignore[no-untyped-def]
    (got,) = payloads(redact, "loan_application", json.dumps({
        "event_id": "e-1", "customer_id": "c-42", "full_name": NAME, "email": EMAIL, "phone": 442079460958,
        "event_time": "2026-11-26T10:00:00.123456789Z", "amount_minor": 123456789012345, "annual_income_minor": "12,000",
        "term_months": 481, "purpose": "car"}))
    doc = json.loads(got)
    assert doc["full_name"] == pseudonym(NAME) and doc["email"] == pseudonym(EMAIL)
    assert doc["phone"] == pseudonym("442079460958")  # a number in a PII field is a person's too
    assert doc["event_time"] == "2026-11-26T10:00:00.123456789Z" and doc["amount_minor"] == 123456789012345
    assert doc["annual_income_minor"] == "12,000", "a type error must still show the value that broke it"
    assert (doc["event_id"], doc["customer_id"], doc["term_months"], doc["purpose"]) == ("e-1", "c-42", 481, "car")


def test_epoch_milliseconds_and_large_amounts_survive_as_numbers(redact) -> None:  # type: ignore[no-untyped-def]
    (got,) = payloads(redact, "transaction", json.dumps({"event_time": 1514764800000, "amount_minor": 99999999999999,
                                                          "balance_minor": -123456789012}))
    assert json.loads(got) == {"event_time": 1514764800000, "amount_minor": 99999999999999,
                               "balance_minor": -123456789012}


@pytest.mark.parametrize("payload", [
    json.dumps({"full_name": [NAME, "Jr"], "aliases": [NAME, {"nick": NAME}]}),      # names in arrays
    '{"full\\u005fname": "' + NAME + '", "e\\u006dail": "' + EMAIL + '"}',          # escaped keys
    json.dumps({"Full_Name": NAME, "EMAIL": EMAIL, "Phone": PHONE}),                  # differently cased keys
    json.dumps({"note": f"call {NAME} on 020 7946 0958", "purpose": f"loan for {NAME}"}),  # free text
    json.dumps({"account_number": ACCOUNT, "counterparty": NAME}),
    json.dumps({"x": {NAME: 1}, NAME: 2}),                                            # names as keys
    "{'full_name': '" + NAME + "', 'amount_minor': 5}",                               # single-quoted
    '{"event_id": "e-1", "full_name": "' + NAME,                                      # truncated in a value
    '{"note": "' + NAME + ' ' + EMAIL,                                                # truncated free text
    f"full_name={NAME}; phone=020 7946 0958; email={EMAIL}; acct {ACCOUNT}",           # not JSON at all
    f'{{"full_name": {NAME}, "phone": (020) 7946 0958}}',                             # unquoted values
], ids=["arrays", "escaped-keys", "cased-keys", "free-text", "account-counterparty", "name-keys", "single-quoted",
        "truncated-value", "truncated-text", "not-json", "unquoted"])
def test_no_part_of_a_persons_data_survives(redact, payload: str) -> None:  # type: ignore[no-untyped-def]
    (got,) = payloads(redact, "transaction" if "account" in payload else "loan_application", payload)
    for part in (*NAME.split(), EMAIL, "7946", "0958", ACCOUNT, "60161331926819"):
        assert part not in got, (part, got)
    print(f"\n{payload[:60]!r} -> {got!r}")


def test_a_payload_that_does_not_parse_keeps_its_structure_and_field_names(redact) -> None:  # type: ignore[no-untyped-def]
    (got,) = payloads(redact, "loan_application",
                      "{'event_id': 'e-9', 'full_name': 'Zelda Quuxworth', 'amount_minor': 5, 'event_time': "
                      "'2026-11-26T10:00:00.123456789Z'")
    assert got == ("{'event_id': 'e-9', 'full_name': '<pii>', 'amount_minor': 5, 'event_time': "
                   "'2026-11-26T10:00:00.123456789Z'")


def test_a_huge_payload_is_cut_to_64_kib_without_splitting_a_character(redact) -> None:  # type: ignore[no-untyped-def]
    huge = json.dumps({"event_id": "e", "purpose": "x"}) + "\U0001f600" * 200_000
    got, whole = payloads(redact, "loan_application", huge, "[" + "1," * 100_000 + "1]")
    assert len(got) <= 65_536 and len(whole) == 65_536
    assert not ("\ud800" <= got[-1] <= "\udbff"), "cut inside a surrogate pair"


def test_null_and_empty_payloads_are_empty(redact) -> None:  # type: ignore[no-untyped-def]
    assert payloads(redact, "repayment", None, "") == ["", ""]


def test_every_dead_letter_branch_redacts_with_its_own_contracts_spec() -> None:
    sql = (REPO_ROOT / "sql" / "risk" / "50_dead_letters.sql").read_text()
    for contract in INPUT_EVENTS:
        source = {"loan_application": "checked_loan_applications", "transaction": "checked_transactions",
                  "repayment": "checked_repayments"}[contract.name]
        branch = next(b for b in sql.split("UNION ALL") if f"FROM {source}" in b)
        assert f"redact_payload(payload, '${{{contract.name}_spec}}') AS payload" in branch, contract.name


def test_an_empty_or_missing_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    functions, dist = job_jars()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for key_file, says in ((empty, "is empty"), (tmp_path / "missing", "cannot read the PII key file")):
        out = subprocess.run([java_bin(), "-cp", f"{functions}:{dist}", "loanrisk.flink.RedactCli", str(key_file), "k1"],
                             input="", capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and says in out.stderr and str(key_file) in out.stderr


def test_hostile_payloads_of_a_mebibyte_are_redacted_and_cut(redact) -> None:  # type: ignore[no-untyped-def]
    """Long runs of what the patterns look for (letters, digits, '@', quotes, escapes) end, cut to 64 KiB."""
    mib = 1 << 20
    hostile = ["a" * mib, "9" * mib, "a@" * (mib // 2), '"' * mib, "'a" * (mib // 2), "\\" * mib, "+1 " * (mib // 3),
               '{"note": "' + "x " * (mib // 2) + '"}']
    got = payloads(redact, "loan_application", *hostile)
    assert len(got) == len(hostile) and all(len(g) <= 65_536 for g in got)
    assert "9999999999" not in got[1]
