"""Builder for `[telemetry]`, with the standard OpenTelemetry environment variables folded in.

The file (and `TOKENBROKER_TELEMETRY__*`) wins; where a key is not set there, the standard
variables fill it in, so a collector sidecar or an Azure deployment configures the broker the
way it configures any OpenTelemetry service:

| variable | becomes |
|---|---|
| `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full traces URL (used as-is) |
| `OTEL_EXPORTER_OTLP_ENDPOINT` | `otlp_endpoint` (traces to `{it}/v1/traces`) |
| `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `OTEL_EXPORTER_OTLP_HEADERS` | headers of the export (a secret) |
| `OTEL_SERVICE_NAME` | `service_name` |
| `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, `parentbased_*`) + `OTEL_TRACES_SAMPLER_ARG` | `sample_ratio` |
| `OTEL_RESOURCE_ATTRIBUTES` | extra resource attributes |
| `OTEL_SDK_DISABLED=true` | tracing off, whatever else says |
| `APPLICATIONINSIGHTS_CONNECTION_STRING` | export to Azure Monitor (Application Insights) too |

Telemetry needs the `telemetry` extra (`pip install 'tokenbroker[telemetry]'`); asking for it
without the packages is a configuration problem naming the key, not a crash at the first request.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from .checks import Checks, url_problem
from .model import Secret, TelemetrySettings
from .schema import SCHEMA, read_table

EXTRA_HINT = "needs the telemetry extra: pip install 'tokenbroker[telemetry]'"
_SAMPLERS = {"always_on": 1.0, "parentbased_always_on": 1.0, "always_off": 0.0,
             "parentbased_always_off": 0.0}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _env_ratio(environ: Mapping[str, str], c: Checks) -> float | None:
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not sampler:
        return None
    if sampler in _SAMPLERS:
        return _SAMPLERS[sampler]
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
        try:
            return float(arg)
        except ValueError:
            c.add("OTEL_TRACES_SAMPLER_ARG", f"must be a number between 0 and 1 (got {arg[:20]!r})")
            return None
    c.add("OTEL_TRACES_SAMPLER", f"unsupported sampler {sampler[:40]!r} (always_on, always_off, "
          "traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)")
    return None


def build_telemetry(raw: Any, environ: Mapping[str, str], c: Checks) -> TelemetrySettings:
    raw = raw or {}
    v = read_table(raw, SCHEMA["telemetry"], "telemetry", c.problems, c.sources)
    endpoint, traces = v["otlp_endpoint"].strip(), ""
    if endpoint:
        problem = url_problem(endpoint, allow_http=True)
        if problem:
            c.add("telemetry.otlp_endpoint", f"URL {problem}")
    elif environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        traces = environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = environ["OTEL_EXPORTER_OTLP_ENDPOINT"].strip()
    if "service_name" not in raw and environ.get("OTEL_SERVICE_NAME", "").strip():
        v["service_name"] = environ["OTEL_SERVICE_NAME"].strip()
    if not v["service_name"].strip():
        c.add("telemetry.service_name", "must not be empty")
    ratio = float(v["sample_ratio"])
    if "sample_ratio" not in raw and environ.get("OTEL_TRACES_SAMPLER"):
        from_env = _env_ratio(environ, c)
        ratio = ratio if from_env is None else from_env
    if not 0.0 <= ratio <= 1.0:
        c.add("telemetry.sample_ratio", f"must be between 0 and 1 (got {ratio})")
    connection = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        endpoint, traces, connection = "", "", ""
    settings = TelemetrySettings(
        otlp_endpoint=endpoint.rstrip("/"), service_name=v["service_name"].strip(), sample_ratio=ratio,
        traces_endpoint=traces,
        otlp_headers=Secret(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                            or environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
        azure_monitor_connection_string=Secret(connection),
        resource_attributes=environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if settings.traces_endpoint and not _installed("opentelemetry.exporter.otlp.proto.http"):
        c.add("telemetry.otlp_endpoint", EXTRA_HINT)
    if connection and not _installed("azure.monitor.opentelemetry.exporter"):
        c.add("APPLICATIONINSIGHTS_CONNECTION_STRING", EXTRA_HINT)
    return settings
