"""The pydantic data converter with its parts built once per process, not once per run, and a
failure converter that reads an agent's failure even when its details cannot be decoded."""

from __future__ import annotations

from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverter,
    PayloadConverter,
)

# The SDK asks the data converter for a new payload converter for every workflow run it
# caches; pydantic's would each keep a TypeAdapter cache of their own (schemas built again
# in every run, time and memory per run: bench/NOTES.md). These encoders are stateless apart
# from that thread-safe cache, so every run can share them.
_ENCODERS = tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """PydanticPayloadConverter's encodings, one set (and one schema cache) per process."""

    def __init__(self) -> None:
        super().__init__(*_ENCODERS)


class TolerantFailureConverter(DefaultFailureConverter):
    """An agent's failure is data: details we cannot decode (an unknown encoding) become
    words in its message, so the stage fails clearly instead of every workflow task."""

    def from_failure(self, failure: Failure, payload_converter: PayloadConverter
                     ) -> BaseException:
        try:
            return super().from_failure(failure, payload_converter)
        except Exception:  # its own details; a cause is read by this same method
            return super().from_failure(without_details(failure), payload_converter)


def without_details(failure: Failure) -> Failure:
    """A copy of FAILURE without the details payloads at its own level, its message saying
    that (and how) they were encoded."""
    plain = Failure()
    plain.CopyFrom(failure)
    kind = plain.WhichOneof("failure_info")
    info = getattr(plain, kind) if kind else None
    field = next((name for name in ("details", "last_heartbeat_details")
                  if info is not None and hasattr(info, name)), None)
    encodings = sorted({payload.metadata.get("encoding", b"").decode("utf-8", "replace")[:40]
                        for payload in getattr(info, field).payloads} if field else set())
    if field:
        info.ClearField(field)
    plain.ClearField("encoded_attributes")
    shown = ", ".join(repr(encoding or "none") for encoding in encodings) or "'none'"
    plain.message = (f"{failure.message or 'failed'} (its details could not be read: "
                     f"encoding {shown})")
    return plain


DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter,
                               failure_converter_class=TolerantFailureConverter)
