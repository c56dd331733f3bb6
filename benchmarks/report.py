"""Figures → JSON lines, a markdown table of ratios, and a chart (benchmarks/results/)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# figure: (unit, lower is better, what it is)
FIGURES: dict[str, tuple[str, bool, str]] = {
    "floor_insert_commit": ("µs", True, "one INSERT + COMMIT, raw psycopg"),
    "floor_select_pk": ("µs", True, "one SELECT by primary key, raw psycopg"),
    "step_first_exec_n100": ("µs/step", True, "no-op step, first execution, 100 in a workflow"),
    "step_first_exec_n1000": ("µs/step", True, "no-op step, first execution, 1000 in a workflow"),
    "replay_per_step_n100": ("µs/step", True, "resuming after a crash after 100 steps"),
    "replay_per_step_n1000": ("µs/step", True, "resuming after a crash after 1000 steps"),
    "workflow_empty": ("µs", True, "empty workflow, start + complete"),
    "throughput_c1": ("steps/s", False, "1 concurrent async workflow of 10 steps"),
    "throughput_c4": ("steps/s", False, "4 concurrent async workflows"),
    "throughput_c16": ("steps/s", False, "16 concurrent async workflows"),
    "throughput_c64": ("steps/s", False, "64 concurrent async workflows (pool of 16)"),
    "event_append_8_writers": ("events/s", False, "8 concurrent writers (DBOS: set_event)"),
    "state_patch_8_writers": ("patches/s", False, "8 concurrent patchers on one run"),
    "round_trips_per_first_step": ("statements", True, "per first-execution step (counted)"),
    "round_trips_per_replayed_run": ("statements", True, "per replayed 1000-step run (counted)"),
    "peak_rss_mb": ("MB", True, "peak RSS of the library's benchmark process"),
}

TARGETS = {
    "step_first_exec_n1000": "≤ 1.5 × floor, ≤ 0.15 × DBOS",
    "replay_per_step_n1000": "≤ 0.02 × DBOS",
    "workflow_empty": "≤ 2.6 × floor (1.3 × two INSERT+COMMIT), ≤ 0.25 × DBOS",
    "round_trips_per_first_step": "= 1",
    "round_trips_per_replayed_run": "≤ 2",
}


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    reps: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Row:
    figure: str
    tidebase: Stat | None
    dbos: Stat | None
    floor: Stat | None


def build(samples: dict[str, dict[str, list[float]]]) -> list[Row]:
    floor = {k: Stat.of(v) for k, v in samples.get("floor", {}).items()}
    rows = []
    for figure in FIGURES:
        t = samples.get("tidebase", {}).get(figure)
        d = samples.get("dbos", {}).get(figure)
        if figure.startswith("floor_"):
            rows.append(Row(figure, None, None, floor.get(figure)))
        elif t or d:
            rows.append(
                Row(
                    figure,
                    Stat.of(t) if t else None,
                    Stat.of(d) if d else None,
                    floor.get("floor_insert_commit")
                    if FIGURES[figure][0].startswith("µs")
                    else None,
                )
            )
    return rows


def write(
    rows: list[Row], machine: dict[str, Any], out: Path, pairs: dict[str, Any] | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "latest.jsonl").open("w") as f:
        for row in rows:
            for library, stat in (
                ("tidebase", row.tidebase),
                ("dbos", row.dbos),
                ("floor", row.floor),
            ):
                if stat is None or (library == "floor" and not row.figure.startswith("floor_")):
                    continue
                f.write(
                    json.dumps(
                        {
                            "figure": row.figure,
                            "library": library,
                            "unit": FIGURES[row.figure][0],
                            "median": round(stat.median, 3),
                            "min": round(stat.low, 3),
                            "max": round(stat.high, 3),
                            "reps": stat.reps,
                        }
                    )
                    + "\n"
                )
        if pairs is not None:
            f.write(json.dumps({"paired": pairs}) + "\n")
        f.write(json.dumps({"machine": machine}) + "\n")
    (out / "latest.md").write_text(markdown(rows, machine, pairs))
    _chart(rows, out / "latest.png")


def _ratio(a: Stat | None, b: Stat | None) -> str:
    if a is None or b is None or b.median == 0:
        return ""
    return f"{a.median / b.median:.3f}"


def _num(stat: Stat | None) -> str:
    if stat is None:
        return "—"
    return f"{stat.median:,.1f}" if stat.median < 100 else f"{stat.median:,.0f}"


def markdown(rows: list[Row], machine: dict[str, Any], pairs: dict[str, Any] | None = None) -> str:
    lines = [
        "# Tidebase vs DBOS Transact",
        "",
        f"Measured {machine['date']} on {machine['cpus']} CPUs, {machine['platform']}, "
        f"Python {machine['python']}, PostgreSQL {machine['postgres']} (same server for both, "
        f"fresh database each), medians of {machine['rounds']} rounds in one run "
        f"({machine['took_seconds']} s). Ratios below 1 favour Tidebase for times, above 1 for "
        "rates.",
        "",
        "| figure | unit | Tidebase | DBOS | Tidebase / DBOS | Tidebase / floor | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        unit, _, what = FIGURES[row.figure]
        if row.figure.startswith("floor_"):
            lines.append(f"| {row.figure} — {what} | {unit} | | | | {_num(row.floor)} | |")
            continue
        lines.append(
            f"| {row.figure} — {what} | {unit} | {_num(row.tidebase)} | {_num(row.dbos)} | "
            f"{_ratio(row.tidebase, row.dbos)} | {_ratio(row.tidebase, row.floor)} | "
            f"{TARGETS.get(row.figure, '')} |"
        )
    lines += [
        "",
        "What is timed: first-execution figures are a workflow's wall time / steps. Replay: a "
        "child process dies (os._exit) right after N checkpointed steps; for Tidebase the whole "
        "resumed `tide.run()` call (claim, one query loading N checkpoints, the replays, the "
        "completion), for DBOS the time inside the workflow it recovers on its own path "
        "(launch/recover), so DBOS's claim and completion are not counted. Throughput: async "
        "workflows of 10 no-op steps, both libraries capped at 16 connections. Round trips "
        "are counted at the single place Tidebase sends SQL.",
        "",
    ]
    if pairs is not None:
        lines += _paired(pairs)
    return "\n".join(lines)


# ratio in benchmarks.paired's summary: its target
PAIRED_TARGETS = {
    "tidebase / dbos, new run": "≤ 0.25",
    "tidebase / two floors, new run": "≤ 1.3",
    "tidebase / dbos, id given": "",
    "tidebase / two floors, id given": "",
    "dbos / two floors, new run": "",
}


def _paired(pairs: dict[str, Any]) -> list[str]:
    us = pairs["us"]
    lines = [
        "## The empty workflow in paired blocks",
        "",
        f"`benchmarks.paired`: {pairs['blocks']} blocks of {pairs['per_block']} empty workflows "
        "per library, each library in a process of its own for the whole measurement, taking "
        "turns block by block (the order rotates), so each block's ratio compares figures "
        f"measured within seconds of each other ({pairs['took_seconds']} s in all). Median and "
        "quartiles of the per-block ratios. A new run: no id given (`tide.run(name, fn)`, "
        "DBOS's `empty()`); id given: `run_id=`, DBOS's `SetWorkflowID`.",
        "",
        "| ratio | median | quartiles | target |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, target in PAIRED_TARGETS.items():
        r = pairs[name]
        lines.append(f"| {name} | {r['median']:.3f} | {r['q1']:.3f}–{r['q3']:.3f} | {target} |")
    lines += [
        "",
        "Median µs: "
        + ", ".join(f"{name} {figures['median']:,.0f}" for name, figures in us.items())
        + " (floor.insert: one `INSERT … ; COMMIT`).",
        "",
    ]
    return lines


def _chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (row.figure, row.tidebase.median / row.dbos.median)
        for row in rows
        if row.tidebase and row.dbos and row.dbos.median and not row.figure.startswith("peak")
    ]
    names = [p[0] for p in pairs]
    ratios = [p[1] for p in pairs]
    colors = [
        "#2a9d8f" if (r < 1) == FIGURES[n][1] else "#e76f51"
        for n, r in zip(names, ratios, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(pairs) + 1.2))
    ax.barh(names, ratios, color=colors)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("Tidebase / DBOS (log scale; green = Tidebase better)")
    ax.set_title("Tidebase vs DBOS Transact, same Postgres, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
