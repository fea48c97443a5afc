"""`riskctl k8s render`: the risk job's manifests for the Flink Kubernetes Operator (docs/KUBERNETES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from jobs.params import RISK_JOB_NAME
from loanrisk.errors import LoanRiskError
from loanrisk.settings import get_settings


@click.group("k8s")
def k8s() -> None:
    """Kubernetes manifests of the risk job (Flink Kubernetes Operator)."""


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the ConfigMap's parameter file) as literal blocks, readable in a review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _str)


def to_yaml(obj: dict[str, Any]) -> str:
    """One Kubernetes object as a YAML document, keys in the order they were built."""
    return yaml.dump(obj, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=120)


@k8s.command("render")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the manifests to (default: <stack.state_dir>/k8s).")
@click.option("--image", default=None, metavar="IMAGE",
              help="The image built from docker/flink.Dockerfile, REPOSITORY:TAG (default: loanrisk/flink:<Flink>).")
@click.option("--from-savepoint", "savepoint", default=None, metavar="PATH",
              help="Savepoint the job starts from when first deployed (spec.job.initialSavepointPath).")
def render_cmd(out_dir: Path | None, image: str | None, savepoint: str | None) -> None:
    """Write the FlinkDeployment, its parameter ConfigMap and, for a pod role, its ServiceAccount as YAML, one file
    per object; list the Secrets they read (their values are never written)."""
    from jobs.kubernetes import (check_image, default_image, expected_secrets, manifests, service_account_note,
                                 unreachable_endpoints)
    settings = get_settings()
    try:
        objects = manifests(settings, check_image(image or default_image()), RISK_JOB_NAME, savepoint)
    except LoanRiskError as exc:
        raise click.ClickException(str(exc)) from None
    out_dir = out_dir or settings.state_dir / "k8s"
    out_dir.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        path = out_dir / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(to_yaml(obj))
        click.echo(f"wrote {path}")
    click.echo("Secrets it reads (create them first, docs/KUBERNETES.md):")
    for ref in expected_secrets(settings):
        click.echo(f"  {ref.name:<22} key {ref.key:<18} {ref.holds}")
    click.echo(f"Pods run as service account {service_account_note(settings, RISK_JOB_NAME)}")
    for line in unreachable_endpoints(settings):
        click.echo(f"warning: {line}", err=True)
