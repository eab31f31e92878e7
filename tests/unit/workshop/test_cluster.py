"""The local cluster's layout without servers (``stack up --nodes N``): ports, KRaft voters,
replication, search discovery, the servers a cluster stack is made of, the record of N."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import StackError
from pipeline.settings import Settings
from workshop.stack import LocalStack
from workshop.stack.cluster import (
    cluster_ports,
    forget_nodes,
    kafka_members,
    quorum_voters,
    record_nodes,
    recorded_nodes,
    search_members,
)
from workshop.stack.kafka import KafkaConfig, render_server_properties
from workshop.stack.manager import ServiceStatus, StackStatus
from workshop.stack.search import node_settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, _, value in pairs}


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(home=tmp_path, ner_backend="spacy", **extra)  # type: ignore[arg-type]


def test_default_ports_of_three_nodes_interleave_without_clashing(tmp_path: Path) -> None:
    layout = cluster_ports(_settings(tmp_path), 3)
    assert [n.kafka for n in layout] == [19092, 19094, 19096]
    assert [n.controller for n in layout] == [19093, 19095, 19097]
    assert [n.search for n in layout] == [19200, 19201, 19202]
    assert [n.transport for n in layout] == [19300, 19301, 19302]


def test_clashing_ports_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    clash = _settings(tmp_path, kafka_port=19092, kafka_controller_port=19094)
    with pytest.raises(StackError, match=r"clash.*19094"):
        cluster_ports(clash, 3)
    assert len(cluster_ports(clash, 1)) == 1  # one node: no neighbour to clash with
    for nodes in (0, 10):
        with pytest.raises(StackError, match="1 to 9 nodes"):
            cluster_ports(_settings(tmp_path), nodes)


def test_brokers_form_a_static_three_voter_quorum_with_rf3_min_isr2(tmp_path: Path) -> None:
    layout = cluster_ports(_settings(tmp_path), 3)
    assert quorum_voters(layout) == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    members = kafka_members(layout)
    assert [m.node_id for m in members] == [1, 2, 3]
    second = members[1]
    props = _props(
        render_server_properties(
            KafkaConfig(
                19094, 19095, tmp_path, node_id=2, voters=second.voters,
                replication=second.replication, min_insync=second.min_insync,
            )
        )
    )  # fmt: skip
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == quorum_voters(layout)
    assert "controller.quorum.bootstrap.servers" not in props
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "3", key
    for key in (
        "min.insync.replicas",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "2", key


def test_two_nodes_replicate_twice_and_need_one_in_sync(tmp_path: Path) -> None:
    members = kafka_members(cluster_ports(_settings(tmp_path), 2))
    assert {(m.replication, m.min_insync) for m in members} == {(2, 1)}


def test_one_node_keeps_its_standalone_quorum_and_single_copies(tmp_path: Path) -> None:
    props = _props(render_server_properties(KafkaConfig(9092, 9093, tmp_path)))
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props
    assert props["default.replication.factor"] == props["min.insync.replicas"] == "1"


def test_search_nodes_discover_each_other_on_loopback(tmp_path: Path) -> None:
    layout = cluster_ports(_settings(tmp_path), 3)
    members = search_members(layout)
    third = node_settings(
        http_port=19202, transport_port=19302, data_dir=tmp_path, logs_dir=tmp_path,
        member=members[2],
    )  # fmt: skip
    assert third["node.name"] == "newswire-local-3"
    assert "discovery.type" not in third
    assert third["discovery.seed_hosts"] == "127.0.0.1:19300,127.0.0.1:19301,127.0.0.1:19302"
    assert third["cluster.initial_master_nodes"] == (
        "newswire-local-1,newswire-local-2,newswire-local-3"
    )
    assert third["network.host"] == "127.0.0.1"
    assert third["cluster.name"] == "newswire-local"


def test_a_cluster_stack_has_numbered_servers_with_their_own_folders(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path), nodes=3)
    names = [server.name for server in stack.servers]
    assert names == [
        "kafka-1", "kafka-2", "kafka-3", "elasticsearch-1", "elasticsearch-2", "elasticsearch-3",
    ]  # fmt: skip
    assert [k.port for k in stack.kafkas] == [19092, 19094, 19096]
    assert [n.port for n in stack.searches] == [19200, 19201, 19202]
    folders = {s.pid_file for s in stack.servers} | {k.data_dir for k in stack.kafkas}
    folders |= {n.data_dir for n in stack.searches}
    assert len(folders) == 12  # no two servers share a pid file or a data folder
    # one cluster id for every broker (formatting each with its own would split them)
    assert len({k.cluster_id_file for k in stack.kafkas}) == 1
    assert {n.engine for n in stack.searches} == {"elasticsearch"}
    markers = {s.marker_for() for s in stack.servers}
    assert len(markers) == 6


def test_one_node_stack_keeps_its_names(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path))
    assert [s.name for s in stack.servers] == ["kafka", "elasticsearch"]
    assert stack.kafka.data_dir == tmp_path.resolve() / "kafka" / "data"


def test_status_finds_the_first_broker_and_node_of_a_cluster(tmp_path: Path) -> None:
    def service(name: str) -> ServiceStatus:
        return ServiceStatus(name, True, True, 1, "9", "e", 1, tmp_path, "ok")

    status = StackStatus(tmp_path, tuple(service(n) for n in ("kafka-1", "elasticsearch-1")))
    assert status.kafka.name == "kafka-1"
    assert status.search.name == "elasticsearch-1"
    assert status.search_engine == "elasticsearch"


def test_the_node_count_is_remembered_until_down(tmp_path: Path) -> None:
    assert recorded_nodes(tmp_path) == 1
    record_nodes(tmp_path, 3)
    assert recorded_nodes(tmp_path) == 3
    forget_nodes(tmp_path)
    assert recorded_nodes(tmp_path) == 1
    (tmp_path / "cluster.json").write_text("{not json")
    assert recorded_nodes(tmp_path) == 1


def test_a_secure_listener_is_refused_on_a_cluster(tmp_path: Path) -> None:
    from workshop.stack.kafka import SecureListener

    secure = SecureListener(port=19099, keystore=tmp_path, truststore=tmp_path)
    with pytest.raises(StackError, match="SASL_SSL"):
        LocalStack(_settings(tmp_path), nodes=3, kafka_secure=secure)


def test_status_json_of_a_cluster_names_both_versions(tmp_path: Path) -> None:
    from pipeline.cli.local import status_json

    def service(name: str, version: str) -> ServiceStatus:
        return ServiceStatus(name, True, True, 1, version, "e", 1, tmp_path, "ok")

    names = ("kafka-1", "kafka-2", "elasticsearch-1", "elasticsearch-2")
    status = StackStatus(
        tmp_path, tuple(service(n, "4.1.1" if "kafka" in n else "9.5.3") for n in names)
    )
    data = status_json(status)
    assert (data["kafka_version"], data["search_version"]) == ("4.1.1", "9.5.3")
    assert [s["service"] for s in data["services"]] == list(names)


def test_a_replaced_search_node_is_the_one_started(tmp_path: Path) -> None:
    """A test's own node class (security on) assigned to ``stack.search`` is what starts."""
    from workshop.stack.elasticsearch import ElasticsearchNode

    class Secured(ElasticsearchNode):
        pass

    stack = LocalStack(_settings(tmp_path), services=("search",))
    stack.search = Secured(stack.settings, stack.home, "9.5.3")
    assert [type(s) for s in stack.servers] == [Secured]
