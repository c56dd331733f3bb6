"""Workflows run in a thread, the way a worker process would run them while Studio watches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tidebase import RunContext, Tidebase

__all__ = ["Background", "Hold", "run_in_thread"]


class Background:
    """``tide.run(...)`` on a thread: ``result()`` joins it and returns or re-raises."""

    def __init__(
        self,
        tide: Tidebase,
        workflow: str,
        fn: Callable[[RunContext, Any], Any],
        run_id: str,
        input: Any,
    ) -> None:
        self.run_id = run_id
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, args=(tide, workflow, fn, input), name=f"run-{run_id}", daemon=True
        )
        self._thread.start()

    def _main(
        self, tide: Tidebase, workflow: str, fn: Callable[[RunContext, Any], Any], input: Any
    ) -> None:
        try:
            self._value = tide.run(workflow, fn, run_id=self.run_id, input=input)
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = 30) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"run {self.run_id} did not finish in {timeout}s"
        if self._error is not None:
            raise self._error
        return self._value


def run_in_thread(
    tide: Tidebase,
    workflow: str,
    fn: Callable[[RunContext, Any], Any],
    *,
    run_id: str,
    input: Any = None,
) -> Background:
    return Background(tide, workflow, fn, run_id, input)


class Hold:
    """A step body that signals ``entered`` and blocks until the test calls ``release()``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()

    def __call__(self) -> bool:
        self.entered.set()
        return self._release.wait(30)

    def release(self) -> None:
        self._release.set()
