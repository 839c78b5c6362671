"""JSON shapes of the answers. Every model version carries its state and the actions the
core enables for it (`lifecycle`), computed for a whole list at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..lifecycle import VersionState, enabled_actions, unavailable_actions, version_states
from ..repository import ModelDetails, ModelRepository, ModelSummary, ModelVersion, Page

GONE = VersionState(registered=False, deployed=False)


def _with_state(record: dict[str, Any], state: VersionState, *, gone: bool = False) -> dict:
    return {
        **record,
        "registered": state.registered,
        "deployed": state.deployed,
        # a deleted version offers nothing any more
        "actions": [] if gone else [action.value for action in enabled_actions(state)],
        # the others, greyed with the reason
        "unavailable": []
        if gone
        else [{"action": a.value, "reason": why} for a, why in unavailable_actions(state)],
    }


def versions(repository: ModelRepository, found: Sequence[ModelVersion]) -> list[dict[str, Any]]:
    states = version_states(repository, [(v.name, v.version) for v in found])
    return [_with_state(v.to_dict(), state) for v, state in zip(found, states, strict=True)]


def version(repository: ModelRepository, found: ModelVersion) -> dict[str, Any]:
    return versions(repository, [found])[0]


def deleted_version(found: ModelVersion) -> dict[str, Any]:
    return _with_state(found.to_dict(), GONE, gone=True)


def model(repository: ModelRepository, details: ModelDetails) -> dict[str, Any]:
    return {**details.to_dict(), "versions": versions(repository, details.versions)}


def deleted_model(details: ModelDetails) -> dict[str, Any]:
    return {**details.to_dict(), "versions": [deleted_version(v) for v in details.versions]}


def models_page(repository: ModelRepository, page: Page[ModelSummary]) -> dict[str, Any]:
    """A page of the model list; each model with the state and actions of its latest version
    (the sidebar's badges and Actions menu)."""
    states = version_states(repository, [(m.name, m.latest_version) for m in page.items])
    return {
        **page.to_dict(),
        "items": [
            _with_state(summary.to_dict(), state)
            for summary, state in zip(page.items, states, strict=True)
        ],
    }
