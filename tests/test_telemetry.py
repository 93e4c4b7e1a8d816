"""Telemetry by the SDK: spans and metrics reach an OTLP endpoint; Prometheus serves metrics;
without an endpoint nothing from opentelemetry is even imported."""

from __future__ import annotations

import subprocess
import sys

import httpx

from testbed.agents import AgentSim
from testbed.devserver import free_port
from testbed.helpers import eventually, files_of_type, start_pipeline, worker_env
from testbed.processes import ROOT, started_worker
from tests.otlp_receiver import OtlpReceiver


async def test_spans_and_metrics_arrive_over_otlp(client, server, dirs, tmp_path):
    with OtlpReceiver() as receiver:
        env = worker_env(server, dirs, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         METRICS_INTERVAL="0.5s")
        async with started_worker(env, tmp_path / "worker.log"):
            async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
                handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "otel")
                await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
            await eventually(lambda: "dispatch:prefab_scaffolding" in receiver.spans, 30)
            await eventually(lambda: "activity.dispatched" in receiver.metrics, 30)
        await handle.terminate("done")
    assert any(name.startswith("RunWorkflow:BuildPipelineWorkflow") for name in receiver.spans)
    assert any(name.startswith("RunActivity:dispatch_stage") for name in receiver.spans)
    assert any(name.startswith("temporal_") for name in receiver.metrics)


async def test_prometheus_endpoint_serves_worker_metrics(client, server, dirs, tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    env = worker_env(server, dirs, PROMETHEUS_BIND_ADDRESS=bind)


    async def scrape() -> str | None:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{bind}/metrics")).text
        return text if "activity_dispatched" in text else None

    async with started_worker(env, tmp_path / "worker.log"):
        async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
            handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "prom")
            await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        text = await eventually(scrape, 30, 0.2)
    await handle.terminate("done")
    assert "temporal_worker_task_slots_available" in text or "temporal_request" in text


def test_disabled_telemetry_imports_no_opentelemetry():
    code = ("import sys, worker, observability\n"
            "t = observability.setup_telemetry(None, 'svc')\n"
            "assert not t.enabled and t.interceptors == []\n"
            "with t.dispatch_span('a', 'b'): pass\n"
            "bad = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


async def test_with_both_set_metrics_go_to_prometheus_and_spans_to_otlp(client, server, dirs,
                                                                         tmp_path):
    bind = f"127.0.0.1:{free_port()}"

    async def scrape() -> str | None:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{bind}/metrics")).text
        return text if "activity_dispatched" in text else None

    with OtlpReceiver() as receiver:
        env = worker_env(server, dirs, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         PROMETHEUS_BIND_ADDRESS=bind, METRICS_INTERVAL="0.5s")
        async with started_worker(env, tmp_path / "worker.log"):
            async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
                handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "both")
                await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
            await eventually(lambda: "dispatch:prefab_scaffolding" in receiver.spans, 30)
            assert "activity_dispatched" in await eventually(scrape, 30, 0.2)
        await handle.terminate("done")
    assert not any(name.startswith("temporal_") for name in receiver.metrics)  # not both

