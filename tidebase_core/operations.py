"""Durable operations: the one thing integration plugins call for a framework operation.

A plugin describes each kind of operation its framework performs (a model request, a tool
call …) once, as an ``Operation``: how its result is stored and read back, which ledger rows a
result stands for, which exceptions are part of its outcome. Then every call goes through
``durable_call`` (async) or ``durable_call_sync`` (sync), a streamed one through
``durable_stream`` / ``durable_stream_sync``, which do the rest the same way for every plugin:

    key    the operation's name in order of occurrence (``model.request``, ``…#2``), or its
           framework identity (``tool.search.call_7``: a call id of the replayed response),
           allocated by the run's one key allocator, in the scope the call is made in
    lookup an earlier attempt's checkpoint: returned (or its recorded error raised) without
           running the call; a checkpoint written for other input raises ``InputMismatch``
    live   a cancel or a takeover seen by the heartbeat stops the call before it is paid for,
           and a model call checks the budget that governs the run (``BudgetExceeded``)
    run    the call itself, as a step: intent and failure records follow its ``StepPolicy``;
           operations it makes in turn (an agent used as a tool) are keyed under it
    save   the result and its usage rows in one write; a call whose checkpoint is refused
           (cancelled or taken over meanwhile) still has its usage in the ledger, because the
           money was spent, and so does a stream that failed or stopped after its events
           reported usage
    errors an exception the operation declares as an outcome (a provider's 503 the workflow
           falls back on) is checkpointed, and raised again on replay as long as the run went
           on past it; otherwise the call runs again on resume. Either way, what a failed call
           had used before failing (``Operation.spent``, a stream's ``spent``) is ledgered once

Exceptions come back as their class only when the plugin allow-listed it: a class name read
from the database is never imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from . import context
from ._async.context import AsyncRunContext
from ._run_base import LogOf
from ._sync.context import RunContext
from .context import current_run
from .errors import LeaseLost, RunCancelled, TidebaseError
from .keys import entered
from .replay import StepPolicy
from .serialization import decode_json

__all__ = [
    "ERROR_KEY",
    "ErrorCodec",
    "Operation",
    "ReplayedError",
    "Usage",
    "blocking_run",
    "durable_call",
    "durable_call_sync",
    "durable_stream",
    "durable_stream_sync",
]

T = TypeVar("T")
E = TypeVar("E")

ERROR_KEY = "$tidebase.error"
"""The stored form of an operation's recorded exception: ``{ERROR_KEY: {...}}``."""


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Usage:
    """One model call in the ledger: the arguments of ``run.usage.record``.

    ``cost_usd`` given by the provider or framework wins over the price table (the ledger
    marks it ``cost_source='given'``).
    """

    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | float | int | str | None = None
    kind: str = "llm"
    label: str | None = None
    metadata: Mapping[str, Any] | None = None
    agent: str | None = None
    """The agent that made the call (``tide.usage.summary(...).by_agent``)."""

    def fields(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if fields["agent"] is None:
            del fields["agent"]
        return fields


class ReplayedError(RuntimeError):
    """A recorded exception whose class the plugin did not allow-list, raised again on replay
    with the original class name and message."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.original_message = message


class ErrorCodec:
    """The exceptions an operation records as its outcome, by an allow-list of classes.

    An exception is stored as its class's qualified name, ``args`` and JSON attributes; on
    replay the class is found in the allow-list (never imported by name) and rebuilt without
    calling its ``__init__``, so its ``str()``, attributes and ``isinstance`` checks are as
    they were.
    """

    def __init__(self, *classes: type[BaseException]) -> None:
        self.classes = classes
        self._by_name = {_qualified(cls): cls for cls in classes}

    def records(self, exc: BaseException) -> bool:
        return isinstance(exc, self.classes)

    def allow(self, *classes: type[BaseException]) -> None:
        """Add classes to the allow-list (a subclass raised by a provider client)."""
        self.classes = (*self.classes, *classes)
        self._by_name.update({_qualified(cls): cls for cls in classes})

    def dump(self, exc: BaseException) -> dict[str, Any]:
        attrs = {k: v for k, v in vars(exc).items() if not k.startswith("_") and _is_json(v)}
        return {
            "type": _qualified(type(exc)),
            "message": str(exc),
            "args": [a for a in exc.args] if all(_is_json(a) for a in exc.args) else None,
            "attrs": attrs,
        }

    def load(self, stored: Mapping[str, Any]) -> BaseException:
        name = str(stored.get("type"))
        cls = self._by_name.get(name) or self._subclass(name)
        if cls is None or stored.get("args") is None:
            return ReplayedError(name, str(stored.get("message", "")))
        exc = cls.__new__(cls)
        exc.args = tuple(stored["args"])
        for attr, value in dict(stored.get("attrs") or {}).items():
            with contextlib.suppress(AttributeError):  # a read-only property: derived
                setattr(exc, attr, value)
        return exc

    def _subclass(self, name: str) -> type[BaseException] | None:
        """A subclass of an allow-listed class, among the classes already imported (a
        provider's ``ModelHTTPError`` under ``AgentRunError``): nothing is imported by name."""
        todo = list(self.classes)
        while todo:
            cls = todo.pop()
            if _qualified(cls) == name:
                self._by_name[name] = cls
                return cls
            todo.extend(cls.__subclasses__())
        return None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class Operation(Generic[T]):
    """One kind of framework operation, described once by its plugin."""

    name: str
    """The key name: ``model.request``, ``tool.search`` (escaped by the key allocator)."""
    dump: Callable[[T], Any] = _same
    """Result → JSON value to checkpoint (identity for results the framework dumps itself)."""
    load: Callable[[Any], T] = _same
    """Checkpointed JSON value → result, on replay."""
    usage: Callable[[T], Sequence[Usage]] | None = None
    """Result → the ledger rows of the model calls it stands for (model calls only)."""
    errors: ErrorCodec | None = None
    """Exceptions that are an outcome of the operation: checkpointed and raised on replay."""
    policy: StepPolicy = field(default_factory=StepPolicy)
    """Side effects, idempotency key, retries: what a step declares."""
    on_replay: Callable[[T], None] | None = None
    """Called with a replayed result (fire the framework's callbacks as replayed)."""
    spent: Callable[[BaseException], Sequence[Usage]] | None = None
    """A failed call's exception → the ledger rows of what it had used before failing (a
    stream consumed inside the call that failed mid-way: those tokens were paid for)."""

    def key_name(self, identity: str | None) -> str:
        return self.name if identity is None else f"{self.name}.{identity}"

    @functools.cached_property
    def step_policy(self) -> StepPolicy:
        """The policy its steps run under: a model call (one with ``usage``) spends, so it
        checks the run tree's budget before it executes."""
        if self.usage is None or self.policy.spends:
            return self.policy
        return dataclasses.replace(self.policy, spends=True)


# -- shared by the async and the sync call -------------------------------------------------


class Outcome(Generic[T]):
    """What one execution of an operation's call produced (the live objects, not their JSON)."""

    __slots__ = ("error", "ran", "value")

    def __init__(self) -> None:
        self.ran = False
        self.value: Any = None
        self.error: BaseException | None = None

    def stored(self, op: Operation[T], value: T) -> Any:
        self.ran = True
        self.value = value
        return op.dump(value)

    def failed(self, op: Operation[T], exc: BaseException) -> Any:
        """The stored form of ``exc``, an exception the operation records."""
        assert op.errors is not None
        self.ran = True
        self.error = exc
        return {ERROR_KEY: op.errors.dump(exc)}

    def usage_rows(self, op: Operation[T]) -> list[dict[str, Any]]:
        if op.usage is None or not self.ran:
            return []
        if self.error is not None:
            return _failed_usage(op, self.error)
        return [row.fields() for row in op.usage(self.value)]

    def log_entries(self, log: LogOf[T] | None) -> Sequence[tuple[str, Any]]:
        if log is None or not self.ran or self.error is not None:
            return ()
        return log(self.value)

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        value: T = self.value
        return value


class Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = Missing.MISSING


def replayed(run: Any, op: Operation[T], key: str, digest: str) -> T | Missing:
    """The result an earlier attempt checkpointed for ``key`` (``MISSING`` if none); its
    recorded error is raised instead when the run went on past it (a failure the workflow
    handled). No I/O."""
    raw = run.checkpoint_of(key, digest)
    if raw is None:
        return MISSING
    stored = decode_json(raw)
    if isinstance(stored, dict) and ERROR_KEY in stored and len(stored) == 1:
        if not _went_on_past(run._execution, key):
            # The failure ended the attempt: the call runs again, over the recorded failure.
            del run._execution.checkpoints[key]
            return MISSING
        assert op.errors is not None  # only recorded for an operation with an ErrorCodec
        raise op.errors.load(stored[ERROR_KEY])
    value = op.load(stored)
    if op.on_replay is not None:
        op.on_replay(value)
    return value


def _failed_usage(op: Operation[Any], exc: BaseException) -> list[dict[str, Any]]:
    return [row.fields() for row in op.spent(exc)] if op.spent is not None else []


def _went_on_past(execution: Any, key: str) -> bool:
    mine = execution.checkpoints[key].seq or 0
    return any(
        (cp.seq or 0) > mine and cp.status == "completed" for cp in execution.checkpoints.values()
    )


def spent_anyway(exc: BaseException, outcome: Outcome[Any]) -> bool:
    """The call ran and paid, but its checkpoint was refused (cancelled or taken over)."""
    return outcome.ran and isinstance(exc, RunCancelled | LeaseLost)


@contextmanager
def inside(run: Any, key: str) -> Iterator[None]:
    """The call's body runs as step ``key``: operations it makes are keyed under it."""
    step = context.current_step.set(key)
    try:
        with entered(run._execution.scope().step_body(key)):
            yield
    finally:
        context.current_step.reset(step)


# -- the calls -------------------------------------------------------------------------------


async def durable_call(
    op: Operation[T],
    call: Callable[[], Awaitable[T]],
    *,
    digest: str,
    identity: str | None = None,
    run: RunContext | AsyncRunContext | None = None,
    log: LogOf[T] | None = None,
) -> T:
    """``await call()`` as a durable operation of the active run (just the call outside one).

    ``digest`` is the input hash (what must be the same for the checkpoint to be reused);
    ``identity`` the framework's own identity of the call (a tool call id), else the call is
    keyed by order of occurrence. ``log``: the call's result → run-log entries (event type,
    payload) written in the checkpoint's own statement, such as the framework's "tool ended"
    event: one round trip less than emitting it after, and never logged without the
    checkpoint (a replayed call writes neither).
    """
    run = run if run is not None else current_run()
    if run is None:
        return await call()
    key = run.next_key(op.key_name(identity))
    value = replayed(run, op, key, digest)
    if value is not MISSING:
        return value
    outcome: Outcome[T] = Outcome()

    async def body() -> Any:
        try:
            result = await call()
        except Exception as exc:
            if op.errors is None or not op.errors.records(exc):
                # Not an outcome, so no checkpoint; what it used before failing was paid for.
                rows = _failed_usage(op, exc)
                if rows:
                    await _ledger_anyway_async(run, key, rows)
                raise
            return outcome.failed(op, exc)
        return outcome.stored(op, result)

    try:
        if isinstance(run, AsyncRunContext):
            await run.run_step(
                key,
                body,
                input_hash=digest,
                policy=op.step_policy,
                usage=lambda _: outcome.usage_rows(op),
                log=lambda _: outcome.log_entries(log),
            )
        else:
            # An async framework driven from a sync workflow (``agent.run_sync``): the call
            # runs on this thread's event loop; the checkpoint is written through the sync
            # run's connection, which nothing else uses meanwhile. Policy intents, retries and
            # failure records need the async API here.
            run._ready()
            if op.step_policy.spends:
                run.check_budget(key)
            with inside(run, key):
                dumped = await body()
            rows = outcome.usage_rows(op)
            run.save_checkpoint(
                key,
                digest,
                dumped,
                policy=op.step_policy,
                usage=rows,
                log=outcome.log_entries(log),
            )
    except (RunCancelled, LeaseLost) as exc:
        if spent_anyway(exc, outcome):
            await _ledger_anyway_async(run, key, outcome.usage_rows(op))
        raise
    return outcome.result()


async def _ledger_anyway_async(
    run: RunContext | AsyncRunContext, key: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """The usage of a call that has no checkpoint to go with (refused because the run was
    cancelled or taken over meanwhile; a stream that did not complete): the ledger is not fenced
    by the lease, because the money was spent whoever holds the run."""
    if not isinstance(run, AsyncRunContext):
        _ledger_anyway(run, key, rows)
        return
    for fields in rows:
        await run._db.record_usage(run._usage_row(key, fields))


async def durable_stream(
    op: Operation[T],
    stream: Callable[[], AsyncIterator[E]],
    *,
    digest: str,
    result_of: Callable[[E], T | None],
    replay: Callable[[T], Iterable[E]],
    spent: Callable[[], Sequence[Usage]] | None = None,
    identity: str | None = None,
    run: RunContext | AsyncRunContext | None = None,
) -> AsyncGenerator[E, None]:
    """A streamed operation: ``stream()``'s events, checkpointed when the event that completes
    it arrives (``result_of(event)`` is its result; None for every other event). A replay
    yields ``replay(result)``.

    A stream that does not complete is no checkpoint: resuming streams it again, under a key of
    its own. But the usage its events reported so far (``spent()``) was paid for, so it is in
    the ledger once when the stream fails (the provider errors mid-stream), ends early, or is
    stopped by its consumer (the Agents SDK stops at a ``response.failed`` event). A failure the
    operation records (``op.errors``) is checkpointed with those rows in one write, and replays
    as ``durable_call``'s failures do. A killed process records nothing.
    """
    run = run if run is not None else current_run()
    if run is None:
        async for event in stream():
            yield event
        return
    key = run.next_key(op.key_name(identity))
    value = replayed(run, op, key, digest)
    if value is not MISSING:
        for event in replay(value):
            yield event
        return
    # A cancel or a takeover: stop before the stream is paid for.
    if isinstance(run, AsyncRunContext):
        await run._ready()
    else:
        run._ready()
    if op.step_policy.spends:
        if isinstance(run, AsyncRunContext):
            await run.check_budget(key)
        else:
            run.check_budget(key)
    events = stream()
    settled = False  # checkpointed, or its failure recorded: nothing more to write
    try:
        while True:
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
            except Exception as exc:
                settled = True
                failure, rows = _stream_failure(op, exc, spent)
                if failure is None:
                    await _ledger_anyway_async(run, key, rows)
                else:
                    await _save_async(run, op, key, digest, failure, rows)
                raise
            result = result_of(event)
            if result is not None:
                settled = True
                await _save_async(run, op, key, digest, op.dump(result), _usage_of(op, result))
            yield event
    except GeneratorExit:
        if not settled:  # stopped by its consumer
            await _ledger_anyway_async(run, key, _spent_rows(spent))
        raise
    finally:
        # Stopped early: the framework's stream is closed now, not when it is collected.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    if not settled:  # ended without its completing event
        await _ledger_anyway_async(run, key, _spent_rows(spent))


async def _save_async(
    run: RunContext | AsyncRunContext,
    op: Operation[T],
    key: str,
    digest: str,
    dumped: Any,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """A stream's checkpoint with its usage rows; the rows alone when it is refused."""
    try:
        if isinstance(run, AsyncRunContext):
            await run.save_checkpoint(key, digest, dumped, policy=op.step_policy, usage=rows)
        else:
            run.save_checkpoint(key, digest, dumped, policy=op.step_policy, usage=rows)
    except (RunCancelled, LeaseLost):
        await _ledger_anyway_async(run, key, rows)
        raise


def durable_stream_sync(
    op: Operation[T],
    stream: Callable[[], Iterator[E]],
    *,
    digest: str,
    result_of: Callable[[E], T | None],
    replay: Callable[[T], Iterable[E]],
    spent: Callable[[], Sequence[Usage]] | None = None,
    identity: str | None = None,
    run: RunContext | AsyncRunContext | None = None,
) -> Iterator[E]:
    """``durable_stream`` for a sync stream (a framework's sync ``stream()``), in a sync or an
    async run.

    The key is taken and the checkpoint looked up when this is called, not when the first event
    is pulled (a generator's body waits for that): keys follow program order. A recorded failure
    is raised when the first event is pulled, where the live stream raised it.
    """
    run = run if run is not None else current_run()
    if run is None:
        return stream()
    key = run.next_key(op.key_name(identity))
    try:
        value = replayed(run, op, key, digest)
    except TidebaseError:
        raise  # a diverged input: the workflow's own error, at once
    except Exception as exc:
        return _raising(exc)
    if value is not MISSING:
        return iter(replay(value))
    return _streamed_sync(run, op, key, digest, stream, result_of, spent)


def _raising(exc: Exception) -> Iterator[Any]:
    raise exc
    yield  # a generator: raises when pulled


def _streamed_sync(
    run: RunContext | AsyncRunContext,
    op: Operation[T],
    key: str,
    digest: str,
    stream: Callable[[], Iterator[E]],
    result_of: Callable[[E], T | None],
    spent: Callable[[], Sequence[Usage]] | None,
) -> Iterator[E]:
    # A cancel or a takeover: stop before the stream is paid for (an async run's claim is
    # never deferred, so only a sync run may have one to send first).
    if isinstance(run, RunContext):
        run._ready()
    else:
        run._execution.check_live()
    if op.step_policy.spends:
        with blocking_run(run) as sync_run:
            sync_run.check_budget(key)
    events = stream()
    settled = False  # checkpointed, or its failure recorded: nothing more to write
    try:
        while True:
            try:
                event = next(events)
            except StopIteration:
                break
            except Exception as exc:
                settled = True
                failure, rows = _stream_failure(op, exc, spent)
                with blocking_run(run) as sync_run:
                    if failure is None:
                        _ledger_anyway(sync_run, key, rows)
                    else:
                        _save_sync(sync_run, op, key, digest, failure, rows)
                raise
            result = result_of(event)
            if result is not None:
                settled = True
                with blocking_run(run) as sync_run:
                    _save_sync(sync_run, op, key, digest, op.dump(result), _usage_of(op, result))
            yield event
    except GeneratorExit:
        if not settled:  # stopped by its consumer
            _spent_sync(run, key, spent)
        raise
    finally:
        # Stopped early: the framework's stream is closed now, not when it is collected.
        close = getattr(events, "close", None)
        if close is not None:
            close()
    if not settled:  # ended without its completing event
        _spent_sync(run, key, spent)


def _save_sync(
    run: RunContext,
    op: Operation[T],
    key: str,
    digest: str,
    dumped: Any,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    try:
        run.save_checkpoint(key, digest, dumped, policy=op.step_policy, usage=rows)
    except (RunCancelled, LeaseLost):
        _ledger_anyway(run, key, rows)
        raise


def _spent_sync(
    run: RunContext | AsyncRunContext, key: str, spent: Callable[[], Sequence[Usage]] | None
) -> None:
    rows = _spent_rows(spent)
    if rows:  # most streams report usage last: an early stop usually has none to write
        with blocking_run(run) as sync_run:
            _ledger_anyway(sync_run, key, rows)


def _usage_of(op: Operation[T], result: T) -> list[dict[str, Any]]:
    return [row.fields() for row in op.usage(result)] if op.usage is not None else []


def _spent_rows(spent: Callable[[], Sequence[Usage]] | None) -> list[dict[str, Any]]:
    return [row.fields() for row in spent()] if spent is not None else []


def _stream_failure(
    op: Operation[Any], exc: Exception, spent: Callable[[], Sequence[Usage]] | None
) -> tuple[Any, list[dict[str, Any]]]:
    """What a stream that raised ``exc`` leaves: its stored failure (None when the operation
    does not record ``exc``) and the ledger rows of the usage it reported before failing."""
    rows = _spent_rows(spent)
    if op.errors is None or not op.errors.records(exc):
        return None, rows
    return {ERROR_KEY: op.errors.dump(exc)}, rows


def durable_call_sync(
    op: Operation[T],
    call: Callable[[], T],
    *,
    digest: str,
    identity: str | None = None,
    run: RunContext | AsyncRunContext | None = None,
    log: LogOf[T] | None = None,
) -> T:
    """``durable_call`` for a sync call (a framework's sync API or callbacks)."""
    run = run if run is not None else current_run()
    if run is None:
        return call()
    key = run.next_key(op.key_name(identity))
    value = replayed(run, op, key, digest)
    if value is not MISSING:
        return value
    outcome: Outcome[T] = Outcome()

    def body() -> Any:
        try:
            result = call()
        except Exception as exc:
            if op.errors is None or not op.errors.records(exc):
                # Not an outcome, so no checkpoint; what it used before failing was paid for.
                rows = _failed_usage(op, exc)
                if rows:
                    with blocking_run(run) as sync_run:
                        _ledger_anyway(sync_run, key, rows)
                raise
            return outcome.failed(op, exc)
        return outcome.stored(op, result)

    with blocking_run(run) as sync_run:
        try:
            sync_run.run_step(
                key,
                body,
                input_hash=digest,
                policy=op.step_policy,
                usage=lambda _: outcome.usage_rows(op),
                log=lambda _: outcome.log_entries(log),
            )
        except (RunCancelled, LeaseLost) as exc:
            if spent_anyway(exc, outcome):
                _ledger_anyway(sync_run, key, outcome.usage_rows(op))
            raise
    return outcome.result()


def _ledger_anyway(run: RunContext, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """The usage of a call that has no checkpoint to go with (see ``_ledger_anyway_async``)."""
    for fields in rows:
        run._db.record_usage(run._usage_row(key, fields))


def blocking_run(run: RunContext | AsyncRunContext) -> AbstractContextManager[RunContext]:
    """``with blocking_run(run) as sync_run:`` a sync context on ``run`` for sync code: the run
    itself, or, for an async run, a sync view writing through a connection of its own (a
    framework's sync callbacks inside an async workflow)."""
    if isinstance(run, RunContext):
        return nullcontext(run)
    return _BlockingView(run)


class _BlockingView(AbstractContextManager[RunContext]):
    # Only steps, checkpoints, usage and events go through the view: they use the execution
    # and the connection, never the client (which is async here).
    def __init__(self, run: AsyncRunContext) -> None:
        self._run = run
        self._cm: Any = None

    def __enter__(self) -> RunContext:
        self._cm = self._run._client._blocking_store().connection()
        db = self._cm.__enter__()
        client: Any = self._run._client
        return RunContext(client, self._run._execution, db, self._run.input)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
