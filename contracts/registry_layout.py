"""The model registry layout, shared by models/ (writer) and udfs/ (reader); see docs/REGISTRY.md.

    <root>/versions/<version>/model.onnx      the ONNX model (float input "features" [N, k],
                                              output "probabilities" [N, 2], no ZipMap)
    <root>/versions/<version>/metadata.json   version, feature_names, feature_schema_hash, metrics,
                                              params, training snapshot ids, code version, created_at,
                                              model_sha256 and model_size_bytes of model.onnx
    <root>/champion.json                      {"version": ..., "promoted_at": ..., "previous": ...,
                                              "history": [earlier champions, oldest first],
                                              "model_sha256": ..., "model_size_bytes": ..., ...}
    <root>/champion_history.json              {"champions": [history..., version], "updated_at": ...}
    <root>/challengers.json                   {"challengers": [{"version": ..., "model_sha256": ...,
                                              "model_size_bytes": ..., "since": ...}, ...], "updated_at": ...}

<root> is ``s3://<bucket>/models`` on the object store or a local folder. Versions are
``v0001``, ``v0002``, ... in registration order. The pointer is written after the version's files,
in one PUT, so a reader never sees a champion whose files are incomplete. The champion history is
the pointer's champions copied right after the pointer is written: a worker that cannot read the
pointer still knows the earlier champions without writing anything (docs/REGISTRY.md).

The challengers are the versions the stream scores in shadow beside the champion (at most
``MAX_CHALLENGERS``): their scores go to the lake's scores table only. Each entry pins its model file's
digest as the champion pointer does; the file is rewritten whole in one PUT.

A reader checks the model file it downloaded against the SHA-256 the pointer records (for an earlier
champion, its metadata.json) and reads no registry file past a size cap; versions registered before
digests were recorded carry none and are loaded unchecked, with a warning.
"""

import hashlib

VERSIONS_PREFIX = "versions"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion.json"
CHAMPION_HISTORY_FILE = "champion_history.json"
CHALLENGERS_FILE = "challengers.json"
# Each challenger costs the stream one more model run per scored row, in the one scorer every score waits for.
MAX_CHALLENGERS = 2
ONNX_INPUT = "features"
ONNX_PROBABILITIES = "probabilities"
ONNX_META_FEATURES = "feature_names"
# Recorded by the writer in metadata.json at registration and in champion.json at each promotion or rollback.
MODEL_SHA256 = "model_sha256"  # lowercase hex SHA-256 of the version's model.onnx
MODEL_SIZE = "model_size_bytes"  # its length in bytes
# The largest model file a reader downloads (the default of the setting and job parameter model.max_model_bytes).
DEFAULT_MAX_MODEL_BYTES = 64 * 1024 * 1024


def model_digest(model_bytes: bytes) -> str:
    """The digest recorded as ``MODEL_SHA256``: lowercase hex SHA-256 of the model file's bytes."""
    return hashlib.sha256(model_bytes).hexdigest()


def version_name(n: int) -> str:
    """The n-th version's name (1-based)."""
    return f"v{n:04d}"


def version_path(root: str, version: str, file: str) -> str:
    """Path of ``file`` inside ``version`` under registry ``root``."""
    return f"{root.rstrip('/')}/{VERSIONS_PREFIX}/{version}/{file}"


def champion_path(root: str) -> str:
    """Path of the champion pointer."""
    return f"{root.rstrip('/')}/{CHAMPION_FILE}"


def challengers_path(root: str) -> str:
    """Path of the challengers pointer."""
    return f"{root.rstrip('/')}/{CHALLENGERS_FILE}"


def champion_history_path(root: str) -> str:
    """Path of the champion history."""
    return f"{root.rstrip('/')}/{CHAMPION_HISTORY_FILE}"
