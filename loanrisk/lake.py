"""The one way platform code opens the Iceberg catalog (pyiceberg SqlCatalog on the JDBC catalog tables)."""

from __future__ import annotations

import os

from loanrisk.settings import Settings

# pyarrow's AWS SDK sends checksum headers that some S3-compatible servers (s3proxy) reject on
# multipart uploads; only send them when the operation requires it (AWS S3 is unaffected).
_CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                 "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def catalog(settings: Settings):  # noqa: ANN201 - pyiceberg SqlCatalog
    """The lake's catalog, named as in Flink (the name is stored in every catalog row)."""
    for key, value in _CHECKSUM_ENV.items():
        os.environ.setdefault(key, value)
    from pyiceberg.catalog.sql import SqlCatalog
    return SqlCatalog(settings.catalog.name, **settings.iceberg_catalog_properties())
