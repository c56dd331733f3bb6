"""``durable_run_config``: the user's ``RunConfig`` with its model calls made durable."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agents import Model, RunConfig

from tidebase_core.plugin import AnyRunContext

from .guardrails import durable_guardrail
from .models import DurableModelProvider, durable_model
from .steps import active_run

__all__ = ["durable_run_config"]


def durable_run_config(
    run: AnyRunContext | None = None, base: RunConfig | Mapping[str, Any] | None = None
) -> RunConfig:
    """A copy of ``base`` (default ``RunConfig()``) whose model calls are steps of ``run``.

    The user's model provider and settings are kept: the provider is wrapped in a
    ``DurableModelProvider``, a ``Model`` instance in ``model=`` in a ``DurableModel``, and
    run-level guardrails become steps. ``run`` defaults to the active run; the wrappers look it
    up when they are called, so outside a run they change nothing.
    """
    active_run(run)
    if base is None:
        config = RunConfig()
    elif isinstance(base, RunConfig):
        config = base
    elif isinstance(base, Mapping):
        config = RunConfig(**base)
    else:
        raise TypeError(
            f"durable_run_config(base=...) takes an agents.RunConfig (or a dict of its fields), "
            f"got {type(base).__name__}"
        )
    changes: dict[str, Any] = {}
    if not isinstance(config.model_provider, DurableModelProvider):
        changes["model_provider"] = DurableModelProvider(config.model_provider)
    if isinstance(config.model, Model):
        changes["model"] = durable_model(config.model)
    for field in ("input_guardrails", "output_guardrails"):
        guardrails = getattr(config, field, None)
        if guardrails:
            changes[field] = [durable_guardrail(g) for g in guardrails]
    return dataclasses.replace(config, **changes)
