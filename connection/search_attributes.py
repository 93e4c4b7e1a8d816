"""Our search attributes (BuildName, TargetAgent): their keys, and whether the namespace has
them."""

from __future__ import annotations

import logging

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

log = logging.getLogger("search_attributes")
BUILD_NAME = SearchAttributeKey.for_keyword("BuildName")
TARGET_AGENT = SearchAttributeKey.for_keyword("TargetAgent")
REQUIRED = (BUILD_NAME.name, TARGET_AGENT.name)


async def namespace_has_build_attributes(client: Client) -> bool:
    """True when both Keyword attributes exist; logs once and returns False otherwise."""
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
    except Exception as err:
        log.warning("search_attributes_unknown", extra={"error": type(err).__name__})
        return False
    missing = [name for name in REQUIRED if name not in response.custom_attributes]
    if missing:
        log.warning("search_attributes_missing", extra={
            "missing": missing, "hint": "temporal operator search-attribute create "
            "--name BuildName --type Keyword (and TargetAgent)"})
        return False
    return True
