"""Who rolls the alias over and retires old generations: the cluster's ILM, or Newswire.

Where the cluster runs Elasticsearch's index lifecycle management (``GET _ilm/status``
answers with operation mode ``RUNNING``), ``setup`` puts an ILM policy with the same limits
as the core-API path (hot phase: rollover at ``NEWSWIRE_INDEX_ROLLOVER_MAX_*``; a delete
phase when ``NEWSWIRE_INDEX_RETENTION_DAYS`` is set) and attaches it to the article
template (``index.lifecycle.name`` and ``index.lifecycle.rollover_alias``) and to the live
write index. The worker's own rollover check and ``newswire index rollover/retire`` then
stand down, so the two never roll over or delete the same alias. Where ILM is absent (the
local integ-test build, OpenSearch, which has ISM instead, or a stopped ILM) the core-API
path of :mod:`pipeline.sinks.generations` does the same work.

One difference is documented, not hidden: ILM's delete phase counts the age of a
generation from its rollover, while ``newswire index retire`` looks at the newest article a
generation holds (``fetched_at``). A generation whose articles were revised long after its
rollover is deleted earlier by ILM than by ``retire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

Manager = Literal["ilm", "core"]


# ----------------------------------------------------------------------------- pure


def policy_name(alias: str) -> str:
    """The ILM policy Newswire puts for ``alias``."""
    return f"{alias}-lifecycle"


def ilm_running(status: Mapping[str, Any] | None) -> bool:
    """Whether a ``GET _ilm/status`` answer says ILM runs (``None``: no ILM at all).

    ``STOPPING``/``STOPPED`` count as absent: a stopped ILM rolls nothing over, so the
    core path must go on doing it."""
    if not status:
        return False
    return str(status.get("operation_mode", "")).upper() == "RUNNING"


def choose_manager(settings: Settings, status: Mapping[str, Any] | None) -> Manager:
    """``ilm`` when the setting allows it and ILM runs; ``core`` otherwise."""
    if settings.index_lifecycle == "core":
        return "core"
    return "ilm" if ilm_running(status) else "core"


def _days(value: float) -> str:
    """ILM's ``min_age`` for ``value`` days (whole hours: ILM takes no fractions)."""
    hours = max(1, round(value * 24))
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def ilm_policy(conditions: Mapping[str, Any], retention_days: float | None) -> dict[str, Any]:
    """The ILM policy body: rollover on ``conditions`` in the hot phase, then a delete phase
    ``retention_days`` after rollover when retention is set (no delete phase otherwise:
    keep everything, as the core path does by default)."""
    phases: dict[str, Any] = {
        "hot": {"min_age": "0ms", "actions": {"rollover": dict(conditions)}},
    }
    if retention_days is not None:
        phases["delete"] = {"min_age": _days(retention_days), "actions": {"delete": {}}}
    return {
        "policy": {
            "phases": phases,
            "_meta": {"managed_by": "newswire", "description": "article index generations"},
        }
    }


def lifecycle_settings(alias: str) -> dict[str, Any]:
    """Index settings that hand a generation of ``alias`` to its ILM policy."""
    return {"index": {"lifecycle": {"name": policy_name(alias), "rollover_alias": alias}}}


def with_lifecycle(index_template: Mapping[str, Any], alias: str) -> dict[str, Any]:
    """``index_template`` with the lifecycle settings in its own ``template.settings`` (they
    win over the components' settings)."""
    template = dict(index_template.get("template") or {})
    settings = dict(template.get("settings") or {})
    index = dict(settings.get("index") or {})
    index.update(lifecycle_settings(alias)["index"])
    settings["index"] = index
    template["settings"] = settings
    return {**index_template, "template": template}


@dataclass(frozen=True)
class Lifecycle:
    """Who manages the alias's generations, and the policy when it is ILM."""

    manager: Manager
    policy: str | None = None

    def refusal(self, what: str) -> str | None:
        """The message a core-path command gives when ILM manages the alias (else None)."""
        if self.manager != "ilm":
            return None
        return (
            f"ILM manages this alias (policy {self.policy}): it does the {what} itself. "
            "Use the cluster's ILM APIs (GET _ilm/explain), or set "
            "NEWSWIRE_INDEX_LIFECYCLE=core and run setup to hand it back to Newswire"
        )


# ------------------------------------------------------------------------------ I/O


async def detect(backend: SearchBackend, settings: Settings) -> Lifecycle:
    """Who manages the alias: asks the cluster for ILM (never raises for its absence)."""
    status = None if settings.index_lifecycle == "core" else await backend.ilm_status()
    manager = choose_manager(settings, status)
    policy = policy_name(settings.index_alias) if manager == "ilm" else None
    log.info(
        "index.lifecycle",
        manager=manager,
        ilm=(status or {}).get("operation_mode", "absent"),
        engine=backend.engine,
    )
    return Lifecycle(manager, policy)


async def install_policy(
    backend: SearchBackend, settings: Settings, conditions: Mapping[str, Any]
) -> str:
    """Put the ILM policy (replacing Newswire's earlier one); returns its name."""
    name = policy_name(settings.index_alias)
    await backend.put_ilm_policy(name, ilm_policy(conditions, settings.index_retention_days))
    return name


__all__ = [
    "Lifecycle",
    "Manager",
    "choose_manager",
    "detect",
    "ilm_policy",
    "ilm_running",
    "install_policy",
    "lifecycle_settings",
    "policy_name",
    "with_lifecycle",
]
