"""The active run, as the plugin's entry points find it.

Every framework operation (model call, tool call, guardrail verdict, session read or write) goes
through ``tidebase_core.operations.durable_call``, which keys it: ``model.request``,
``model.request#2`` … in order of occurrence, ``tool.<name>.<call_id>`` by the model's call id.
Work done inside another operation's body (an agent used as a tool, a guardrail that runs its
own agent) is keyed under it (``tool.research.call_1/model.request``), so parallel nested runs
never race for the same ordinal.
"""

from __future__ import annotations

from tidebase_core.plugin import AnyRunContext, current_run

__all__ = ["active_run"]


def active_run(run: AnyRunContext | None = None) -> AnyRunContext | None:
    """The active Tidebase run; ``run``, when given, must be it."""
    active = current_run()
    if run is not None and run is not active:
        raise ValueError(
            f"{run!r} is not the run active here (the active run is {active!r}). Call the "
            "Agents SDK from inside the workflow function that received this run, or pass "
            "run=None to use the active run"
        )
    return active
