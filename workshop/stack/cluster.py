"""The layout of a local cluster (``newswire stack up --nodes N``): each node's ports, the
KRaft quorum voters, the search nodes' discovery, and the file that remembers N.

Pure except for the record file: the manager (workshop.stack.manager) turns the layout into
servers. Node ``i`` (0-based) takes the broker port ``kafka_port + 2i`` and controller port
``kafka_controller_port + 2i`` (the defaults 19092/19093 interleave: 19092, 19094, ... and
19093, 19095, ...), the search ports ``search_port + i`` and ``search_transport_port + i``
(Elasticsearch's own convention, 9200, 9201, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StackError
from pipeline.settings import Settings
from workshop.stack.kafka import ClusterMember
from workshop.stack.search import CLUSTER_NAME, SearchMember

HOST = "127.0.0.1"
NODES_FILE = "cluster.json"
#: A cluster's topics: three copies, an acks=all write needs two (one broker may be down).
CLUSTER_REPLICATION = 3
CLUSTER_MIN_INSYNC = 2
MAX_NODES = 9


@dataclass(frozen=True)
class NodePorts:
    """The four loopback ports of one cluster node (a broker and a search node)."""

    kafka: int
    controller: int
    search: int
    transport: int

    def all(self) -> tuple[int, ...]:
        return (self.kafka, self.controller, self.search, self.transport)


def cluster_ports(settings: Settings, nodes: int) -> tuple[NodePorts, ...]:
    """Every node's ports; StackError when N is out of range or two ports would clash."""
    if not 1 <= nodes <= MAX_NODES:
        raise StackError(f"a local cluster has 1 to {MAX_NODES} nodes, not {nodes}")
    layout = tuple(
        NodePorts(
            kafka=settings.kafka_port + 2 * i,
            controller=settings.kafka_controller_port + 2 * i,
            search=settings.search_port + i,
            transport=settings.search_transport_port + i,
        )
        for i in range(nodes)
    )
    ports = [port for node in layout for port in node.all()]
    clashes = sorted({port for port in ports if ports.count(port) > 1})
    if clashes:
        raise StackError(
            f"the ports of a {nodes}-node cluster clash ({', '.join(map(str, clashes))}): "
            "node i takes NEWSWIRE_KAFKA_PORT + 2i, NEWSWIRE_KAFKA_CONTROLLER_PORT + 2i, "
            "NEWSWIRE_SEARCH_PORT + i and NEWSWIRE_SEARCH_TRANSPORT_PORT + i; move them apart"
        )
    if any(not 0 < port < 65536 for port in ports):
        raise StackError(f"a {nodes}-node cluster's ports run past 65535")
    return layout


def quorum_voters(layout: tuple[NodePorts, ...]) -> str:
    """``controller.quorum.voters``: node ids 1..N at their controller ports."""
    return ",".join(f"{i}@{HOST}:{node.controller}" for i, node in enumerate(layout, start=1))


def kafka_members(layout: tuple[NodePorts, ...]) -> tuple[ClusterMember, ...]:
    """Each broker's membership: static voters, RF 3 / min ISR 2 (fewer nodes: all / 1)."""
    voters = quorum_voters(layout)
    replication = min(CLUSTER_REPLICATION, len(layout))
    min_insync = min(CLUSTER_MIN_INSYNC, max(1, replication - 1))
    return tuple(
        ClusterMember(node_id=i, voters=voters, replication=replication, min_insync=min_insync)
        for i in range(1, len(layout) + 1)
    )


def search_members(layout: tuple[NodePorts, ...]) -> tuple[SearchMember, ...]:
    """Each search node's name, every name (the first election) and the seed hosts."""
    names = tuple(f"{CLUSTER_NAME}-{i}" for i in range(1, len(layout) + 1))
    seeds = tuple(f"{HOST}:{node.transport}" for node in layout)
    return tuple(SearchMember(node_name=name, node_names=names, seed_hosts=seeds) for name in names)


def node_settings(settings: Settings, ports: NodePorts) -> Settings:
    """``settings`` with one node's ports, which the servers read."""
    return settings.model_copy(
        update={
            "kafka_port": ports.kafka,
            "kafka_controller_port": ports.controller,
            "search_port": ports.search,
            "search_transport_port": ports.transport,
        }
    )


def recorded_nodes(home: Path) -> int:
    """How many nodes ``stack up --nodes N`` started in ``home`` (1 when none recorded), so
    ``stack down`` and ``stack status`` find all of them."""
    try:
        data = json.loads((home.expanduser().resolve() / NODES_FILE).read_text("utf-8"))
        nodes = int(data["nodes"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1
    return nodes if 1 <= nodes <= MAX_NODES else 1


def record_nodes(home: Path, nodes: int) -> None:
    """Remember N for ``stack down``/``status`` (removed by ``forget_nodes`` on down)."""
    path = home.expanduser().resolve() / NODES_FILE
    if nodes == 1:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nodes": nodes}) + "\n", encoding="utf-8")


def forget_nodes(home: Path) -> None:
    (home.expanduser().resolve() / NODES_FILE).unlink(missing_ok=True)


def client_settings(settings: Settings, nodes: int) -> Settings:
    """``settings`` as a client of the cluster: every broker and node listed, and what
    ``setup`` gives Newswire's topics and index there (RF 3, min ISR 2, one replica)."""
    layout = cluster_ports(settings, nodes)
    replication = min(CLUSTER_REPLICATION, nodes)
    return settings.model_copy(
        update={
            "kafka_bootstrap": ",".join(f"{HOST}:{node.kafka}" for node in layout),
            "elasticsearch_url": ",".join(f"http://{HOST}:{node.search}" for node in layout),
            "topic_replication": replication,
            "topic_min_insync_replicas": min(CLUSTER_MIN_INSYNC, max(1, replication - 1)),
            "index_replicas": min(1, nodes - 1),
        }
    )
