"""A remote step's resume contract, read from the ``options`` the SDKs send (the v0.7 rules),
and the mapping between the protocol's resume decisions and this project's."""

from __future__ import annotations

from typing import Any

__all__ = ["classify", "normalize", "to_project", "to_protocol"]

# Protocol decision → this project's ResumeDecision (stored on the step).
_TO_PROJECT = {
    "auto_retry": "failed_retryable",
    "safe_replay": "safe_replay",
    "manual_review": "manual_review",
    "fail_hard": "failed",
}
_TO_PROTOCOL = {v: k for k, v in _TO_PROJECT.items()}
DECISIONS = tuple(_TO_PROJECT)


def to_project(decision: str) -> str:
    return _TO_PROJECT[decision]


def to_protocol(decision: str | None) -> str | None:
    return None if decision is None else _TO_PROTOCOL.get(decision, decision)


def _infer_replay(side_effects: list[str], keyed: bool) -> str:
    if not side_effects or all(effect == "read" for effect in side_effects):
        return "auto"
    return "auto" if keyed else "manual"


def normalize(options: Any) -> dict[str, Any]:
    """``{sideEffects, idempotencyKey, replay, checkpointInvariant, verifiedBy, credentials}``."""
    opts: dict[str, Any] = options if isinstance(options, dict) else {}
    legacy_raw = opts.get("sideEffect")
    legacy: str = legacy_raw if isinstance(legacy_raw, str) else "none"
    raw = opts.get("sideEffects")
    if isinstance(raw, list):
        side_effects = [e for e in raw if isinstance(e, str) and e]
    else:
        side_effects = [legacy] if legacy != "none" else []
    key = opts.get("idempotencyKey") if isinstance(opts.get("idempotencyKey"), str) else None
    replay = opts.get("replay")
    if replay not in ("auto", "manual", "never"):
        replay = {"retry": "auto", "review": "manual", "fail": "never"}.get(
            str(opts.get("onAmbiguousFailure")), _infer_replay(side_effects, key is not None)
        )
    credentials = opts.get("credentials")
    return {
        "sideEffects": side_effects,
        "idempotencyKey": key,
        "replay": replay,
        "checkpointInvariant": opts.get("checkpointInvariant"),
        "verifiedBy": opts.get("verifiedBy"),
        "credentials": credentials if isinstance(credentials, list) else [],
    }


def classify(options: Any, retryable: bool) -> str:
    """The protocol decision for a failed step when the worker did not give one."""
    if retryable:
        return "auto_retry"
    replay = normalize(options)["replay"]
    if replay == "manual":
        return "manual_review"
    if replay == "auto":
        return "safe_replay"
    return "fail_hard"
