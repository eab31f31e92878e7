"""Local stack logic without servers: config rendering, pid files, JDK choice, Maven output."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import MissingDependencyError, StackError
from pipeline.settings import Settings
from workshop.stack import LocalStack, local_endpoints
from workshop.stack import maven as maven_mod
from workshop.stack.elasticsearch import (
    ElasticsearchNode,
    lucene_version,
    plugin_source_digest,
)
from workshop.stack.java import Jdk, find_jdk, java_feature, jdk_version
from workshop.stack.kafka import (
    KafkaConfig,
    KafkaServer,
    ScramUser,
    SecureListener,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
)
from workshop.stack.maven import (
    DEFAULT_POM,
    Artifacts,
    is_resolved,
    maven_command,
    progress_message,
    read_versions,
)
from workshop.stack.opensearch import (
    MODULES,
    OpenSearchNode,
    install_modules,
    render_jvm_options,
    render_plugin_descriptor,
)
from workshop.stack.process import (
    find_pids,
    is_alive,
    read_pid,
    remove_pid,
    start_detached,
    stop_process,
    tail_lines,
    wait_exit,
    write_pid,
)
from workshop.stack.search import node_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _props(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


# --------------------------------------------------------------------------- Kafka config


def test_server_properties_single_kraft_node(tmp_path: Path) -> None:
    props = _props(render_server_properties(KafkaConfig(9092, 9093, tmp_path / "data")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "4"
    assert props["offsets.topic.num.partitions"] == "4"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_server_properties_with_a_sasl_ssl_listener(tmp_path: Path) -> None:
    """The optional SASL_SSL listener: PEM stores, SCRAM, and the PLAINTEXT one kept."""
    secure = SecureListener(
        9094,
        tmp_path / "keystore.pem",
        tmp_path / "ca.pem",
        users=(ScramUser("alice", "pw", "SCRAM-SHA-512"),),
        client_auth="required",
    )
    props = _props(render_server_properties(KafkaConfig(9092, 9093, tmp_path, secure=secure)))
    listeners = "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SASL_SSL://127.0.0.1:9094"
    assert props["listeners"] == props["advertised.listeners"] == listeners
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert props["listener.name.sasl_ssl.ssl.client.auth"] == "required"
    assert "ScramLoginModule" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert ScramUser("alice", "pw", "SCRAM-SHA-512").format_arg() == (
        "SCRAM-SHA-512=[name=alice,password=pw]"
    )
    assert "pw" not in repr(ScramUser("alice", "pw"))
    with pytest.raises(StackError):
        ScramUser("alice", "p,w").format_arg()
    plain = _props(render_server_properties(KafkaConfig(9092, 9093, tmp_path)))
    assert "sasl.enabled.mechanisms" not in plain


def test_log4j2_config_logs_to_file_and_keeps_shutdown_lines(tmp_path: Path) -> None:
    text = render_log4j2(tmp_path)
    assert f"property.logs = {tmp_path}" in text
    assert "fileName = ${logs}/server.log" in text
    assert "shutdownHook = disable" in text


def test_cluster_id_has_kafka_format() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")


def test_kafka_server_paths_and_argv(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, kafka_port=1111, kafka_controller_port=2222, kafka_heap="256m"
    )
    server = KafkaServer(settings, tmp_path, "4.1.1")
    art = Artifacts(
        tmp_path / "dist", maven_mod.StackVersions("4.1.1", "9.5.3", "2.19.6", "2.24.3")
    )
    argv = server.argv(Jdk(Path("/jdk"), "17.0.1"), art)
    assert argv[0] == "/jdk/bin/java"
    assert "-Xmx256m" in argv and "-Xms256m" in argv
    assert argv[argv.index("-cp") + 1] == f"{tmp_path}/dist/kafka-4.1.1/*"
    assert " ".join(argv).endswith(server.marker_for())
    assert server.bootstrap == "127.0.0.1:1111"
    server.write_config()
    assert _props(server.properties_file.read_text())["listeners"].endswith(":2222")
    first = server.cluster_id()
    assert server.cluster_id() == first  # persisted


def test_kafka_refuses_data_formatted_for_another_controller_port(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_controller_port=2222)
    server = KafkaServer(settings, tmp_path, "4.1.1")
    server.write_config()
    (server.data_dir / "meta.properties").write_text("cluster.id=x\n")
    server.format_file.write_text(json.dumps({"controller_port": 3333}))
    art = Artifacts(
        tmp_path / "dist", maven_mod.StackVersions("4.1.1", "9.5.3", "2.19.6", "2.24.3")
    )
    with pytest.raises(StackError, match="3333"):
        server.format_storage(Jdk(Path("/jdk"), "17"), art)


# --------------------------------------------------------------------------- search node config


def test_jvm_options_drop_heap_and_make_paths_absolute(tmp_path: Path) -> None:
    original = "\n".join(
        [
            "-Xms1g",
            "-Xmx1g",
            "11-:-XX:+UseG1GC",
            "-XX:HeapDumpPath=data",
            "-XX:ErrorFile=logs/hs_err_pid%p.log",
            "9-:-Xlog:gc*,gc+age=trace,safepoint:file=logs/gc.log:utctime,pid,tags:filecount=32",
        ]
    )
    out = render_jvm_options(original, tmp_path / "d", tmp_path / "l")
    assert "-Xms1g" not in out and "-Xmx1g" not in out
    assert "11-:-XX:+UseG1GC" in out
    assert f"-XX:HeapDumpPath={tmp_path}/d" in out
    assert f"-XX:ErrorFile={tmp_path}/l/hs_err_pid%p.log" in out
    assert f"file={tmp_path}/l/gc.log" in out


def test_node_settings_single_node_loopback(tmp_path: Path) -> None:
    s = node_settings(http_port=1, transport_port=2, data_dir=tmp_path, logs_dir=tmp_path)
    assert s["discovery.type"] == "single-node"
    assert s["network.host"] == "127.0.0.1"
    assert (s["http.port"], s["transport.port"]) == ("1", "2")
    assert "plugins.security.disabled" not in s  # the integ-test-zip has no security plugin


def test_opensearch_environment_sets_heap_and_jdk(tmp_path: Path) -> None:
    server = OpenSearchNode(Settings(home=tmp_path, search_heap="768m"), tmp_path, "2.19.6")
    env = server.environment(Jdk(Path("/jdk17"), "17.0.1"))
    assert env["OPENSEARCH_JAVA_OPTS"] == "-Xms768m -Xmx768m"
    assert env["OPENSEARCH_JAVA_HOME"] == "/jdk17"
    assert env["OPENSEARCH_PATH_CONF"] == str(server.config_dir)
    assert server.marker_for() == f"-Dopensearch.path.conf={server.config_dir}"


def test_elasticsearch_environment_marks_the_launcher(tmp_path: Path) -> None:
    node = ElasticsearchNode(Settings(home=tmp_path, search_heap="512m"), tmp_path, "9.5.3")
    env = node.environment(Jdk(Path("/jdk25"), "25.0.1"))
    assert env["ES_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert env["ES_JAVA_HOME"] == "/jdk25"
    assert env["ES_PATH_CONF"] == str(node.config_dir)
    # The launcher JVM is the pid we keep: the marker in its command line ties it to us.
    assert env["CLI_JAVA_OPTS"] == node.marker_for()
    assert str(node.config_dir) in node.marker_for()
    assert node.java_range == (21, None)
    assert node.base == tmp_path / "elasticsearch"
    assert node.pid_file.name == "elasticsearch.pid"


def test_elasticsearch_config_turns_security_off_and_keeps_jvm_options(tmp_path: Path) -> None:
    dist = tmp_path / "dist" / "config"
    dist.mkdir(parents=True)
    (dist / "jvm.options").write_text("-XX:+UseG1GC\n")
    (dist / "log4j2.properties").write_text("status = error\n")
    node = ElasticsearchNode(Settings(home=tmp_path), tmp_path, "9.5.3")
    node.config_dir.mkdir(parents=True)
    node.write_engine_config(dist)
    assert "xpack.security.enabled: false" in (node.config_dir / "elasticsearch.yml").read_text()
    assert (node.config_dir / "jvm.options").read_text() == "-XX:+UseG1GC\n"
    assert (node.config_dir / "log4j2.properties").is_file()


def test_plugin_build_inputs(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "lucene-core-10.5.1.jar").write_bytes(b"")
    (lib / "lucene-analysis-common-10.5.1.jar").write_bytes(b"")
    assert lucene_version(tmp_path) == "10.5.1"
    with pytest.raises(StackError, match="lucene-core"):
        lucene_version(tmp_path / "nothing")
    source = tmp_path / "plugin"
    (source / "src").mkdir(parents=True)
    (source / "pom.xml").write_text("<project/>")
    (source / "src" / "A.java").write_text("class A {}")
    before = plugin_source_digest(source)
    assert plugin_source_digest(source) == before
    (source / "src" / "A.java").write_text("class A { int x; }")
    assert plugin_source_digest(source) != before  # a source change rebuilds the plugin


def test_plugin_descriptor_and_module_install(tmp_path: Path) -> None:
    spec = MODULES[0]
    text = render_plugin_descriptor(spec, "2.19.6")
    props = _props(text)
    assert props["name"] == "analysis-common"
    assert props["classname"] == "org.opensearch.analysis.common.CommonAnalysisPlugin"
    assert props["opensearch.version"] == "2.19.6"
    assert props["extended.plugins"] == ""
    art = Artifacts(tmp_path, maven_mod.StackVersions("4.1.1", "9.5.3", "2.19.6", "2.24.3"))
    art.opensearch_modules.mkdir(parents=True)
    (art.opensearch_modules / "analysis-common-2.19.6.jar").write_bytes(b"jar")
    assert install_modules(art) == ["analysis-common"]
    target = art.opensearch_home / "modules" / "analysis-common"
    assert (target / "analysis-common-2.19.6.jar").read_bytes() == b"jar"
    assert (target / "plugin-descriptor.properties").read_text() == text
    assert install_modules(art) == ["analysis-common"]  # idempotent


# --------------------------------------------------------------------------- Maven


def test_pom_versions() -> None:
    v = read_versions(DEFAULT_POM)
    assert v.kafka.startswith("4.")
    assert v.elasticsearch.startswith("9.")
    assert v.opensearch.startswith("2.19.")
    assert v.log4j.startswith("2.")


def test_maven_command_runs_the_executions_of_the_components(tmp_path: Path) -> None:
    art = Artifacts(tmp_path, read_versions(DEFAULT_POM))
    cmd = maven_command("mvn", DEFAULT_POM, art, ["kafka", "elasticsearch"])
    assert "-B" in cmd
    assert f"-Dnewswire.kafka.lib={art.kafka_lib}" in cmd
    assert cmd[-2:] == ["dependency:copy-dependencies@kafka", "dependency:unpack@elasticsearch"]
    cmd = maven_command("mvn", DEFAULT_POM, art, ["opensearch"])
    assert cmd[-2:] == ["dependency:unpack@opensearch", "dependency:copy@opensearch-modules"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[INFO] Downloading from central: https://repo.maven.apache.org/maven2/org/a/b/1/b-1.jar",
            "downloading b-1.jar",
        ),
        (
            "[INFO] Downloaded from central: https://r/x/opensearch-2.19.6.zip (56 MB at 1 MB/s)",
            "downloaded opensearch-2.19.6.zip (56 MB)",
        ),
        (
            "[INFO] --- maven-dependency-plugin:3.8.1:unpack (opensearch) @ newswire-local ---",
            "maven unpack (opensearch)",
        ),
        ("[ERROR] Failed to execute goal", "[ERROR] Failed to execute goal"),
        ("[INFO] BUILD SUCCESS", None),
        ("[ERROR] ", None),
    ],
)
def test_progress_message(line: str, expected: str | None) -> None:
    assert progress_message(line) == expected


def _fake_resolved(tmp_path: Path) -> Artifacts:
    art = Artifacts(tmp_path, read_versions(DEFAULT_POM))
    art.kafka_lib.mkdir(parents=True)
    art.kafka_jar.write_bytes(b"")
    (art.elasticsearch_home / "bin").mkdir(parents=True)
    (art.elasticsearch_home / "bin" / "elasticsearch").write_text("")
    (art.elasticsearch_home / "lib").mkdir()
    es_jar = art.elasticsearch_home / "lib" / f"elasticsearch-{art.versions.elasticsearch}.jar"
    es_jar.write_bytes(b"")
    return art


def test_resolve_is_a_no_op_when_markers_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = _fake_resolved(tmp_path)
    assert not is_resolved(art, DEFAULT_POM, "kafka")
    for component in ("kafka", "elasticsearch"):
        art.marker(component).write_text(
            json.dumps({"pom_sha256": maven_mod.pom_digest(DEFAULT_POM)})
        )
        assert is_resolved(art, DEFAULT_POM, component)
    assert not is_resolved(art, DEFAULT_POM, "opensearch")  # never resolved here
    monkeypatch.setattr("workshop.stack.maven.shutil.which", lambda _name: None)
    jdk = Jdk(Path("/jdk"), "17")
    assert maven_mod.resolve(DEFAULT_POM, tmp_path, jdk).kafka_lib == art.kafka_lib
    with pytest.raises(MissingDependencyError, match="apt-get install maven"):
        maven_mod.resolve(DEFAULT_POM, tmp_path, jdk, components=("opensearch",))
    art.kafka_jar.unlink()  # a missing file forces a new resolution
    with pytest.raises(MissingDependencyError, match="apt-get install maven"):
        maven_mod.resolve(DEFAULT_POM, tmp_path, jdk)


# --------------------------------------------------------------------------- Java


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return home


@pytest.mark.parametrize(
    ("version", "feature"), [("17.0.15", 17), ("25", 25), ("1.8.0_392", 8), ("21.0.1+12", 21)]
)
def test_java_feature(version: str, feature: int) -> None:
    assert java_feature(version) == feature


def test_elasticsearch_without_jdk_21_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workshop.stack.java.shutil.which", lambda _name: None)
    _fake_jdk(tmp_path, "j17", "17.0.15")
    with pytest.raises(MissingDependencyError) as info:
        find_jdk(21, None, purpose="elasticsearch 9.5.3", java_home="", jvm_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "Java 21+ for elasticsearch 9.5.3" in message and "temurin-25-jdk" in message


def test_find_jdk_prefers_fitting_java_home_then_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workshop.stack.java.shutil.which", lambda _name: None)
    j11 = _fake_jdk(tmp_path, "j11", "11.0.2")
    j17 = _fake_jdk(tmp_path, "j17", "17.0.15")
    j21 = _fake_jdk(tmp_path, "j21", "21.0.5")
    j25 = _fake_jdk(tmp_path, "j25", "25.0.3")
    assert jdk_version(j17) == "17.0.15"
    assert find_jdk(17, None, java_home="", jvm_dir=tmp_path).home == j25
    assert find_jdk(17, 21, java_home="", jvm_dir=tmp_path).home == j21
    assert find_jdk(17, None, java_home=str(j17), jvm_dir=tmp_path).home == j17
    # JAVA_HOME too old for the server: fall back to the newest fitting JDK.
    assert find_jdk(17, 21, java_home=str(j11), jvm_dir=tmp_path).home == j21
    with pytest.raises(MissingDependencyError, match="openjdk-17-jdk-headless"):
        find_jdk(17, 17, java_home="", jvm_dir=tmp_path / "none")
    with pytest.raises(MissingDependencyError, match="JDK 21"):
        find_jdk(26, None, java_home="", jvm_dir=tmp_path)


# --------------------------------------------------------------------------- processes


def test_pid_file_round_trip(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "x.pid"
    assert read_pid(pid_file) is None
    write_pid(pid_file, 4242)
    assert read_pid(pid_file) == 4242
    pid_file.write_text("garbage")
    assert read_pid(pid_file) is None
    remove_pid(pid_file)
    remove_pid(pid_file)  # tolerant
    assert not pid_file.exists()


def test_is_alive_checks_marker_and_dead_pids() -> None:
    me = os.getpid()
    assert is_alive(me)
    assert is_alive(me, marker="python")
    assert not is_alive(me, marker="no-such-marker-in-cmdline")
    assert not is_alive(None)
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    assert not is_alive(2**22 + 12345)


def test_detached_process_start_find_and_stop(tmp_path: Path) -> None:
    marker = f"newswire-unit-{tmp_path.name}"
    script = "import signal, sys, time\nwhile True: time.sleep(0.1)\n"
    pid = start_detached(
        [sys.executable, "-c", script, marker],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        out_file=tmp_path / "out.log",
    )
    try:
        assert is_alive(pid, marker)
        assert find_pids(marker) == [pid]
        assert os.getsid(pid) == pid  # own session: survives our process group
    finally:
        killed = stop_process(pid, timeout=5.0, marker=marker)
    assert not killed  # SIGTERM was enough
    assert not is_alive(pid, marker)  # exited and reaped: no zombie counts as alive
    assert find_pids(marker) == []
    assert "starting" in (tmp_path / "out.log").read_text()


def test_tail_lines(tmp_path: Path) -> None:
    f = tmp_path / "log"
    assert tail_lines(f) == []
    f.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_lines(f, 3) == ["line 97", "line 98", "line 99"]


# --------------------------------------------------------------------------- manager


def _idle_settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        search_port=_free_port(),
        search_transport_port=_free_port(),
    )


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    stack = LocalStack(_idle_settings(tmp_path))
    write_pid(stack.kafka.pid_file, 2**22 + 999)  # stale
    status = stack.status()
    assert not status.running and not status.healthy
    assert status.kafka.detail == "not running (stale pid file)"
    assert status.search.detail == "not running"
    assert status.kafka.version == read_versions(DEFAULT_POM).kafka
    assert status.to_dict()["services"][1]["name"] == "elasticsearch"
    assert status.to_dict()["search_engine"] == "elasticsearch"
    settings = _idle_settings(tmp_path).model_copy(update={"search_engine": "opensearch"})
    opensearch = LocalStack(settings)
    assert opensearch.status().search.name == "opensearch"
    only = LocalStack(_idle_settings(tmp_path), services=("search",))
    assert [s.name for s in only.status().services] == ["elasticsearch"]


def test_status_reports_foreign_process_on_port(tmp_path: Path) -> None:
    settings = _idle_settings(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.search_port))
        sock.listen()
        status = LocalStack(settings).status()
        assert not status.search.running
        assert "not this stack's" in status.search.detail
        with pytest.raises(StackError, match="already in use"):
            LocalStack(settings)._check_ports_free(LocalStack(settings).search)


def test_down_tolerates_nothing_running(tmp_path: Path) -> None:
    stack = LocalStack(_idle_settings(tmp_path))
    write_pid(stack.search.pid_file, 2**22 + 998)
    stack.down()
    assert not stack.search.pid_file.exists()


def test_local_endpoints_none_without_running_stack(tmp_path: Path) -> None:
    settings = _idle_settings(tmp_path)
    assert local_endpoints(settings) is None
    settings.home.mkdir(parents=True)
    (settings.home / "stack.json").write_text(json.dumps({"kafka_bootstrap": "x"}))
    assert local_endpoints(settings) is None  # file present, servers not


def test_startup_failure_raises_with_last_log_lines(tmp_path: Path) -> None:
    stack = LocalStack(_idle_settings(tmp_path))
    server = stack.kafka
    pid = start_detached(
        [sys.executable, "-c", "import sys; print('fatal: bad config'); sys.exit(3)"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        out_file=server.out_file,
    )
    write_pid(server.pid_file, pid)
    with pytest.raises(StackError, match="exited during startup") as info:
        stack._wait_healthy([(server, pid)], timeout=10)
    assert "fatal: bad config" in str(info.value)
    assert info.value.log_file == server.log_file
    assert not server.pid_file.exists()


def test_one_elasticsearch_version_for_stack_compose_and_kibana() -> None:
    """The local node, docker-compose.yml's default image tags and the Kibana objects' stated
    version are the one constant in deploy/local/pom.xml."""
    version = read_versions(DEFAULT_POM).elasticsearch
    root = DEFAULT_POM.parents[2]
    compose = (root / "docker-compose.yml").read_text(encoding="utf-8")
    defaults = re.findall(r"\$\{ELASTIC_VERSION:-([^}]+)\}", compose)
    assert defaults and set(defaults) == {version}
    assert f"ELASTIC_VERSION={version}" in compose
    kibana = (root / "deploy" / "kibana" / "README.md").read_text(encoding="utf-8")
    assert f"Kibana {version}" in kibana
    plugin_pom = (root / "deploy" / "local" / "analysis-english" / "pom.xml").read_text()
    assert f"<elasticsearch.version>{version}</elasticsearch.version>" in plugin_pom


def test_node_not_healthy_by_its_deadline_is_stopped_with_its_log_tail(tmp_path: Path) -> None:
    stack = LocalStack(_idle_settings(tmp_path))
    server = stack.kafka
    code = "import time; print('still warming up', flush=True); time.sleep(600)"
    pid = start_detached(
        [sys.executable, "-c", code, server.marker_for()],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        out_file=server.out_file,
    )
    write_pid(server.pid_file, pid)
    assert is_alive(pid, server.marker_for())
    with pytest.raises(StackError, match="not healthy after") as info:
        stack._wait_healthy([(server, pid)], timeout=1)
    assert "stopped" in str(info.value)
    assert "still warming up" in str(info.value)
    assert not wait_exit([pid], 5.0)  # gone (a moment to finish exiting after SIGTERM)
    assert not server.pid_file.exists()


def test_no_unprivileged_user_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root with no way to create the node's user, `stack up` says what to do."""
    from workshop.stack import users

    monkeypatch.setattr(users.os, "geteuid", lambda: 0)

    def missing(name: str) -> Any:
        raise KeyError(name)

    monkeypatch.setattr(users.pwd, "getpwnam", missing)
    monkeypatch.setattr(users.shutil, "which", lambda _name: None)
    with pytest.raises(StackError) as info:
        users.ensure_system_user("nw-no-such-user")
    message = str(info.value)
    assert "\n" not in message
    assert "refuses to run as root" in message and "useradd" in message
    monkeypatch.setattr(users.shutil, "which", lambda _name: "/bin/false")  # useradd fails
    with pytest.raises(StackError, match="creating the system user 'nw-no-such-user' failed"):
        users.ensure_system_user("nw-no-such-user")
