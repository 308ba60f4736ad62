"""When the pipeline's stages announce something: new data after ingest, a new champion after register."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NEW_DATA = "tradepipe-new-data"
CHAMPION = "tradepipe-champion"


def read_state(path: Path) -> dict[str, Any] | None:
    """The JSON document at ``path``, or None when it does not exist yet."""
    return json.loads(path.read_text()) if path.exists() else None


def content_hash(manifest: dict[str, Any]) -> str:
    """The bars' content hash recorded by ingest (``content_sha256``; ``sha256`` in manifests before it)."""
    return str(manifest.get("content_sha256") or manifest["sha256"])


def new_data(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    """The new-data event's extra when ingest changed the bars' content hash, else None."""
    if after is None or (before is not None and content_hash(before) == content_hash(after)):
        return None
    return {"sha256": content_hash(after), "rows": after["rows"], "source": after["source"]}


def champion_changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    """The champion event's extra when register made a new version champion, else None.

    DVC skips an unchanged register stage, leaving the old decision in place: only a new version counts.
    """
    if after is None or not after["promoted"]:
        return None
    if before is not None and before.get("agent_version") == after["agent_version"]:
        return None
    return {"agent_version": after["agent_version"], "predictor_version": after["predictor_version"]}


def decision_from_metrics(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """register's decision as its metrics file (metrics/register.json: numbers only) records it, e.g. in a DVC
    experiment, where reports/register.json is not kept; None without one."""
    if not metrics or "promoted" not in metrics:
        return None
    return {"promoted": bool(metrics["promoted"]), "agent_version": int(metrics.get("agent_version", 0)),
            "predictor_version": int(metrics.get("predictor_version", 0))}
