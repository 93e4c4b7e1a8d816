"""A run's input, validated inside the run: one clear failure naming every invalid field."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from models import describe_errors

M = TypeVar("M", bound=BaseModel)


def invalid_input(message: str) -> ApplicationError:
    """The run's input cannot be used: fail the run at once, naming every problem."""
    return ApplicationError(f"invalid input: {message}", type="InvalidInput",
                            non_retryable=True)


def checked_input(model: type[M], raw: Any) -> M:
    """Validate a run's input inside the run, not in the data converter: a run with bad input
    then fails with one message naming every invalid field, and still answers queries."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise invalid_input(describe_errors(err)) from None


def note_ignored_keys(params: Any) -> None:
    """Say once (not on replay) which input keys this run ignores."""
    if params.ignored_keys():
        workflow.logger.warning("input_keys_ignored", extra={"keys": params.ignored_keys()})
