# The platform's Python services for docker-compose.yml (scoring API, lag exporter, Snowflake endpoint, the
# one-shot init): the platform environment exactly as requirements/platform.lock pins it, then the project.
FROM python:3.11-slim-bookworm
# The lock's packages come as wheels for this platform (confluent-kafka and psycopg bundle their C libraries).
COPY requirements/platform.lock /tmp/platform.lock
RUN pip install --no-cache-dir -r /tmp/platform.lock && rm /tmp/platform.lock
WORKDIR /opt/loanrisk
COPY pyproject.toml README.md ./
COPY loanrisk loanrisk
COPY contracts contracts
COPY ingestion ingestion
COPY jobs jobs
COPY udfs udfs
COPY models models
COPY warehouse warehouse
COPY erasure erasure
COPY prefect_flows prefect_flows
COPY grafana grafana
COPY stack stack
COPY scoring_api scoring_api
COPY riskctl riskctl
COPY sql sql
# `pip install .` gives the riskctl console script; the code reads sql/ beside its packages (REPO_ROOT), which the
# installed copy has not, so the source tree comes first on the path, as the local stack runs its services.
RUN pip install --no-cache-dir --no-deps . && rm -rf build
ENV PYTHONPATH=/opt/loanrisk PYTHONUNBUFFERED=1
# Not root; each service's state (the Snowflake endpoint's database) under /var/lib/loanrisk, a volume.
RUN useradd --system --home-dir /var/lib/loanrisk --create-home loanrisk \
    && mkdir -p /var/lib/loanrisk/snowflake/db && chown -R loanrisk /var/lib/loanrisk
USER loanrisk
ENV LOANRISK_STACK__STATE_DIR=/var/lib/loanrisk LOANRISK_STACK__INSTALL_DIR=/var/lib/loanrisk
CMD ["riskctl", "--help"]
