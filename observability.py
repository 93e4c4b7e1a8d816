"""Opt-in telemetry: SDK tracing interceptor, SDK runtime metrics, our dispatch span and counter."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    OpenTelemetryConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

log = logging.getLogger("observability")


class Telemetry:
    """Holds the runtime, interceptors and instruments; every method is cheap when disabled."""

    def __init__(self, runtime: Runtime | None = None, interceptors: list[Any] | None = None,
                 tracer: Any = None, provider: Any = None,
                 counter_name: str = "activity.dispatched") -> None:
        self.runtime = runtime
        self.interceptors = interceptors or []
        self._tracer = tracer
        self._provider = provider
        self._counter = (
            runtime.metric_meter.create_counter(counter_name, "Agent task files dispatched", "1")
            if runtime is not None and counter_name else None
        )

    @property
    def enabled(self) -> bool:
        return self._counter is not None

    @contextlib.contextmanager
    def dispatch_span(self, activity: str, build: str) -> Iterator[None]:
        """A span around one task-file dispatch, plus the activity.dispatched counter."""
        if self._tracer is None:
            span_cm: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        else:
            span_cm = self._tracer.start_as_current_span(
                f"dispatch:{activity}", attributes={"activity": activity, "build": build})
        with span_cm:
            yield
        if self._counter is not None:
            self._counter.add(1, {"activity": activity, "build": build})

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def core_logging() -> LoggingConfig:
    """Route the SDK core's own (Rust) log lines into our JSON logging instead of stderr."""
    return LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                         forwarding=LogForwardingConfig(logger=logging.getLogger("temporal_core")))


def setup_telemetry(otel_endpoint: str | None, service_name: str,
                    prometheus_bind: str | None = None,
                    metrics_interval: float = 10.0) -> Telemetry:
    """Telemetry per the config; without an endpoint nothing from opentelemetry is imported."""
    if not otel_endpoint and not prometheus_bind:
        return Telemetry(runtime=Runtime(telemetry=TelemetryConfig(logging=core_logging())),
                         counter_name="")
    # Prometheus names allow no dots: the same counter is activity_dispatched there.
    counter_name = "activity_dispatched" if prometheus_bind else "activity.dispatched"
    if prometheus_bind:
        metrics: Any = PrometheusConfig(bind_address=prometheus_bind)
    else:
        metrics = OpenTelemetryConfig(url=otel_endpoint or "",
                                      metric_periodicity=timedelta(seconds=metrics_interval))
    runtime = Runtime(telemetry=TelemetryConfig(logging=core_logging(), metrics=metrics,
                                                global_tags={"service_name": service_name}))
    if not otel_endpoint:
        log.info("telemetry_enabled", extra={"prometheus": prometheus_bind})
        return Telemetry(runtime=runtime, counter_name=counter_name)
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    insecure = otel_endpoint.startswith("http://")
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otel_endpoint, insecure=insecure),
                           schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("temporal-build-worker")
    interceptor = TracingInterceptor(tracer, always_create_workflow_spans=True)
    log.info("telemetry_enabled", extra={"otlp_endpoint": otel_endpoint,
                                         "prometheus": prometheus_bind})
    return Telemetry(runtime=runtime, interceptors=[interceptor], tracer=tracer,
                     provider=provider, counter_name=counter_name)
