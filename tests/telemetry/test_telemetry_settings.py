"""`[telemetry]` and the standard OTEL_* variables; telemetry off is the default and costs nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from service import telemetry
from service.app import create_app
from service.errors import ConfigurationError
from service.http.tracing import client_trace_configs, trace_request
from service.settings import Settings, describe, load_settings
from service.typedefs import TELEMETRY
from tests.support.serve_process import ROOT, clean_env, free_port


def settings(toml: str = "", environ: dict[str, str] | None = None) -> Settings:
    return load_settings(toml, environ or {}, base_dir=Path.cwd())


def problems(toml: str = "", environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigurationError) as e:
        settings(toml, environ)
    return e.value.problems


def test_telemetry_is_off_unless_an_exporter_is_configured():
    t = settings().telemetry
    assert (t.enabled, t.otlp_endpoint, t.service_name, t.sample_ratio) == (False, "", "tokenbroker", 1.0)


def test_the_otlp_endpoint_is_the_collector_base_and_traces_go_to_v1_traces():
    t = settings('[telemetry]\notlp_endpoint = "http://collector:4318/"\nsample_ratio = 0.25\n').telemetry
    assert (t.enabled, t.traces_endpoint, t.sample_ratio) == (True, "http://collector:4318/v1/traces", 0.25)


def test_the_standard_otel_variables_fill_in_what_the_file_does_not_say():
    t = settings("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:4318", "OTEL_SERVICE_NAME": "broker-eu",
                      "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
                      "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret", "OTEL_RESOURCE_ATTRIBUTES": "region=eu"}
                 ).telemetry
    assert (t.traces_endpoint, t.service_name, t.sample_ratio) == ("https://otel.example:4318/v1/traces",
                                                                   "broker-eu", 0.1)
    assert t.otlp_headers.reveal() == "api-key=s3cret" and t.resource_attributes == "region=eu"
    assert "s3cret" not in str(describe(settings("", {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret"})))
    full = settings("", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otel.example/custom/traces"}).telemetry
    assert full.traces_endpoint == "https://otel.example/custom/traces"


def test_the_file_and_tokenbroker_variables_win_over_otel_variables():
    t = settings('[telemetry]\notlp_endpoint = "http://mine:4318"\nservice_name = "mine"\n',
                 {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://theirs:4318", "OTEL_SERVICE_NAME": "theirs",
                  "TOKENBROKER_TELEMETRY__SAMPLE_RATIO": "0.5", "OTEL_TRACES_SAMPLER": "always_off"}).telemetry
    assert (t.traces_endpoint, t.service_name, t.sample_ratio) == ("http://mine:4318/v1/traces", "mine", 0.5)


def test_otel_sdk_disabled_and_always_off_are_honoured():
    assert not settings('[telemetry]\notlp_endpoint = "http://c:4318"\n', {"OTEL_SDK_DISABLED": "true"}
                        ).telemetry.enabled
    assert settings("", {"OTEL_TRACES_SAMPLER": "always_off"}).telemetry.sample_ratio == 0.0


def test_the_application_insights_connection_string_turns_on_the_azure_monitor_exporter():
    t = settings("", {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
                 ).telemetry
    assert t.enabled and not t.traces_endpoint
    assert "InstrumentationKey" not in str(describe(settings(
        "", {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"})))


@pytest.mark.parametrize(("toml", "environ", "key"), [
    ('[telemetry]\nsample_ratio = 1.5\n', {}, "telemetry.sample_ratio"),
    ('[telemetry]\nsample_ratio = "half"\n', {}, "telemetry.sample_ratio"),
    ('[telemetry]\notlp_endpoint = "collector:4318"\n', {}, "telemetry.otlp_endpoint"),
    ('[telemetry]\nservice_name = ""\n', {}, "telemetry.service_name"),
    ('[telemetry]\nexporter = "jaeger"\n', {}, "telemetry.exporter"),
    ("", {"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
    ("", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
])
def test_bad_telemetry_settings_are_named(toml, environ, key):
    assert any(p.startswith(f"{key}:") for p in problems(toml, environ))


def test_with_telemetry_off_nothing_is_installed_and_the_helpers_are_free():
    app = create_app(settings())
    assert trace_request not in app.middlewares
    assert client_trace_configs(app) == [] and TELEMETRY not in app
    assert telemetry.span("x", a=1) is telemetry.NOOP_SPAN
    coroutine = asyncio.sleep(0)
    assert telemetry.traced("x", coroutine) is coroutine
    coroutine.close()
    assert not telemetry.tracing_active()


def test_with_telemetry_on_the_tracing_middleware_is_outermost():
    app = create_app(settings('[telemetry]\notlp_endpoint = "http://127.0.0.1:4318"\n'))
    assert app.middlewares[0] is trace_request


BLOCK_OTEL = ("import sys; sys.modules['opentelemetry'] = None; sys.modules['azure.monitor'] = None; "
              "import runpy; runpy.run_module('service', run_name='__main__')")


def _without_otel(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_OTEL, *args], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_without_the_telemetry_extra_the_broker_serves_and_asking_for_traces_is_a_config_error(tmp_path):
    port = free_port()
    config = tmp_path / "broker.toml"
    config.write_text(f'[server]\nport = {port}\n[issuer]\nkeys_dir = "{tmp_path / "keys"}"\n')
    check = _without_otel("check-config", "--config", str(config))
    assert (check.returncode, check.stdout.strip()) == (0, "ok"), check.stderr
    proc = subprocess.Popen([sys.executable, "-c", BLOCK_OTEL, "serve", "--config", str(config)], cwd=ROOT,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if '"server.started"' in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert json.loads(resp.read())["name"] == "tokenbroker"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == 0

    config.write_text(config.read_text() + '[telemetry]\notlp_endpoint = "http://127.0.0.1:4318"\n')
    refused = _without_otel("check-config", "--config", str(config))
    assert refused.returncode == 2
    assert "telemetry.otlp_endpoint: needs the telemetry extra" in refused.stderr


def test_dev_trace_without_the_telemetry_extra_says_what_to_install(tmp_path):
    result = _without_otel("dev", "--trace", "--port", str(free_port()), "--state-dir", str(tmp_path / "dev"))
    assert result.returncode == 2
    assert "--trace needs the telemetry extra" in result.stderr
