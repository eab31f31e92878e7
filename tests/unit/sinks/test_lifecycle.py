"""Who manages the generations: the ILM policy body and the ILM/core decision (pure, with an
in-memory double of the two backend calls detection makes)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.sinks.generations import rollover_conditions
from pipeline.sinks.lifecycle import (
    Lifecycle,
    choose_manager,
    detect,
    ilm_policy,
    ilm_running,
    install_policy,
    policy_name,
    with_lifecycle,
)


class IlmDouble:
    """The two lifecycle calls of a backend, answered from memory."""

    engine = "elasticsearch"

    def __init__(self, status: dict[str, Any] | None) -> None:
        self.status = status
        self.asked = 0
        self.policies: dict[str, dict[str, Any]] = {}

    async def ilm_status(self) -> dict[str, Any] | None:
        self.asked += 1
        return self.status

    async def put_ilm_policy(self, name: str, body: dict[str, Any]) -> None:
        self.policies[name] = body


def test_policy_rolls_over_by_the_same_limits_and_deletes_only_with_retention() -> None:
    settings = Settings(
        index_rollover_max_primary_shard_size="10gb",
        index_rollover_max_docs=5000,
        index_rollover_max_age="7d",
    )
    keep = ilm_policy(rollover_conditions(settings), None)["policy"]["phases"]
    assert keep == {
        "hot": {
            "min_age": "0ms",
            "actions": {
                "rollover": {"max_primary_shard_size": "10gb", "max_docs": 5000, "max_age": "7d"}
            },
        }
    }
    phases = ilm_policy({"max_docs": 10}, 365)["policy"]["phases"]
    assert phases["delete"] == {"min_age": "365d", "actions": {"delete": {}}}
    # ILM takes whole units: a fraction of a day becomes hours, never rounded to 0.
    assert ilm_policy({"max_docs": 10}, 0.5)["policy"]["phases"]["delete"]["min_age"] == "12h"
    assert ilm_policy({"max_docs": 10}, 0.001)["policy"]["phases"]["delete"]["min_age"] == "1h"


@pytest.mark.parametrize(
    ("status", "running"),
    [
        (None, False),
        ({}, False),
        ({"operation_mode": "RUNNING"}, True),
        ({"operation_mode": "STOPPING"}, False),
        ({"operation_mode": "STOPPED"}, False),
    ],
)
def test_only_a_running_ilm_counts(status: dict[str, Any] | None, running: bool) -> None:
    assert ilm_running(status) is running
    assert choose_manager(Settings(), status) == ("ilm" if running else "core")
    # NEWSWIRE_INDEX_LIFECYCLE=core keeps Newswire in charge whatever the cluster has.
    assert choose_manager(Settings(index_lifecycle="core"), status) == "core"


def test_template_names_the_policy_and_keeps_its_own_settings() -> None:
    template = {"index_patterns": ["a-*"], "template": {"settings": {"index": {"x": 1}}}}
    out = with_lifecycle(template, "a")
    assert out["template"]["settings"]["index"] == {
        "x": 1,
        "lifecycle": {"name": policy_name("a"), "rollover_alias": "a"},
    }
    assert template["template"]["settings"]["index"] == {"x": 1}  # not changed in place
    bare = with_lifecycle({"index_patterns": ["b-*"]}, "b")
    assert bare["template"]["settings"]["index"]["lifecycle"]["rollover_alias"] == "b"


async def test_detect_asks_the_cluster_and_core_never_asks() -> None:
    alias = "news"
    running = IlmDouble({"operation_mode": "RUNNING"})
    found = await detect(running, Settings(index_alias=alias))  # type: ignore[arg-type]
    assert found == Lifecycle("ilm", policy_name(alias))
    absent = IlmDouble(None)  # the local build, or OpenSearch (ISM, not ILM)
    assert await detect(absent, Settings(index_alias=alias)) == Lifecycle("core")  # type: ignore[arg-type]
    forced = IlmDouble({"operation_mode": "RUNNING"})
    assert await detect(forced, Settings(index_lifecycle="core")) == Lifecycle("core")  # type: ignore[arg-type]
    assert forced.asked == 0


async def test_install_policy_puts_the_settings_limits_under_the_alias_name() -> None:
    settings = Settings(index_alias="news", index_retention_days=30, index_rollover_max_docs=9)
    double = IlmDouble({"operation_mode": "RUNNING"})
    name = await install_policy(double, settings, rollover_conditions(settings))  # type: ignore[arg-type]
    assert name == "news-lifecycle"
    phases = double.policies[name]["policy"]["phases"]
    assert phases["hot"]["actions"]["rollover"]["max_docs"] == 9
    assert phases["delete"]["min_age"] == "30d"


def test_core_path_commands_stand_down_with_a_reason_under_ilm() -> None:
    assert Lifecycle("core").refusal("rollover") is None
    message = Lifecycle("ilm", "news-lifecycle").refusal("rollover")
    assert message is not None
    assert "ILM manages this alias" in message and "news-lifecycle" in message
