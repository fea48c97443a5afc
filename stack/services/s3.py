"""The S3-compatible endpoints: s3proxy with its filesystem backend, so the lake survives restarts, and a read-only
second process over the same files for the model registry's readers."""

from __future__ import annotations

from pathlib import Path

from loanrisk.settings import S3Settings
from stack.java import java_bin
from stack.process import tcp_ready
from stack.services.base import Service


# s3proxy logs through logback, whose default is DEBUG for every request (gigabytes a day): warnings only.
LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class S3Endpoint(Service):
    """s3proxy serving the warehouse bucket from .loanrisk/s3/data."""

    name = "s3"
    # Heap of the process: the lake's writes and reads go through this one.
    heap = ("-Xms128m", "-Xmx512m")

    @property
    def s3(self) -> S3Settings:
        """The S3 settings of this endpoint's clients: its port, its identity and secret key."""
        return self.settings.s3

    @property
    def data_dir(self) -> Path:
        """The filesystem backend's base folder: one bucket per subfolder."""
        return self.state / S3Endpoint.name / "data"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.s3.port}

    def properties(self) -> list[str]:
        """s3proxy's configuration: loopback only, signed requests only, the filesystem backend."""
        return [f"s3proxy.endpoint=http://127.0.0.1:{self.s3.port}",
                "s3proxy.authorization=aws-v2-or-v4",
                f"s3proxy.identity={self.s3.access_key_id}",
                f"s3proxy.credential={self.s3.secret()}",
                "jclouds.provider=filesystem",
                f"jclouds.filesystem.basedir={self.data_dir}"]

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "s3proxy.conf"
        conf.write_text("\n".join([*self.properties(), ""]))
        conf.chmod(0o600)
        (self.home / "logback.xml").write_text(LOGBACK)

    def command(self) -> list[str]:
        return [java_bin(), *self.heap, "-cp", str(self.settings.install_dir / "jars" / "s3proxy" / "*"),
                f"-Dlog4j.configurationFile={self.home}/none", f"-Dlogback.configurationFile={self.home / 'logback.xml'}",
                "org.gaul.s3proxy.Main",
                "--properties", str(self.home / "s3proxy.conf")]

    def client(self):
        """A boto3 S3 client for this endpoint."""
        from loanrisk.objectstore import s3_client
        return s3_client(self.s3, attempts=2)

    def healthy(self) -> bool:
        if not tcp_ready("127.0.0.1", self.s3.port):
            return False
        try:
            self.client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - any client error means "not yet"
            return False

    def after_start(self) -> None:
        client = self.client()
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if self.settings.s3.bucket not in names:
            client.create_bucket(Bucket=self.settings.s3.bucket)


class S3ReadOnlyEndpoint(S3Endpoint):
    """The model registry readers' endpoint (s3.reader): a second s3proxy over the same files, with its own identity
    and secret key, that refuses every write.

    s3proxy's read-only backend answers 501 to what would change a byte or a bucket (PUT, DELETE, multi-object
    delete, copy, multipart uploads, bucket creation and deletion); reads, HEADs and listings pass, and so do ACL
    changes, which alter no byte (docs/SECURITY.md, "Read-only registry credentials").
    """

    name = "s3_reader"
    # Registry reads only: a few small JSON files and a model of a few megabytes at a time.
    heap = ("-Xms64m", "-Xmx256m")

    @property
    def s3(self) -> S3Settings:
        return self.settings.s3.for_readers()

    def properties(self) -> list[str]:
        return [*super().properties(), "s3proxy.read-only-blobstore=true"]

    def after_start(self) -> None:
        """Nothing to create: the bucket is the read-write endpoint's."""
