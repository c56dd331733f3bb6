"""Workflows by name: what a worker runs when it claims a run of workflow ``name``.

``@tide.workflow("name")``, ``@tide.workflow(name=...)`` and ``@tidebase.workflow`` register
here. Two shapes are accepted, and the registry turns both into ``invoke(run, input)``:

- the official SDK's shape, ``def wf(run, input)`` (first parameter named ``run``/``ctx``/
  ``context`` or annotated as a run context): called as ``wf(run, input)``;
- this project's decorated shape, ``def research(topic: str)``: the run's input is the dict of
  bound arguments the decorator stored, called as ``research(**input)``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

__all__ = ["Registered", "UnknownWorkflow", "lookup", "register", "registered_names"]

_RUN_PARAM_NAMES = {"run", "ctx", "context", "session"}


class UnknownWorkflow(ConfigurationError):
    """A run names a workflow no ``@tide.workflow(...)`` in this process registered."""


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    fn: Callable[..., Any]
    invoke: Callable[[Any, Any], Any]
    is_async: bool
    output_type: Any = None
    budget: Any = None  # a Budget: @workflow(budget=...), for runs started by name


_lock = threading.Lock()
_workflows: dict[str, Registered] = {}


def _unwrap(fn: Any) -> Any:
    return getattr(fn, "__wrapped__", fn)


def takes_run(fn: Callable[..., Any]) -> bool:
    """Is ``fn`` shaped ``fn(run, input)`` (the official SDK's workflow shape)?"""
    try:
        params = list(inspect.signature(_unwrap(fn)).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    first = params[0]
    annotation = (
        first.annotation
        if isinstance(first.annotation, str)
        else getattr(first.annotation, "__name__", "")
    )
    return first.name in _RUN_PARAM_NAMES or str(annotation).endswith(("RunContext", "RunSession"))


def register(
    name: str, fn: Callable[..., Any], *, output_type: Any = None, budget: Any = None
) -> Registered:
    """Register ``fn`` under ``name`` (the last registration of a name wins: reloads work)."""
    raw = _unwrap(fn)
    is_async = inspect.iscoroutinefunction(raw)
    if takes_run(fn):

        def invoke(run: Any, input: Any) -> Any:
            return raw(run, input)

    else:

        def invoke(run: Any, input: Any) -> Any:
            if input is None:
                return raw()
            if isinstance(input, dict):
                return raw(**input)
            return raw(input)

    entry = Registered(name, fn, invoke, is_async, output_type, budget)
    with _lock:
        _workflows[name] = entry
    return entry


def lookup(name: str) -> Registered:
    try:
        return _workflows[name]
    except KeyError:
        known = ", ".join(sorted(_workflows)) or "none"
        raise UnknownWorkflow(
            f"no workflow named {name!r} is registered in this process (registered: {known}); "
            f"decorate it with @tide.workflow({name!r}) in a module the worker imports"
        ) from None


def registered_names() -> list[str]:
    with _lock:
        return sorted(_workflows)
