"""Application attributes are declared in one place (contracts/attributes.py) and everything else follows.

The proof adds one attribute the way a lender would, by one edit of contracts/attributes.py, in a copy of
the contracts package that a separate interpreter imports before the repository's: the lake and warehouse
DDL, validation, the job's SQL fragments, the features, a model trained on a file carrying the column, and
the stream's scorer all carry it, while no other file changed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.attributes import APPLICATION_ATTRIBUTES, Attribute
from contracts.events import LOAN_APPLICATION
from contracts.feature_formulas import application_feature_values
from contracts.features import ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES
from contracts.validate import validate_event
from loanrisk.settings import REPO_ROOT
from models.dataset import from_applications
from models.synthetic import toy_applications

NEW = "months_at_address"
# The lender's one edit: a line appended to contracts/attributes.py.
DECLARATION = (f'\nAPPLICATION_ATTRIBUTES = APPLICATION_ATTRIBUTES + (Attribute("{NEW}", "int", "Months at the '
               'current address.", unit="months", minimum=0, maximum=1200, direction=-1),)\n')

# Run in a fresh interpreter that imports the extended contracts: what each consumer derives from them.
PROBE = r'''
import json, sys
import numpy as np
from contracts.features import FEATURE_NAMES, risk_directions
from contracts.flink_sql import parse_spec, scoring_fragments, sql_fragments
from contracts.events import LOAN_APPLICATION
from contracts.validate import validate_event
from models.dataset import from_applications
from models.pipeline import train_candidate
from models.registry import Registry
from models.synthetic import toy_applications
from scoring_api.schemas import contract_schema
from udfs.scorer import Scorer
from warehouse.ddl import create_table_sql, table

NEW, registry_dir = sys.argv[1], sys.argv[2]
fragments = sql_fragments()
apps = toy_applications(1500, seed=4)
rng = np.random.default_rng(4)
# The new attribute carries the label's signal; a tenth of the rows lack it.
months = np.where(apps["defaulted"] == 1, rng.integers(0, 12, len(apps)), rng.integers(6, 240, len(apps)))
apps[NEW] = [None if rng.random() < 0.1 else int(m) for m in months]
cand = train_candidate(from_applications(apps, "file:with-attribute"), ["logistic_regression"], budget=1,
                       n_repeats=1, hold_out=False, threshold=0.5)
registry = Registry(registry_dir)
version = cand.register(registry)
registry.promote(version, force=True)
scorer = Scorer(registry_dir, FEATURE_NAMES, poll_on_score=False)
row = np.zeros((3, len(FEATURE_NAMES)))
j = FEATURE_NAMES.index(NEW)
row[:, j] = [2.0, 200.0, np.nan]
p, scored_by, _ = scorer.score_matrix(row)
event = {f.name: None for f in LOAN_APPLICATION.fields}
print(json.dumps({
    "feature_names": FEATURE_NAMES, "direction": risk_directions([NEW]),
    "raw_ddl": fragments["raw_loan_applications_columns"], "scores_ddl": fragments["scores_columns"],
    "active_ddl": fragments["loan_applications_active_postgres"],
    "attribute_features": fragments["attribute_features"],
    "spec": parse_spec(LOAN_APPLICATION), "score_call": scoring_fragments("onnx")["score_call"],
    "warehouse": create_table_sql(table("LOAN_APPLICATIONS")), "api": list(contract_schema()["properties"]),
    "model_inputs": cand.metadata["feature_names"], "registered": scored_by == version,
    "scorer_inputs": list(scorer.feature_names), "p": p.tolist(),
    "reference": cand.metadata["feature_reference"][NEW],
}))
'''


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the consumers derive from the contracts with one attribute added to contracts/attributes.py."""
    root = tmp_path_factory.mktemp("lender")
    shutil.copytree(REPO_ROOT / "contracts", root / "contracts", ignore=shutil.ignore_patterns("__pycache__"))
    with (root / "contracts" / "attributes.py").open("a") as f:
        f.write(DECLARATION)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT)])}
    out = subprocess.run([sys.executable, "-c", PROBE, NEW, str(root / "registry")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_declared_attribute_reaches_the_lake_serving_and_warehouse_tables(extended: dict) -> None:
    assert extended["raw_ddl"].endswith(f"`{NEW}` INT")
    assert extended["scores_ddl"].endswith(f"`{NEW}` DOUBLE")
    assert f"ADD COLUMN IF NOT EXISTS {NEW} DOUBLE PRECISION" in extended["active_ddl"]
    assert f'"{NEW.upper()}" NUMBER(10,0)' in extended["warehouse"]


def test_one_declared_attribute_reaches_validation_the_job_and_the_api(extended: dict) -> None:
    spec = {f["name"]: f for f in json.loads(extended["spec"])["fields"]}
    assert spec[NEW]["nullable"] and (spec[NEW]["type"], spec[NEW]["maximum"]) == ("int", 1200)
    assert f"CAST(`{NEW}` AS DOUBLE) AS `{NEW}`" in extended["attribute_features"]
    assert f"`{NEW}`" in extended["score_call"], "the stream's score_loan call (udfs/flink_udf.py takes FEATURE_NAMES)"
    assert NEW in extended["api"]


def test_one_declared_attribute_is_a_feature_a_trained_model_takes_and_the_scorer_scores(extended: dict) -> None:
    assert NEW in extended["feature_names"] and extended["direction"] == [-1]
    assert NEW in extended["model_inputs"], "the model trained on a file with the column does not declare it"
    assert extended["registered"] and NEW in extended["scorer_inputs"]
    few_months, many_months, missing = extended["p"]
    assert few_months > many_months, "the attribute carries the label's signal: the model must use it"
    assert min(few_months, many_months) < missing < max(few_months, many_months), \
        "a missing value takes the training mean, between the two"


def test_the_shipped_attributes_are_optional_fields_of_the_application() -> None:
    names = [a.name for a in APPLICATION_ATTRIBUTES]
    assert LOAN_APPLICATION.names[-len(names):] == names
    assert all(LOAN_APPLICATION.field(n).nullable for n in names)
    assert ATTRIBUTE_FEATURE_NAMES == [a.name for a in APPLICATION_ATTRIBUTES if not a.pii]
    assert set(ATTRIBUTE_FEATURE_NAMES) <= set(FEATURE_NAMES)


def application(**extra: object) -> dict:
    """A valid loan_application without attributes, plus ``extra``."""
    from ingestion.generator import GeneratorConfig, generate
    first = next(m for m in generate(GeneratorConfig(seed=1, customers=3)) if m.kind == "loan_application")
    return {**json.loads(first.value_bytes), **extra}


def test_an_application_without_attributes_is_valid_and_its_attribute_features_are_missing() -> None:
    app = application()
    assert validate_event(app, LOAN_APPLICATION) is None
    values = application_feature_values(app)
    assert all(math.isnan(values[n]) for n in ATTRIBUTE_FEATURE_NAMES)


def test_an_attribute_outside_its_bounds_or_of_the_wrong_type_is_refused() -> None:
    assert validate_event(application(open_credit_lines=-1), LOAN_APPLICATION) == "range:open_credit_lines"
    assert validate_event(application(tax_liens=1.5), LOAN_APPLICATION) == "type:tax_liens"
    assert validate_event(application(open_credit_lines=7, tax_liens=0), LOAN_APPLICATION) is None
    assert application_feature_values(application(open_credit_lines=7))["open_credit_lines"] == 7.0


def test_a_non_pii_attribute_must_be_a_number_and_a_pii_one_has_no_direction() -> None:
    with pytest.raises(ValueError, match="must be one of int, long, double"):
        Attribute("home_ownership", "string", "Rent, own or mortgage.")
    with pytest.raises(ValueError, match="no direction"):
        Attribute("national_id_digits", "long", "Digits of a national id.", pii=True, direction=1)
    assert not Attribute("national_id", "string", "A national id.", pii=True).is_feature


def test_a_file_with_attribute_columns_trains_on_them_and_refuses_bad_values() -> None:
    from models.errors import DatasetError
    apps = toy_applications(300, seed=2).assign(open_credit_lines=7, tax_liens=None)
    ts = from_applications(apps, "file")
    assert "open_credit_lines" in ts.feature_names
    assert "tax_liens" not in ts.feature_names, "an attribute no row carries is left out"
    with pytest.raises(DatasetError, match="open_credit_lines"):
        from_applications(apps.assign(open_credit_lines=-3), "file")
    with pytest.raises(DatasetError, match="open_credit_lines"):
        from_applications(apps.assign(open_credit_lines="many"), "file")


def test_the_lake_migration_adds_a_new_attribute_column_to_a_table_on_disk(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, StringType

    from loanrisk.lake import add_missing_columns
    from loanrisk.settings import Settings
    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    settings = Settings()
    cat.create_namespace(settings.catalog.namespace)
    name = f"{settings.catalog.namespace}.raw_loan_applications"
    cat.create_table(name, Schema(NestedField(1, "event_id", StringType(), required=False)))
    added = add_missing_columns(settings, cat)
    assert added == {"raw_loan_applications": [a.name for a in APPLICATION_ATTRIBUTES]}
    assert [f.name for f in cat.load_table(name).schema().fields][-len(APPLICATION_ATTRIBUTES):] == \
        [a.name for a in APPLICATION_ATTRIBUTES]
    assert add_missing_columns(settings, cat) == {}, "a second run adds nothing"


def test_a_model_with_attributes_imputes_a_missing_value_as_its_scorer_does() -> None:
    """The ONNX model's own imputer and the scorer's reference fill give the same probability."""
    from models.export import export_onnx, onnx_proba, session
    from models.train import DEFAULTS, feature_reference, final_estimator
    apps = toy_applications(600, seed=3)
    apps["open_credit_lines"] = [None if i % 4 == 0 else i % 30 for i in range(len(apps))]
    ts = from_applications(apps, "file")
    est = final_estimator("logistic_regression", DEFAULTS["logistic_regression"]).fit(
        ts.matrix().astype(np.float64), ts.label)
    sess = session(export_onnx(est, ts.feature_names))
    X = ts.matrix()
    ref = feature_reference(ts)
    filled = np.where(np.isnan(X), np.array([ref[n] for n in ts.feature_names], dtype=np.float32), X)
    assert np.isnan(X).any()
    np.testing.assert_allclose(onnx_proba(sess, X), onnx_proba(sess, filled), atol=1e-6)
    np.testing.assert_allclose(onnx_proba(sess, X), est.predict_proba(pd.DataFrame(X).to_numpy())[:, 1], atol=1e-5)


def test_a_model_taking_an_attribute_is_evaluated_on_rows_that_lack_it() -> None:
    """A champion trained with an attribute, compared on data without it (e.g. the lake's synthetic traffic): the
    rows offer the attribute as missing and the model takes its training mean."""
    from models.pipeline import evaluate_version, train_candidate
    with_it = toy_applications(900, seed=6, months=3).assign(open_credit_lines=[i % 25 for i in range(900)])
    cand = train_candidate(from_applications(with_it, "file"), ["logistic_regression"], budget=1, n_repeats=1,
                           threshold=0.5)
    assert "open_credit_lines" in cand.metadata["feature_names"]
    without = from_applications(toy_applications(900, seed=7, months=3), "file")
    assert "open_credit_lines" not in without.feature_names
    result = evaluate_version(cand.model_bytes, cand.metadata, without, threshold=0.5)
    assert 0 < result.metrics["model"]["roc_auc"] <= 1


def test_the_lake_migration_adds_the_scores_role_in_front_of_the_attribute_columns_already_on_disk(
        tmp_path: Path) -> None:
    """The job writes by position: a column declared before the attributes must land there on an existing table."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import DateType, DoubleType, NestedField, StringType

    from contracts.tables import SCORES
    from loanrisk.lake import add_missing_columns
    from loanrisk.settings import Settings
    cat = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    settings = Settings()
    cat.create_namespace(settings.catalog.namespace)
    on_disk = [c for c in SCORES.columns if c.name != "role"]  # a table made before the role column
    types = {"string": StringType, "date": DateType}
    fields = [NestedField(i + 1, c.name, types.get(c.type, DoubleType)(), required=False) for i, c in enumerate(on_disk)]
    name = f"{settings.catalog.namespace}.scores"
    cat.create_table(name, Schema(*fields))
    assert add_missing_columns(settings, cat) == {"scores": ["role"]}
    assert [f.name for f in cat.load_table(name).schema().fields] == SCORES.names
