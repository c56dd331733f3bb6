"""Step keys as a reader names them: without the branch segments (``#Task.run#2/``) that
concurrent tasks and threads add, which depend on how a framework schedules its work."""

from __future__ import annotations


def unbranched(key: str) -> str:
    return "/".join(part for part in key.split("/") if not part.startswith("#"))
