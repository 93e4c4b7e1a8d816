"""The agents' contract: what complete_activity.py sends is what the workflow decodes."""

from __future__ import annotations

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
