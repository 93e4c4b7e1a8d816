"""process_triage_output: read the security agent's triage file into TriageOutput."""

from __future__ import annotations

import asyncio
import errno

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from files import FileTooLarge, read_limited
from models import TriageOutput
from triage import MAX_TRIAGE_BYTES, TriageFormatError, parse_triage


class TriageStage:
    """Stage 4: missing file is retryable, a malformed one is not."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="process_triage_output")
    async def process_triage_output(self, build_name: str) -> TriageOutput:
        path = self.deps.config.audit_dir / build_name / "triage-output.yml"
        try:
            raw = await asyncio.to_thread(read_limited, path, MAX_TRIAGE_BYTES)
        except FileNotFoundError:
            raise ApplicationError(f"triage file not written yet: {path}",
                                   type="TriageMissing") from None
        except FileTooLarge as err:
            raise ApplicationError(str(err), type="TriageFormatError",
                                   non_retryable=True) from None
        except OSError as err:
            reason = "is a symlink" if err.errno == errno.ELOOP else err.strerror
            raise ApplicationError(f"cannot read triage file {path}: {reason}",
                                   type="TriageFormatError", non_retryable=True) from None
        try:
            result = parse_triage(raw)
        except TriageFormatError as err:
            raise ApplicationError(f"{path}: {err}", type="TriageFormatError",
                                   non_retryable=True) from None
        activity.logger.info("triage_read", extra={
            "blocks": len(result.blocks), "flags": len(result.flags), "info": len(result.info)})
        return result
