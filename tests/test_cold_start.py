"""A fresh process pays only for what it uses: ``import tidebase`` (every CLI command, every
resume in a new process) builds no validation schema of Tidebase's own result models; each is
built the first time a value of it is made."""

from __future__ import annotations

import subprocess
import sys

_SCHEMAS_BUILT = """
import pydantic
import tidebase


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


ours = [c for c in subclasses(pydantic.BaseModel) if c.__module__.startswith("tidebase")]
assert len(ours) >= 20, [c.__name__ for c in ours]
print(sorted(c.__qualname__ for c in ours if c.__pydantic_complete__))
budget = tidebase.Budget(usd=1)
print(tidebase.Budget.__pydantic_complete__, budget.usd)
"""


def test_importing_tidebase_builds_no_schema_of_its_own_models() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCHEMAS_BUILT], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    built, first_use = done.stdout.strip().splitlines()
    assert built == "[]"
    assert first_use == "True 1"
