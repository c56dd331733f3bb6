"""Step keys of LangChain operations, and finding an operation's checkpoint again.

- A **model call** made in the workflow body is keyed by its content (normalized prompt and
  model): LangChain's ``batch`` and LangGraph's parallel nodes run model calls concurrently, so
  their order is not stable, their content is. A model call made inside a step body (a tool, a
  ``run.step``) is keyed by its order in that step, with the content as the input hash: a
  changed prompt there raises ``InputMismatch``.
- A **tool call** is keyed by tool name and content (arguments and ``tool_call_id``): LangGraph
  runs the tool calls of one model turn in parallel.

Identical operations are told apart by occurrence (``key``, ``key#2`` …), and an occurrence is
spent only by a checkpoint: a call that raised leaves its key to its retry, so a resumed run
looks for exactly the keys the earlier attempt wrote.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from tidebase_core.errors import InputMismatch
from tidebase_core.plugin import AnyRunContext, current_step_key, input_hash

__all__ = ["Operation", "model_call", "prompt_digest", "tool_call"]

# Message fields that differ between a fresh call and its replay (the replayed AIMessage gets
# usage_metadata.total_cost = 0 from LangChain) or between two runs (ids).
_VOLATILE = ("id", "usage_metadata", "response_metadata")


def prompt_digest(prompt: str, llm_string: str) -> str:
    """Input hash of a model call from LangChain's cache arguments (normalized prompt, model)."""
    return input_hash({"prompt": _normalized(prompt), "model": llm_string}, what="model prompt")


def _normalized(prompt: str) -> Any:
    try:
        data = json.loads(prompt)  # chat models: a dumped list of messages
    except ValueError:
        return prompt  # completion models: the prompt text
    if isinstance(data, list):
        for item in data:
            kwargs = item.get("kwargs") if isinstance(item, dict) else None
            if isinstance(kwargs, dict):
                for name in _VOLATILE:
                    kwargs.pop(name, None)
    return data


def model_call(run: AnyRunContext, digest: str) -> Operation:
    step = current_step_key()
    if step is None:
        return Operation(run, f"langchain.model:{digest[:16]}", digest)
    return Operation(run, f"{step}/langchain.model", digest)


def tool_call(run: AnyRunContext, name: str, args: Any, tool_call_id: str | None) -> Operation:
    digest = input_hash(
        {"args": args, "tool_call_id": tool_call_id}, what=f"arguments of tool {name!r}"
    )
    return Operation(run, f"langchain.tool:{name.replace('#', '_')}:{digest[:16]}", digest)


@dataclass(frozen=True, slots=True)
class Operation:
    """One model or tool call of a run: its key (``base`` + occurrence) and input hash."""

    run: AnyRunContext
    base: str
    digest: str

    def replay(self) -> str | None:
        """The checkpoint (JSON text) of the first occurrence not yet replayed in this
        attempt, now taken; None when the call must execute.

        Raises ``InputMismatch`` when an unreplayed checkpoint was written for other input and
        none matches (the step body diverged), ``StepFailed`` when the call is parked.
        """
        return self._find(take=True)

    def recorded(self) -> bool:
        """Would ``replay`` find a checkpoint? (Nothing is taken.)"""
        return self._find(take=False) is not None

    def _find(self, *, take: bool) -> str | None:
        spent = _spent(self.run)
        with spent.lock:
            taken = spent.by_base.setdefault(self.base, set())
            mismatch: InputMismatch | None = None
            n = 1
            while True:
                key = _key(self.base, n)
                try:
                    stored = self.run.checkpoint_of(key, self.digest)
                except InputMismatch as exc:
                    if n not in taken and mismatch is None:
                        mismatch = exc
                else:
                    if stored is None:
                        break
                    if n not in taken:
                        if take:
                            taken.add(n)
                        return stored
                n += 1
        if mismatch is not None:
            raise mismatch
        return None

    def allocate(self) -> str:
        """The key a new execution checkpoints under: the first free occurrence."""
        spent = _spent(self.run)
        with spent.lock:
            taken = spent.by_base.setdefault(self.base, set())
            n = 1
            while n in taken or self._completed(_key(self.base, n)):
                n += 1
            taken.add(n)
        return _key(self.base, n)

    def release(self, key: str) -> None:
        """``key`` was not checkpointed (the call raised): its retry may take it."""
        n = 1 if key == self.base else int(key.rsplit("#", 1)[1])
        spent = _spent(self.run)
        with spent.lock:
            spent.by_base.get(self.base, set()).discard(n)

    def _completed(self, key: str) -> bool:
        try:
            return self.run.checkpoint_of(key, self.digest) is not None
        except InputMismatch:
            return True


def _key(base: str, n: int) -> str:
    return base if n == 1 else f"{base}#{n}"


@dataclass
class _Spent:
    """Occurrences replayed or allocated in one attempt of a run."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_base: dict[str, set[int]] = field(default_factory=dict)


_attempts: weakref.WeakKeyDictionary[Any, _Spent] = weakref.WeakKeyDictionary()
_attempts_lock = threading.Lock()


def _spent(run: AnyRunContext) -> _Spent:
    with _attempts_lock:
        spent = _attempts.get(run)
        if spent is None:
            spent = _attempts[run] = _Spent()
        return spent
