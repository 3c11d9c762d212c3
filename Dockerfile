# syntax=docker/dockerfile:1
# Multi-stage: `runtime` holds only the broker (service/); `dev` adds the emulators and the
# minimal client for compose, the k8s dev overlay and demos. Both run as uid/gid 10001, which
# owns the mount points (/data, /pki, keys) so named volumes start writable for it.
# Linted by hadolint in `make lint`.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN groupadd --system --gid 10001 broker \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin broker \
    && mkdir -p /data /pki /var/lib/tokenbroker/keys \
    && chown 10001:10001 /data /pki /var/lib/tokenbroker/keys

FROM base AS runtime
COPY pyproject.toml README.md ./
COPY service/ service/
# The [speed] and [telemetry] extras (pip only warns about an unknown extra).
RUN pip install "./[speed,telemetry]"
USER 10001:10001
# hadolint ignore=DL3064
ENV TOKENBROKER_CONFIG=/etc/tokenbroker/config.toml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["tokenbroker"]
CMD ["serve", "--host", "0.0.0.0"]

FROM base AS dev
COPY pyproject.toml README.md ./
COPY service/ service/
COPY emulators/ emulators/
COPY minimal_client/ minimal_client/
RUN pip install "./[speed,telemetry]"
USER 10001:10001
ENTRYPOINT ["tokenbroker"]
CMD ["dev", "--state-dir", "/data/dev"]
