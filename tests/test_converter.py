"""connection.converter: the SDK's pydantic encodings, built once and shared by every run;
an agent's failure whose details cannot be decoded still fails its stage clearly."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import ActivityFailureInfo, ApplicationFailureInfo, Failure
from temporalio.api.workflowservice.v1 import RespondActivityTaskFailedRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from connection.converter import DATA_CONVERTER, SharedPydanticPayloadConverter
from models import BuildPhaseResult, Progress, StageSettings
from testbed.helpers import eventually, files_of_type, start_pipeline

VALUES = [BuildPhaseResult(status="success", output="done"), None, b"\x00raw",
          {"nested": [1, "two"]},
          Progress(stage="wait", deadline=datetime(2026, 11, 30, tzinfo=UTC)),
          StageSettings(agent_queues={"claudebox": "helm-build-claudebox"})]


def test_payloads_are_byte_for_byte_the_sdk_pydantic_converters():
    ours = DATA_CONVERTER.payload_converter.to_payloads(VALUES)
    theirs = pydantic_data_converter.payload_converter.to_payloads(VALUES)
    assert ours == theirs


def test_models_decode_to_their_type():
    payloads = DATA_CONVERTER.payload_converter.to_payloads(VALUES)
    decoded = DATA_CONVERTER.payload_converter.from_payloads(
        payloads, [BuildPhaseResult, type(None), bytes, dict, Progress, StageSettings])
    assert decoded == VALUES
    assert isinstance(decoded[4], Progress) and decoded[4].deadline == VALUES[4].deadline


def test_every_run_gets_the_same_encoders_and_so_one_schema_cache():
    first, second = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()
    assert first is not second  # a converter per run, as the SDK asks
    assert list(first.converters) == list(second.converters)
    assert all(first.converters[key] is second.converters[key] for key in first.converters)


def _evil_failure(message: str) -> Failure:
    """What a hostile agent can send as RespondActivityTaskFailed: details in an encoding
    nobody reads."""
    details = Payloads(payloads=[Payload(metadata={"encoding": b"binary/evil"}, data=b"\x00")])
    return Failure(message=message, application_failure_info=ApplicationFailureInfo(
        type="PhaseFailed", non_retryable=True, details=details))


def test_undecodable_failure_details_become_words_of_the_message():
    outer = Failure(message="activity failed", activity_failure_info=ActivityFailureInfo(),
                    cause=_evil_failure("cannot build"))
    error = DATA_CONVERTER.failure_converter.from_failure(outer, DATA_CONVERTER.payload_converter)
    cause = error.__cause__
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.message == ("cannot build (its details could not be read: encoding "
                             "'binary/evil')")


async def _send_evil_failure(client: Client, task_dir: Path, message: str) -> None:
    prefab = (await eventually(lambda: files_of_type(task_dir, "build_prefab")))[0]
    token = base64.b64decode(prefab["payload"]["task_token"])
    await client.workflow_service.respond_activity_task_failed(
        RespondActivityTaskFailedRequest(task_token=token, namespace="default",
                                         failure=_evil_failure(message)))


async def test_an_undecodable_failure_fails_the_stage_clearly(client, cfg, dirs, worker):
    """It used to wedge the run: "Unknown payload encoding" on every workflow task."""
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "evil-failure")
    await _send_evil_failure(client, dirs["tasks"], "no compiler here")
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 30)
    assert ("no compiler here (its details could not be read: encoding 'binary/evil')"
            in str(caught.value.cause))
    await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab")[0]["status"]
                     == "failed")


async def test_a_run_sent_an_undecodable_failure_can_be_cancelled(client, cfg, dirs, worker):
    """Cancel used to be ignored too: the run's every workflow task failed."""
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "evil-cancel")
    await _send_evil_failure(client, dirs["tasks"], "giving up")
    await handle.cancel()
    await eventually(lambda: _closed(handle), 30)


async def _closed(handle: WorkflowHandle) -> bool:
    status = (await handle.describe()).status
    return status in (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.CANCELED)
