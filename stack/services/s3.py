"""The S3-compatible endpoint: s3proxy with its filesystem backend, so the lake survives restarts."""

from __future__ import annotations

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

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.s3.port}

    def prepare(self) -> None:
        s3 = self.settings.s3
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        conf = self.home / "s3proxy.conf"
        conf.write_text("\n".join([
            f"s3proxy.endpoint=http://127.0.0.1:{s3.port}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={s3.access_key_id}",
            f"s3proxy.credential={s3.secret()}",
            "jclouds.provider=filesystem",
            f"jclouds.filesystem.basedir={self.home / 'data'}",
            "",
        ]))
        conf.chmod(0o600)
        (self.home / "logback.xml").write_text(LOGBACK)

    def command(self) -> list[str]:
        return [java_bin(), "-Xms128m", "-Xmx512m", "-cp", str(self.settings.install_dir / "jars" / "s3proxy" / "*"),
                f"-Dlog4j.configurationFile={self.home}/none", f"-Dlogback.configurationFile={self.home / 'logback.xml'}",
                "org.gaul.s3proxy.Main",
                "--properties", str(self.home / "s3proxy.conf")]

    def client(self):
        """A boto3 S3 client for this endpoint."""
        from loanrisk.objectstore import s3_client
        return s3_client(self.settings.s3, attempts=2)

    def healthy(self) -> bool:
        if not tcp_ready("127.0.0.1", self.settings.s3.port):
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
