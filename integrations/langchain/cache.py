"""``TidebaseLLMCache``: LangChain's LLM cache interface as the replay of a run's model calls.

LangChain consults the cache (``lookup``) before every ``invoke``/``batch``/``generate`` of a
model and stores each fresh result in it (``update``). Inside a run, ``lookup`` answers with
the call's checkpoint and ``update`` writes the checkpoint, with the call's usage, in one
statement. Outside a run it is the user's own cache (or no cache), untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration

from tidebase_core.plugin import current_run, decode, save_checkpoint, save_checkpoint_sync

from . import in_progress
from .keys import model_call, prompt_digest
from .usage import usage_rows
from .values import CHECKPOINTED, MARK, Stored, dump_generations, load_generations, unwrap

__all__ = ["TidebaseLLMCache"]


class TidebaseLLMCache(BaseCache):
    """Replays the active run's model calls; ``fallback`` (the user's cache) serves the rest."""

    def __init__(self, fallback: BaseCache | None = None) -> None:
        self.fallback = fallback

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        run = current_run()
        if run is None:
            return None if self.fallback is None else self.fallback.lookup(prompt, llm_string)
        if in_progress.claimed():
            return None
        stored = model_call(run, prompt_digest(prompt, llm_string)).replay()
        return None if stored is None else load_generations(unwrap(decode(stored)))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if current_run() is None and self.fallback is not None:
            return await self.fallback.alookup(prompt, llm_string)
        return self.lookup(prompt, llm_string)  # no I/O: a run's checkpoints load at its start

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        run = current_run()
        if run is None:
            if self.fallback is not None:
                self.fallback.update(prompt, llm_string, return_val)
        elif not in_progress.claimed():
            op = model_call(run, prompt_digest(prompt, llm_string))
            output, usage = _checkpoint(return_val)
            save_checkpoint_sync(run, op.allocate(), op.digest, output, usage=usage)
            _mark(return_val)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        run = current_run()
        if run is None:
            if self.fallback is not None:
                await self.fallback.aupdate(prompt, llm_string, return_val)
        elif not in_progress.claimed():
            op = model_call(run, prompt_digest(prompt, llm_string))
            output, usage = _checkpoint(return_val)
            await save_checkpoint(run, op.allocate(), op.digest, output, usage=usage)
            _mark(return_val)

    def clear(self, **kwargs: Any) -> None:
        """Clears the user's cache; a run's checkpoints are its record and stay."""
        if self.fallback is not None:
            self.fallback.clear(**kwargs)

    async def aclear(self, **kwargs: Any) -> None:
        if self.fallback is not None:
            await self.fallback.aclear(**kwargs)


def _checkpoint(return_val: RETURN_VAL_TYPE) -> tuple[Stored, list[dict[str, Any]]]:
    messages: list[BaseMessage] = [g.message for g in return_val if isinstance(g, ChatGeneration)]
    return Stored(dump_generations(return_val)), usage_rows(messages, in_progress.current())


def _mark(return_val: Sequence[Any]) -> None:
    """Tell the callback handler (which sees these same objects next) the usage is recorded."""
    for gen in return_val:
        gen.generation_info = {**(gen.generation_info or {}), MARK: CHECKPOINTED}
