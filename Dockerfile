# syntax=docker/dockerfile:1
# Multi-stage: `runtime` holds only the broker (service/); `dev` adds the emulators and the
# minimal client for compose and demos.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

FROM base AS runtime
COPY pyproject.toml README.md ./
COPY service/ service/
RUN pip install '.[speed]' && useradd --system --uid 10001 broker && mkdir -p /data && chown broker /data
USER broker
ENV TOKENBROKER_CONFIG=/etc/tokenbroker/config.toml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["tokenbroker"]
CMD ["serve", "--host", "0.0.0.0"]

FROM base AS dev
COPY pyproject.toml README.md ./
COPY service/ service/
COPY emulators/ emulators/
COPY minimal_client/ minimal_client/
RUN pip install . && useradd --system --uid 10001 broker && mkdir -p /data && chown broker /data
USER broker
ENTRYPOINT ["tokenbroker"]
CMD ["dev", "--state-dir", "/data/dev"]
