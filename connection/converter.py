"""The pydantic data converter with its parts built once per process, not once per run."""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter

# The SDK asks the data converter for a new payload converter for every workflow run it
# caches; pydantic's would each keep a TypeAdapter cache of their own (schemas built again
# in every run, ~0.3 ms and a few kB each). These encoders are stateless apart from that
# thread-safe cache, so every run can share them.
_ENCODERS = tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(CompositePayloadConverter):
    """PydanticPayloadConverter's encodings, one set (and one schema cache) per process."""

    def __init__(self) -> None:
        super().__init__(*_ENCODERS)


DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
