"""connection.converter: the SDK's pydantic encodings, built once and shared by every run."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.contrib.pydantic import pydantic_data_converter

from connection.converter import DATA_CONVERTER, SharedPydanticPayloadConverter
from models import BuildPhaseResult, Progress, StageSettings

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
