"""Live state: versions, JSON merge patch, labeled snapshots, and no repeats on replay."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import LeaseLost, StateEmpty


def test_set_patch_get_save_and_versions(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> object:
        assert run.state.get() is None
        run.state.set({"phase": "research", "progress": 0.1, "meta": {"a": 1, "b": 2}})
        run.state.patch({"progress": 0.5, "meta": {"b": None, "c": 3}, "sources": ["x"]})
        run.state.save("after-research")
        run.state.patch({"phase": "writing"})
        return run.state.get()

    final = tide.run("wf", wf, run_id="s1")
    assert final == {
        "phase": "writing",
        "progress": 0.5,
        "meta": {"a": 1, "c": 3},
        "sources": ["x"],
    }
    versions = tide.runs.state_versions("s1")
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[1].labels == ["after-research"]
    assert versions[1].value == {
        "phase": "research",
        "progress": 0.5,
        "meta": {"a": 1, "c": 3},
        "sources": ["x"],
    }
    snapshots = tide.runs.state_versions("s1", labeled=True)
    assert [(v.version, v.labels) for v in snapshots] == [(2, ["after-research"])]
    assert tide.runs.state("s1") == final
    events = [e for e in tide.runs.events("s1") if e.type.startswith("state.")]
    assert [e.type for e in events] == ["state.updated"] * 2 + ["state.saved", "state.updated"]
    assert events[2].payload == {"version": 2, "label": "after-research"}


@pytest.mark.parametrize(
    ("start", "patch", "result"),
    [  # examples from RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], {"a": "c"}, {"a": "c"}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_patch_is_an_rfc_7386_merge_patch(
    tide: Tidebase, start: object, patch: dict, result: object
) -> None:
    def wf(run: RunContext, input: None) -> object:
        run.state.set(start)
        run.state.patch(patch)
        return run.state.get()

    assert tide.run("wf", wf, run_id="rfc") == result


def test_save_labels_without_changing_the_value(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> object:
        with pytest.raises(StateEmpty, match=r"state\.set or state\.patch first"):
            run.state.save("too-early")
        run.state.set({"n": 1})
        run.state.save("one")
        run.state.save("uno")
        run.state.save("one")  # saving a label twice does not duplicate it
        return run.state.get()

    assert tide.run("wf", wf, run_id="lbl") == {"n": 1}
    (version,) = tide.runs.state_versions("lbl")
    assert (version.version, version.value, version.labels) == (1, {"n": 1}, ["one", "uno"])


def test_versions_are_monotonic_and_no_patch_is_lost_under_concurrent_writers(
    tide: Tidebase,
) -> None:
    def wf(run: RunContext, input: None) -> object:
        run.state.set({})
        barrier = threading.Barrier(8)

        def writer(w: int) -> None:
            barrier.wait()
            for i in range(25):
                run.state.patch({f"w{w}": i, "last": w})

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return run.state.get()

    final = tide.run("wf", wf, run_id="conc")
    assert {k: v for k, v in final.items() if k != "last"} == {f"w{w}": 24 for w in range(8)}
    versions = tide.runs.state_versions("conc")
    assert [v.version for v in versions] == list(range(1, 202))
    updated = [e for e in tide.runs.events("conc") if e.type == "state.updated"]
    assert [e.payload["version"] for e in updated] == list(range(1, 202))  # log order = versions


def test_a_resumed_run_does_not_repeat_state_updates_of_its_workflow_body(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        run.state.set({"phase": "plan"})
        run.step("plan", lambda: "p")
        run.state.patch({"phase": "write"})
        if run.attempt == 1:
            raise RuntimeError("crash")
        run.state.patch({"phase": "done"})
        return "ok"

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="rp")
    assert tide.run("wf", wf, run_id="rp") == "ok"
    assert [v.value["phase"] for v in tide.runs.state_versions("rp")] == ["plan", "write", "done"]


def test_state_updates_inside_a_step_belong_to_its_real_executions(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        run.state.set({"tries": 0})

        def work() -> str:
            run.state.patch({"tries": run.attempt})
            if run.attempt == 1:
                raise RuntimeError("step crashed")
            return "ok"

        return run.step("work", work)

    with pytest.raises(Exception, match="step crashed"):
        tide.run("wf", wf, run_id="in-step")
    assert tide.run("wf", wf, run_id="in-step") == "ok"
    assert [v.value for v in tide.runs.state_versions("in-step")] == [
        {"tries": 0},
        {"tries": 1},
        {"tries": 2},
    ]


def test_a_worker_that_lost_its_lease_cannot_write_state(
    tide: Tidebase, tidebase_database_url: str
) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.state.set({"a": 1})
        take_over(tidebase_database_url, tide.settings.schema, run.run_id)
        run.state.patch({"a": 2})

    with pytest.raises(LeaseLost):
        tide.run("wf", wf, run_id="z")
    assert tide.runs.state("z") == {"a": 1}
    assert [v.version for v in tide.runs.state_versions("z")] == [1]


def take_over(url: str, schema: str, run_id: str) -> None:
    """What another worker's takeover does to the run row: a new owner token."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.runs SET owner_token = gen_random_uuid() WHERE run_id = %s").format(
                sql.Identifier(schema)
            ),
            (run_id,),
        )


async def test_async_state_and_seed_spellings(atide: AsyncTidebase) -> None:
    async def wf(run: AsyncRunContext, input: None) -> object:
        await run.state_set({"phase": "a", "n": 1})
        await run.state_patch({"n": 2})
        await run.state_save("two")
        await run.state.patch({"phase": "b"})
        return await run.state.get()

    assert await atide.run("wf", wf, run_id="as") == {"phase": "b", "n": 2}
    labeled = await atide.runs.state_versions("as", labeled=True)
    assert [(v.version, v.labels) for v in labeled] == [(2, ["two"])]


def test_a_version_carries_why_it_was_written(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.state.set({"draft": 1}, reason="first draft", importance="checkpoint")
        run.state.patch({"draft": 2}, metadata={"source": "editor"}, created_by="ana")
        run.state.set({"draft": 3})

    tide.run("wf", wf, run_id="noted")
    described = [
        (v.reason, v.importance, v.metadata, v.created_by)
        for v in tide.runs.state_versions("noted")
    ]
    assert described == [
        ("first draft", "checkpoint", None, None),
        (None, None, {"source": "editor"}, "ana"),
        (None, None, None, None),
    ]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ({"importance": "urgent"}, "importance must be one of transient, normal, checkpoint"),
        ({"reason": 3}, "state reason must be a str"),
        ({"metadata": ["a"]}, "state metadata must be a dict"),
    ],
)
def test_a_bad_note_is_named_and_writes_no_version(
    tide: Tidebase, note: dict[str, object], message: str
) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.state.set({"a": 1}, **note)  # type: ignore[arg-type]

    with pytest.raises((ValueError, TypeError), match=message):
        tide.run("wf", wf, run_id="bad-note")
    assert tide.runs.state_versions("bad-note") == []
