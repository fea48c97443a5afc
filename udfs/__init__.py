"""Python UDFs that run inside Flink (Flink runtime environment: numpy, pandas, onnxruntime only)."""

# The repository folders the UDFs import, shipped to the Flink workers (python.files / -pyfs): the Flink
# environment has no copy of the repository. contracts/ is stdlib-only, so it is safe there; a unit test
# imports udfs.flink_udf in the Flink environment from these folders alone and checks none is missing or spare.
WORKER_PACKAGES: tuple[str, ...] = ("udfs", "contracts")
