"""The model registry (layout in ``contracts/registry_layout.py``) on S3 via boto3 or in a local folder.

Writer rules: a version number is claimed by creating its ``model.onnx`` only if absent (conditional
PUT / hard link), ``metadata.json`` follows (a version exists once its metadata does), and
``champion.json`` is written last, in one PUT. A model is registered only with a passed ONNX parity
record and a feature list that fits the contract. Promotion needs the challenger to beat the
champion on the same recent holdout by ``settings.model.promotion_margin`` (``force`` skips that
comparison, never the parity and feature checks). ``rollback`` returns to the previous champion.

``champion.json``: {"version", "promoted_at", "previous", "history" (earlier champions, oldest
first), "forced", "comparison", "model_sha256", "model_size_bytes"}. ``champion_history.json``
({"champions": history + [version], "updated_at"}) is rewritten right after each pointer, so a stream
worker that cannot read the pointer still finds the last good champion.

``challengers.json`` ({"challengers": [{"version", "since", "model_sha256", "model_size_bytes"}, ...],
"updated_at"}): the versions the stream scores in shadow beside the champion, at most ``MAX_CHALLENGERS``
(``challenge``, ``withdraw``). A challenger passes the checks a promotion does (parity, features, digest, size
cap) and its entry pins its digest; ``promote`` takes the promoted version off the list.

Model digests: ``register`` records the SHA-256 and size of ``model.onnx`` in ``metadata.json``;
``promote`` and ``rollback`` read the version's file, refuse it when it no longer matches that record
(or exceeds ``settings.model.max_model_bytes``), and copy its digest into the pointer, which the
stream's scorer checks every download against. A version registered before digests has no record: its
file is pinned as it is when it is promoted or rolled back to.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from contracts.registry_layout import (
    MAX_CHALLENGERS, METADATA_FILE, MODEL_FILE, MODEL_SHA256, MODEL_SIZE, VERSIONS_PREFIX, challengers_path,
    champion_history_path, champion_path, model_digest, version_name, version_path,
)
from models.compat import check_model
from models.errors import ChallengeRefused, ParityError, PromotionRefused, RegistryError

_VERSION = re.compile(r"^v(\d{4,})$")


class Store(Protocol):
    """Byte storage addressed by full registry paths."""

    def read(self, path: str) -> bytes: ...

    def write(self, path: str, data: bytes) -> None: ...

    def create(self, path: str, data: bytes) -> None: ...

    def children(self, path: str) -> list[str]: ...


class LocalStore:
    """A folder on disk; each write is atomic (temporary file + rename)."""

    def read(self, path: str) -> bytes:
        """The file's bytes."""
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise KeyError(path) from None

    def write(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def create(self, path: str, data: bytes) -> None:
        """Write ``data`` only if ``path`` does not exist yet (atomic hard link); else FileExistsError."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.link(tmp, p)
        finally:
            os.unlink(tmp)

    def children(self, path: str) -> list[str]:
        """Sub-folder names of ``path``."""
        p = Path(path)
        return sorted(c.name for c in p.iterdir() if c.is_dir()) if p.is_dir() else []


class S3Store:
    """An S3-compatible bucket through boto3."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        """(bucket, key) of ``s3://bucket/key``."""
        bucket, _, key = path.removeprefix("s3://").partition("/")
        return bucket, key

    def read(self, path: str) -> bytes:
        """The object's bytes."""
        bucket, key = self._split(path)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(path) from None

    def write(self, path: str, data: bytes) -> None:
        """One PUT of ``data``."""
        bucket, key = self._split(path)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def create(self, path: str, data: bytes) -> None:
        """A conditional PUT (If-None-Match: *); FileExistsError when the key exists.

        Servers without conditional writes (s3proxy answers NotImplemented) get a HEAD-then-PUT
        instead: correct for one trainer at a time, racy for two at once (stated in docs/MODELS.md).
        """
        bucket, key = self._split(path)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(path) from None
            if code != "NotImplemented":
                raise
            try:
                self.client.head_object(Bucket=bucket, Key=key)
            except self.client.exceptions.ClientError:
                self.client.put_object(Bucket=bucket, Key=key, Body=data)
                return
            raise FileExistsError(path) from None

    def children(self, path: str) -> list[str]:
        """Common prefixes one level below ``path``."""
        bucket, key = self._split(path.rstrip("/") + "/")
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
            names += [cp["Prefix"][len(key):].rstrip("/") for cp in page.get("CommonPrefixes", [])]
        return sorted(names)


def s3_client(s3: Any = None) -> Any:
    """A boto3 S3 client for ``settings.s3`` (endpoint, keys, region, path-style addressing)."""
    from loanrisk.objectstore import s3_client as make_client
    if s3 is None:
        from loanrisk.settings import get_settings
        s3 = get_settings().s3
    return make_client(s3)


def normalize_root(root: str) -> str:
    """``file://`` stripped, a local path made absolute; ``s3://`` kept."""
    if root.startswith("s3://"):
        return root.rstrip("/")
    if root.startswith("file://"):
        root = root[len("file://"):]
    return str(Path(root).expanduser().resolve())


def code_version() -> str:
    """The repository's git revision (with ``-dirty`` when the tree has changes), or ``unknown``."""
    from loanrisk.settings import REPO_ROOT

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def now_iso() -> str:
    """The current UTC time, ISO-8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Registry:
    """Versions, metadata and the champion pointer under one registry root."""

    def __init__(self, root: str, store: Store | None = None) -> None:
        self.root = normalize_root(root)
        if store is not None:
            self.store: Store = store
        elif self.root.startswith("s3://"):
            self.store = S3Store(s3_client())
        else:
            self.store = LocalStore()

    @classmethod
    def from_settings(cls, uri: str | None = None) -> Registry:
        """The registry at ``uri`` or at ``settings.model.registry(settings.s3)``."""
        from loanrisk.settings import get_settings

        s = get_settings()
        root = uri or s.model.registry(s.s3)
        return cls(root, S3Store(s3_client(s.s3)) if root.startswith("s3://") else None)

    # -- reading -----------------------------------------------------------------------------------
    def _read(self, path: str) -> bytes:
        """Bytes at ``path``, with store errors turned into one-line RegistryErrors."""
        try:
            return self.store.read(path)
        except KeyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot read {path}: {type(exc).__name__}: {str(exc)[:200]}") from None

    def versions(self) -> list[str]:
        """Registered versions (those with metadata), oldest first."""
        try:
            names = self.store.children(f"{self.root}/{VERSIONS_PREFIX}")
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot list {self.root}: {type(exc).__name__}: {str(exc)[:200]}") from None
        out = []
        for name in sorted(n for n in names if _VERSION.match(n)):
            try:
                self._read(version_path(self.root, name, METADATA_FILE))
            except KeyError:
                continue  # an interrupted registration: model written, metadata not
            out.append(name)
        return out

    def metadata(self, version: str) -> dict[str, Any]:
        """A version's metadata.json."""
        try:
            return json.loads(self._read(version_path(self.root, version, METADATA_FILE)))
        except KeyError:
            raise RegistryError(f"no version {version} in {self.root} (riskctl model list shows them)") from None

    def model_bytes(self, version: str) -> bytes:
        """A version's model.onnx."""
        try:
            return self._read(version_path(self.root, version, MODEL_FILE))
        except KeyError:
            raise RegistryError(f"version {version} has no {MODEL_FILE} in {self.root}") from None

    def champion(self) -> dict[str, Any] | None:
        """The champion pointer, or None before the first promotion."""
        try:
            pointer = json.loads(self._read(champion_path(self.root)))
        except KeyError:
            return None
        if not isinstance(pointer, dict) or "version" not in pointer:
            raise RegistryError(f"{champion_path(self.root)} is malformed (no version)")
        return pointer

    def challengers(self) -> list[dict[str, Any]]:
        """The challengers pointer's entries, in the order they were set (empty before the first challenger)."""
        try:
            doc = json.loads(self._read(challengers_path(self.root)))
        except KeyError:
            return []
        if not isinstance(doc, dict) or not isinstance(doc.get("challengers"), list):
            raise RegistryError(f"{challengers_path(self.root)} is malformed (no challengers list)")
        return list(doc["challengers"])

    def load(self, version: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """(model.onnx bytes, metadata) of ``version``, or of the champion when None.

        The bytes must match the recorded SHA-256: the pointer's for the champion, else the version's metadata
        (RegistryError on a mismatch; a version registered before digests is returned unchecked).
        """
        pinned = None
        if version is None:
            pointer = self.champion()
            if pointer is None:
                raise RegistryError(f"no champion in {self.root}: promote a version first (riskctl model promote)")
            version, pinned = str(pointer["version"]), pointer.get(MODEL_SHA256)
        meta = self.metadata(version)
        model = self.model_bytes(version)
        problem = _digest_problem(version, model, pinned if pinned is not None else meta.get(MODEL_SHA256))
        if problem:
            raise RegistryError(problem)
        return model, meta

    def list_versions(self) -> list[dict[str, Any]]:
        """One summary per version: version, created_at, family, holdout ROC AUC, parity, champion flag."""
        pointer = self.champion()
        champ = pointer["version"] if pointer else None
        out = []
        for v in self.versions():
            m = self.metadata(v)
            holdout = (m.get("metrics") or {}).get("holdout", {}).get("model", {})
            out.append({"version": v, "created_at": m.get("created_at"), "family": m.get("family"),
                        "training_source": (m.get("training_data") or {}).get("source"),
                        "holdout_roc_auc": holdout.get("roc_auc"), "holdout_brier": holdout.get("brier"),
                        "cv_roc_auc": (m.get("metrics") or {}).get("cv", {}).get("roc_auc_mean"),
                        "parity_passed": bool((m.get("parity") or {}).get("passed")),
                        "model_sha256": m.get(MODEL_SHA256), "champion": v == champ})
        return out

    # -- writing -----------------------------------------------------------------------------------
    def register(self, model_bytes: bytes, metadata: dict[str, Any]) -> str:
        """Store a new version (parity and feature checks first); returns its name."""
        parity = metadata.get("parity") or {}
        if not parity.get("passed"):
            raise ParityError("refusing to register a model without a passed ONNX parity check")
        check_model(model_bytes, metadata)
        try:
            names = self.store.children(f"{self.root}/{VERSIONS_PREFIX}")
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot list {self.root}: {type(exc).__name__}: {str(exc)[:200]}") from None
        existing = [int(m.group(1)) for n in names if (m := _VERSION.match(n))]
        n = max(existing, default=0) + 1
        try:
            for _ in range(50):  # another writer may claim the same number: take the next one
                version = version_name(n)
                try:
                    self.store.create(version_path(self.root, version, MODEL_FILE), model_bytes)
                    break
                except FileExistsError:
                    n += 1
            else:
                raise RegistryError(f"could not claim a version number in {self.root}")
            # The digest is always computed here: metadata copied from another version must not carry its record.
            meta = {**metadata, "version": version, "created_at": metadata.get("created_at") or now_iso(),
                    MODEL_SHA256: model_digest(model_bytes), MODEL_SIZE: len(model_bytes)}
            self.store.write(version_path(self.root, version, METADATA_FILE),
                             json.dumps(meta, indent=2, sort_keys=True, default=_json_default).encode())
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot write a new version to {self.root}: {type(exc).__name__}: "
                                f"{str(exc)[:200]}") from None
        return version

    def _write_pointer(self, pointer: dict[str, Any]) -> None:
        """Write champion.json in one PUT, then champion_history.json from it."""
        try:
            self.store.write(champion_path(self.root), json.dumps(pointer, indent=2, sort_keys=True).encode())
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot write the champion pointer: {type(exc).__name__}: {str(exc)[:200]}") from None
        # Written after the pointer, so the history never names a version that did not become champion.
        history = {"champions": [*pointer["history"], pointer["version"]], "updated_at": pointer["promoted_at"]}
        try:
            self.store.write(champion_history_path(self.root), json.dumps(history, indent=2).encode())
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(
                f"{pointer['version']} is champion, but {champion_history_path(self.root)} was not updated "
                f"({type(exc).__name__}: {str(exc)[:200]}); the next promote or rollback rewrites it") from None

    def _model_record(self, version: str, meta: dict[str, Any],
                      max_model_bytes: int | None) -> tuple[dict[str, Any], bytes]:
        """(the pointer's digest fields, the model) for ``version``: its model.onnx as stored, checked against its
        metadata.

        Refused when the file no longer matches the SHA-256 recorded at registration or is over the scoring
        job's size cap (the job would refuse it). A version registered before digests is pinned as it is now.
        """
        model = self.model_bytes(version)
        problem = _digest_problem(version, model, meta.get(MODEL_SHA256))
        if problem:
            raise PromotionRefused(f"{problem}; register the model again as a new version")
        if max_model_bytes is None:
            from loanrisk.settings import get_settings
            max_model_bytes = get_settings().model.max_model_bytes
        if len(model) > max_model_bytes:
            raise PromotionRefused(f"{version}: {MODEL_FILE} is {len(model)} bytes, over model.max_model_bytes "
                                   f"({max_model_bytes}): the scoring job would refuse it")
        return {MODEL_SHA256: model_digest(model), MODEL_SIZE: len(model)}, model

    def promote(self, version: str, force: bool = False, holdout: Any = None,
                margin: float | None = None, metric: str = "roc_auc",
                max_model_bytes: int | None = None, shadow: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make ``version`` champion if it beats the champion on the same holdout by ``margin`` (or ``force``).

        ``holdout`` (a TrainingSet) re-scores both models through ONNX on the same rows; without it
        the holdout metrics in both metadata files are compared, which requires the same holdout id.
        The pointer records the SHA-256 and size of the version's model file (``force`` skips no check of it).
        ``shadow``: a shadow comparison that decided to promote ``version`` (models/shadow.py): it stands for the
        holdout comparison and is recorded in the pointer.
        """
        meta = self.metadata(version)
        if not (meta.get("parity") or {}).get("passed"):
            raise PromotionRefused(f"{version} has no passed ONNX parity record; it cannot be promoted")
        record, model = self._model_record(version, meta, max_model_bytes)
        check_model(model, meta)
        current = self.champion()
        if current is not None and current["version"] == version:
            raise PromotionRefused(f"{version} is already the champion")
        if margin is None:
            from loanrisk.settings import get_settings
            margin = get_settings().model.promotion_margin
        comparison: dict[str, Any] | None = None
        if shadow is not None:
            if not shadow.get("promote") or shadow.get("challenger") != version:
                raise PromotionRefused(f"{version}: the shadow comparison does not promote it "
                                       f"({shadow.get('reason', 'no decision')})")
            comparison = {"shadow": shadow, "passed": True}
        elif current is not None:
            try:
                comparison = self.compare(version, str(current["version"]), holdout, metric)
            except PromotionRefused as exc:
                if not force:
                    raise
                # Forced: record why no comparison was possible instead of refusing.
                comparison = {"skipped": str(exc)}
            comparison["margin"] = margin
            if "skipped" not in comparison:
                comparison["passed"] = comparison["challenger"] >= comparison["champion"] + margin
            if not comparison.get("passed") and not force:
                raise PromotionRefused(
                    f"{version} {metric} {comparison['challenger']:.4f} does not beat champion {current['version']} "
                    f"{comparison['champion']:.4f} by the margin {margin} on {comparison['holdout']} "
                    "(use --force to override)")
        history = [*(current.get("history") or []), current["version"]] if current else []
        pointer = {"version": version, "promoted_at": now_iso(), "previous": history[-1] if history else None,
                   "history": history, "forced": bool(force), "comparison": comparison, **record}
        self._write_pointer(pointer)
        if any(e.get("version") == version for e in self.challengers()):
            self._write_challengers([e for e in self.challengers() if e.get("version") != version])
        return pointer

    def _write_challengers(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Write challengers.json in one PUT."""
        doc = {"challengers": entries, "updated_at": now_iso()}
        try:
            self.store.write(challengers_path(self.root), json.dumps(doc, indent=2, sort_keys=True).encode())
        except Exception as exc:  # noqa: BLE001 - the store may be S3 or a folder
            raise RegistryError(f"cannot write the challengers pointer: {type(exc).__name__}: "
                                f"{str(exc)[:200]}") from None
        return doc

    def challenge(self, version: str, max_model_bytes: int | None = None) -> dict[str, Any]:
        """Add ``version`` to the shadow challengers (the checks of a promotion, no comparison); returns the pointer.

        The stream picks it up at its next registry poll and writes its scores to the lake beside the champion's.
        """
        meta = self.metadata(version)
        if not (meta.get("parity") or {}).get("passed"):
            raise ChallengeRefused(f"{version} has no passed ONNX parity record; it cannot be a challenger")
        try:
            record, model = self._model_record(version, meta, max_model_bytes)
        except PromotionRefused as exc:
            raise ChallengeRefused(str(exc)) from None
        check_model(model, meta)
        current = self.champion()
        if current is not None and current["version"] == version:
            raise ChallengeRefused(f"{version} is the champion; a challenger is scored beside it")
        entries = self.challengers()
        if any(e.get("version") == version for e in entries):
            raise ChallengeRefused(f"{version} is already a challenger")
        if len(entries) >= MAX_CHALLENGERS:
            raise ChallengeRefused(f"already {len(entries)} challengers ({', '.join(e['version'] for e in entries)}), "
                                   f"the most the stream scores; remove one first (riskctl model withdraw VERSION)")
        return self._write_challengers([*entries, {"version": version, "since": now_iso(), **record}])

    def withdraw(self, version: str) -> dict[str, Any]:
        """Stop scoring ``version`` in shadow; returns the pointer."""
        entries = self.challengers()
        if not any(e.get("version") == version for e in entries):
            known = ", ".join(e.get("version", "?") for e in entries) or "none"
            raise ChallengeRefused(f"{version} is not a challenger (challengers: {known})")
        return self._write_challengers([e for e in entries if e.get("version") != version])

    def compare(self, challenger: str, champion: str, holdout: Any = None, metric: str = "roc_auc") -> dict[str, Any]:
        """Both versions' ``metric`` on the same holdout: re-scored on ``holdout`` or taken from metadata."""
        if holdout is not None:
            from sklearn.metrics import roc_auc_score

            from models.export import onnx_proba, session

            def score(v: str) -> float:
                model, meta = self.load(v)
                rows = holdout.with_every_attribute()  # a version may take an attribute the rows lack
                names = check_model(model, meta, expected=rows.feature_names)
                p = onnx_proba(session(model), rows.features[names].to_numpy(dtype=np.float32))
                return float(roc_auc_score(rows.label, p))

            if metric != "roc_auc":
                raise PromotionRefused("re-scoring on a holdout compares roc_auc only")
            return {"metric": metric, "challenger": score(challenger), "champion": score(champion),
                    "holdout": f"given holdout ({holdout.source}, {holdout.n} loans)"}
        a, b = self.metadata(challenger), self.metadata(champion)
        ha, hb = (a.get("holdout") or {}).get("id"), (b.get("holdout") or {}).get("id")
        if not ha or ha != hb:
            raise PromotionRefused(f"{challenger} and {champion} were not evaluated on the same holdout; pass one "
                                   "(riskctl model promote VERSION --dataset/--file) or use --force")
        try:
            va = float(a["metrics"]["holdout"]["model"][metric])
            vb = float(b["metrics"]["holdout"]["model"][metric])
        except (KeyError, TypeError):
            raise PromotionRefused(f"holdout {metric} missing in metadata of {challenger} or {champion}") from None
        return {"metric": metric, "challenger": va, "champion": vb, "holdout": f"holdout {ha}"}

    def rollback(self, max_model_bytes: int | None = None) -> dict[str, Any]:
        """Make the previous champion the champion again (its model file checked and its digest recorded as by promote)."""
        current = self.champion()
        if current is None:
            raise PromotionRefused("no champion to roll back from")
        history = list(current.get("history") or [])
        if not history:
            raise PromotionRefused(f"{current['version']} has no previous champion to roll back to")
        target = history.pop()
        record, _ = self._model_record(target, self.metadata(target), max_model_bytes)  # the version must still be there
        pointer = {"version": target, "promoted_at": now_iso(), "previous": history[-1] if history else None,
                   "history": history, "forced": False, "comparison": None, "rolled_back_from": current["version"],
                   **record}
        self._write_pointer(pointer)
        return pointer


def _digest_problem(version: str, model_bytes: bytes, expected: Any) -> str | None:
    """Why ``model_bytes`` are not the recorded model (``expected``: a recorded SHA-256, None when none is)."""
    if expected is None:
        return None
    actual = model_digest(model_bytes)
    if str(expected).lower() == actual:
        return None
    return f"{version}: digest mismatch: expected {expected}, got {actual} (SHA-256 of {MODEL_FILE})"


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays in metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
