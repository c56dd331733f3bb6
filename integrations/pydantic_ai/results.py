"""Checkpointing an agent run as a whole: ``run.step("triage", lambda: agent.run(...))``.

The step stores the run's result as JSON in Pydantic AI's own serialized shape (output,
messages, usage, ids) plus the class of the output, and a replay rebuilds an ``AgentRunResult``
whose ``output`` has that class again (a pydantic model comes back as the model) and whose
``all_messages()`` are the run's messages. Never a pickle.

The output's class is looked up among the modules already imported, never imported by a name
read from the database. ``run.step(..., output_type=AgentRunResult[Triage])`` names it
explicitly (needed for generic outputs such as ``list[Triage]``, whose items would otherwise
come back as plain JSON).
"""

from __future__ import annotations

import sys
import typing
from typing import Any

from pydantic_ai.run import AgentRunResult
from tidebase_core.serialization import register_codec

from .codec import JOURNAL_CONTEXT, plain_adapter

__all__ = ["TAG", "dump_result", "load_result", "register"]

TAG = "pydantic_ai.AgentRunResult"

# Output classes met in this process, for those that no module attribute leads to.
_SEEN: dict[str, type] = {}
_JSON_VALUES = (str, int, float, bool, type(None), dict, list)


def dump_result(result: AgentRunResult[Any]) -> dict[str, Any]:
    output_class = type(result.output)
    ref = None
    if not isinstance(result.output, _JSON_VALUES):
        ref = f"{output_class.__module__}:{output_class.__qualname__}"
        _SEEN[ref] = output_class
    return {
        "output_class": ref,
        "result": plain_adapter(AgentRunResult[Any]).dump_python(result, mode="json"),
    }


def load_result(value: dict[str, Any], output_type: Any) -> AgentRunResult[Any]:
    output = _output_type(value["output_class"], output_type)
    adapter = plain_adapter(AgentRunResult[output])  # type: ignore[valid-type]
    result: AgentRunResult[Any] = adapter.validate_python(value["result"], context=JOURNAL_CONTEXT)
    return result


def _output_type(ref: str | None, requested: Any) -> Any:
    args = typing.get_args(requested)
    if args:
        return args[0]
    if ref is None:
        return Any
    found = _SEEN.get(ref) or _loaded_class(ref)
    if found is None:
        name = ref.rpartition(".")[2].rpartition(":")[2]
        raise LookupError(
            f"cannot rebuild the output of a checkpointed agent run: its class {ref} is not "
            "loaded in this process (a class defined inside a function, or in a module not "
            "imported yet). Define it at module level and import it before resuming, or pass "
            f"output_type=AgentRunResult[{name}] to run.step"
        )
    return found


def _loaded_class(ref: str) -> type | None:
    module_name, _, qualname = ref.partition(":")
    found: Any = sys.modules.get(module_name)
    for attr in qualname.split("."):
        found = getattr(found, attr, None)
    return found if isinstance(found, type) else None


def register() -> None:
    """Teach Tidebase's serialization to store and rebuild ``AgentRunResult``."""
    register_codec(AgentRunResult, tag=TAG, dump=dump_result, load=load_result)
