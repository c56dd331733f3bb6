"""A user's workflow module for the ``tidebase worker module:tide`` test."""

from __future__ import annotations

from typing import Any

from tidebase import RunContext, Tidebase

tide = Tidebase()


@tide.workflow("cli-job")
def cli_job(run: RunContext, input: Any) -> str:
    return run.step("greet", lambda: f"hello {input['who']}")
