"""What a lake file holds once decoded, for byte scans that compression cannot blind.

Iceberg writes manifests and manifest lists as Avro with compressed blocks (gzip by default, in the
job's writers and in pyiceberg) and data files as Parquet with compressed pages: a scan of the raw
bytes sees a value only where it happens to sit uncompressed (a Parquet footer's min and max), and
would call a manifest clean that holds a customer id in its column bounds. Avro blocks are read and
decompressed with pyiceberg's own decoder and codecs.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

AVRO_MAGIC = b"Obj\x01"
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"


def decoded(data: bytes) -> Iterator[bytes]:
    """The file's bytes, then what it holds once decoded: each Avro block decompressed, the text of every string
    or binary value of a Parquet file (one per line), a gzip file's content."""
    yield data
    if data.startswith(AVRO_MAGIC):
        yield from avro_blocks(data)
    elif data.startswith(PARQUET_MAGIC) and data.endswith(PARQUET_MAGIC):
        yield parquet_text(data)
    elif data.startswith(GZIP_MAGIC):
        yield gzip.decompress(data)


def avro_blocks(data: bytes) -> Iterator[bytes]:
    """Every data block of an Avro object container file, decompressed with the codec its header names."""
    from pyiceberg.avro.decoder import new_decoder
    from pyiceberg.avro.file import META_SCHEMA, SYNC_SIZE, AvroFileHeader
    from pyiceberg.avro.resolver import construct_reader
    decoder = new_decoder(data)
    header = construct_reader(META_SCHEMA, {-1: AvroFileHeader}).read(decoder)
    codec = header.compression_codec()
    while decoder.tell() < len(data):
        decoder.read_int()  # the block's record count
        block = decoder.read_bytes()
        yield codec.decompress(block) if codec else block
        if decoder.read(SYNC_SIZE) != header.sync:
            raise ValueError("not an Avro block boundary: the file is damaged")


def parquet_text(data: bytes) -> bytes:
    """Every string and binary value of a Parquet file, one per line."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(pa.BufferReader(data))
    out: list[bytes] = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out += [v.encode() for v in column.to_pylist() if v is not None]
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            out += [v for v in column.to_pylist() if v is not None]
    return b"\n".join(out)


def holds(data: bytes, needle: bytes) -> bool:
    """Whether ``needle`` is in the file's bytes or in anything it holds once decoded."""
    return any(needle in view for view in decoded(data))
