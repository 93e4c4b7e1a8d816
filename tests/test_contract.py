"""The agents' contract: what complete_activity.py sends is what the workflow decodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from connection.converter import DATA_CONVERTER
from contract import JSON_ENCODING, completion_json, decode_token, encode_token, token_text
from models import BuildPhaseResult


def test_a_completion_is_what_the_sdk_writes_for_the_stage_result():
    payload = DATA_CONVERTER.payload_converter.to_payloads(
        [BuildPhaseResult(status="success", output="naïve → done")])[0]
    assert payload.metadata["encoding"] == JSON_ENCODING
    assert payload.data == completion_json("naïve → done")


def test_tokens_round_trip_and_bad_text_is_refused_without_showing_it():
    assert decode_token(encode_token(b"\x00token\xff")) == b"\x00token\xff"
    for text, why in (("", "empty"), ("not base64!", "not valid base64"), ("é", "not valid")):
        with pytest.raises(ValueError, match=why) as caught:
            decode_token(text)
        assert text not in str(caught.value) or not text


def test_the_token_field_is_read_only_from_the_payload():
    assert token_text({"payload": {"task_token": "dA=="}}) == "dA=="
    assert token_text({"task_token": "dA=="}) is None
    assert token_text({"payload": {"task_token": 7}}) is None
    assert token_text(["payload"]) is None


def test_the_failure_types_on_the_wire_keep_their_names():
    """Recorded histories and the workflows name these failure types as strings: contract.py
    owns them, and moving the owner must not rename them."""
    from contract import BUILD_REJECTED, TRIAGE_FORMAT_ERROR, TRIAGE_MISSING, TriageFormatError

    assert (TRIAGE_FORMAT_ERROR, TRIAGE_MISSING, BUILD_REJECTED) == (
        "TriageFormatError", "TriageMissing", "BuildRejected")
    assert issubclass(TriageFormatError, ValueError)


def test_the_worker_and_the_agents_cli_default_to_one_task_directory(tmp_path, monkeypatch):
    """Without TASK_QUEUE_DIR, the worker's configuration and complete_activity.py look in
    the same directory (one default, in contract.py)."""
    from agent_cli import task_files
    from config import load_config
    from contract import DEFAULT_TASK_DIR

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TASK_QUEUE_DIR", raising=False)
    expected = Path(DEFAULT_TASK_DIR).expanduser()
    assert expected == tmp_path / ".claude" / "task-queue"
    assert task_files.task_dir() == expected
    assert load_config({"HOME": str(tmp_path)}).task_dir.expanduser() == expected
