"""Telemetry by the SDK: spans reach a real Jaeger as its query API shows them, metrics an
OTLP endpoint; Prometheus serves metrics; without an endpoint nothing from opentelemetry is
even imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from testbed.agents import AgentSim, triage_writer
from testbed.devserver import free_port
from testbed.helpers import eventually, files_of_type, start_pipeline, tokens_in, worker_env
from testbed.jaeger import Jaeger, Span, found_traces, spans_of, strings_in
from testbed.processes import ROOT, started_worker
from tests.otlp_receiver import OtlpReceiver

STAGES = ("prefab_scaffolding", "implement_build", "request_security_audit", "close_build")


def spans_when_all_there(jaeger: Jaeger, since: datetime) -> list[Span] | None:
    """The service's spans once Jaeger holds the run's and every stage's (None before)."""
    answer = found_traces(jaeger.query_url, "temporal-build-worker", since)
    spans = spans_of(answer) if answer else []
    names = Counter(span.name for span in spans)
    there = (names["RunWorkflow:BuildPipelineWorkflow"] >= 1
             and names["StartActivity:dispatch_stage"] >= len(STAGES)
             and names["RunActivity:dispatch_stage"] >= len(STAGES)
             and all(names[f"dispatch:{stage}"] for stage in STAGES))
    return spans if there else None


async def test_a_pipelines_spans_as_jaeger_shows_them(client, server, dirs, tmp_path, jaeger):
    """A whole build traced into a real Jaeger, read back through its query API: each stage
    hand-off is one trace (the workflow starts the activity, the worker runs it, the dispatch
    writes the file), in stage order, every span naming the run; no task token anywhere."""
    since = datetime.now(UTC) - timedelta(seconds=5)
    env = worker_env(server, dirs, OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint)
    behaviours = {"security_audit": triage_writer(dirs["audit"], {})}
    async with started_worker(env, tmp_path / "worker.log"):
        async with AgentSim(dirs["tasks"], env, behaviours):
            handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "traced")
            assert (await handle.result()).status == "complete"
        spans = await eventually(
            lambda: asyncio.to_thread(spans_when_all_there, jaeger, since), 30, 0.5)
    by_id = {span.span_id: span for span in spans}
    assert {span.service for span in spans} == {"temporal-build-worker"}
    [run] = [span for span in spans if span.name == "RunWorkflow:BuildPipelineWorkflow"]
    temporal = [span for span in spans if not span.name.startswith("dispatch:")]
    assert {span.attributes["temporalWorkflowID"] for span in temporal} == {handle.id}
    hand_offs = []
    for stage in STAGES:
        [dispatch] = [span for span in spans if span.name == f"dispatch:{stage}"]
        assert dispatch.attributes == {"activity": stage, "build": "traced"}
        ran = by_id.get(dispatch.parent_id)
        started = by_id.get(ran.parent_id) if ran else None
        assert ran and started, f"dispatch:{stage} is not under an activity run and its start"
        assert (ran.name, started.name) == ("RunActivity:dispatch_stage",
                                            "StartActivity:dispatch_stage")
        assert started.parent_id == ""  # the hand-off's trace starts where the workflow asks
        assert [s for s in spans if s.trace_id == dispatch.trace_id] == [
            s for s in spans if s in (started, ran, dispatch)]
        hand_offs.append((int(ran.attributes["temporalActivityID"]), dispatch.trace_id))
    assert len({trace for _, trace in hand_offs} | {run.trace_id}) == len(STAGES) + 1
    assert sorted(hand_offs) == hand_offs  # dispatched in stage order
    for span in spans:  # every activity the run starts is run under its start
        if span.name.startswith("RunActivity:"):
            parent = by_id.get(span.parent_id)
            assert parent, f"{span.name} has no parent span"
            assert parent.name == span.name.replace("Run", "Start", 1)
            assert parent.trace_id == span.trace_id
    tokens, _ = tokens_in(tmp_path)
    assert len(tokens) >= len(STAGES)
    answer = await asyncio.to_thread(found_traces, jaeger.query_url,
                                      "temporal-build-worker", since)
    texts = strings_in(answer)
    leaked = sum(any(token[:40] in text for text in texts) for token in tokens)
    assert leaked == 0, f"{leaked} task token(s) in what Jaeger returns"  # counted, not shown


async def test_sdk_metrics_and_the_dispatch_counter_arrive_over_otlp(client, server, dirs,
                                                                    tmp_path):
    """Metrics only: Jaeger takes no metrics, so they are read by the OTLP protocol fake."""
    with OtlpReceiver() as receiver:
        env = worker_env(server, dirs, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         METRICS_INTERVAL="0.5s")
        async with started_worker(env, tmp_path / "worker.log"):
            async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
                handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "otel")
                await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
            await eventually(lambda: "activity.dispatched" in receiver.metrics, 30)
        await handle.terminate("done")
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

