"""A real Jaeger (v1.75.0's `cmd/jaeger`, in-memory storage) on free loopback ports, so the
telemetry tests read spans back through the query API a user would look at."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from testbed.devserver import free_port, port_answers, provisioned

JAEGER_HINT = ("the telemetry tests need Jaeger v1.75.0: run ./scripts/test.sh (it builds it "
               "with Go) or set JAEGER_BIN")


def jaeger_bin() -> str:
    """The Jaeger binary: JAEGER_BIN, else what scripts/ensure-jaeger.sh builds or finds."""
    return provisioned("JAEGER_BIN", "ensure-jaeger.sh", JAEGER_HINT)


def jaeger_config(otlp_port: int, query_port: int, query_grpc_port: int) -> dict[str, Any]:
    """All-in-one on the given ports only: OTLP/gRPC in, memory storage, the query API out;
    no fixed machine-wide port (its own metrics, traces, sampling, zpages) is used."""
    loopback = "127.0.0.1"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
            # Its own tracing would export to the fixed default OTLP port: off.
            "jaeger_query": {"storage": {"traces": "memstore"}, "enable_tracing": False,
                             "http": {"endpoint": f"{loopback}:{query_port}"},
                             "grpc": {"endpoint": f"{loopback}:{query_grpc_port}"}},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {
            "endpoint": f"{loopback}:{otlp_port}"}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


class Jaeger:
    """One Jaeger process; `start` returns once its OTLP port and query API both answer."""

    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        self.ports = (free_port(), free_port(), free_port())
        self.otlp_port, self.query_port, _ = self.ports
        self.config = base / "jaeger.yaml"
        self.config.write_text(yaml.safe_dump(jaeger_config(*self.ports)))
        self.log = base / "jaeger.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [self.binary, "--config", str(self.config)], stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jaeger exited {self.process.returncode} at start: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            if port_answers(self.otlp_port) and self._query_answers():
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"jaeger did not answer within {timeout:g}s (log: {self.log})")

    def _query_answers(self) -> bool:
        try:
            return httpx.get(f"{self.query_url}/api/v3/services", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass(frozen=True)
class Span:
    """One span as Jaeger's API v3 returns it (OTLP JSON), with its service's name."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    attributes: dict[str, object]


def _value(wrapped: dict[str, Any]) -> object:
    """An OTLP JSON AnyValue's content (`{"stringValue": "x"}` -> "x")."""
    return next(iter(wrapped.values()), None)


def found_traces(query_url: str, service: str, since: datetime) -> dict[str, Any] | None:
    """The API v3 answer for SERVICE's traces started since SINCE; None while there are none
    (Jaeger answers 404 then)."""
    params = {"query.service_name": service,
              "query.start_time_min": since.isoformat(),
              "query.start_time_max": datetime.now(UTC).isoformat(),
              "query.num_traces": "100"}
    response = httpx.get(f"{query_url}/api/v3/traces", params=params, timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def spans_of(answer: dict[str, Any]) -> list[Span]:
    """Every span in an API v3 answer, flattened."""
    spans = []
    for resource in answer["result"].get("resourceSpans", []):
        tags = {a["key"]: _value(a["value"])
                for a in resource.get("resource", {}).get("attributes", [])}
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                spans.append(Span(
                    trace_id=span["traceId"], span_id=span["spanId"],
                    parent_id=span.get("parentSpanId", ""), name=span["name"],
                    service=str(tags.get("service.name", "")),
                    attributes={a["key"]: _value(a["value"])
                                for a in span.get("attributes", [])}))
    return spans


def strings_in(document: object) -> list[str]:
    """Every string anywhere in a JSON document, keys and values alike."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [text for key, value in document.items()
                for text in (key, *strings_in(value))]
    if isinstance(document, list):
        return [text for item in document for text in strings_in(item)]
    return []
