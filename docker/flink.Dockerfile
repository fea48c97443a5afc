# Flink 2.1.3 with the jars pinned in jvm/artifacts.toml and the Flink runtime Python environment
# (requirements/flink.lock), for docker-compose.yml and the Kubernetes deployment (docs/KUBERNETES.md), which
# also runs the job's code from it.
FROM flink:2.1.3-scala_2.12-java17
USER root
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip maven curl \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/flink.lock /tmp/flink.lock
RUN python3 -m venv /opt/flink-python && /opt/flink-python/bin/pip install -q -r /tmp/flink.lock
COPY jvm/artifacts.toml /tmp/artifacts.toml
COPY docker/fetch-jars.sh /tmp/fetch-jars.sh
RUN /tmp/fetch-jars.sh /tmp/artifacts.toml /opt/flink/lib \
    && mkdir -p /opt/flink/plugins/metrics-prometheus \
    && cp /opt/flink/opt/flink-metrics-prometheus-*.jar /opt/flink/plugins/metrics-prometheus/ || true
# loan-risk's Java SQL functions (parse_event, event_time_of), built against the pinned Flink.
COPY jvm/functions /tmp/functions
RUN mvn -B -q -f /tmp/functions/pom.xml -Dflink.version=2.1.3 package \
    && cp /tmp/functions/target/loanrisk-flink-functions.jar /opt/flink/lib/ && rm -rf /tmp/functions /root/.m2
ENV PYFLINK_CLIENT_EXECUTABLE=/opt/flink-python/bin/python
RUN echo "python.executable: /opt/flink-python/bin/python" >> /opt/flink/conf/config.yaml \
    && echo "python.client.executable: /opt/flink-python/bin/python" >> /opt/flink/conf/config.yaml
# Checkpoints, savepoints and HA metadata on S3 (Flink loads a file system only from a plugins/ folder of its
# own). The distribution's own build, in opt/, matches the image's Flink.
RUN mkdir -p /opt/flink/plugins/s3-fs-hadoop \
    && cp /opt/flink/opt/flink-s3-fs-hadoop-*.jar /opt/flink/plugins/s3-fs-hadoop/
# The job's code, last so a code change rebuilds only these layers. jobs/kubernetes.py names these paths; the
# UDF workers import contracts/ (udfs.WORKER_PACKAGES).
COPY jobs /opt/loanrisk/jobs
COPY sql /opt/loanrisk/sql
COPY udfs /opt/loanrisk/udfs
COPY contracts /opt/loanrisk/contracts
USER flink
