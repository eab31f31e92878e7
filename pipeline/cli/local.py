"""``newswire stack`` and ``newswire run``: the local stack, a development tool.

The only module of the runtime package that imports :mod:`workshop` (lazily, inside the
commands). The workshop is not in the Docker image: there these commands say so.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli.app import JsonOption, app, err, load_settings, out, print_json, stack_app
from pipeline.errors import ConfigError
from pipeline.settings import Settings

NOT_INSTALLED = (
    "the local stack is a development tool of a source checkout (the `workshop` package), "
    "not part of this installation: the Docker image holds the runtime only. Point "
    "NEWSWIRE_KAFKA_BOOTSTRAP and NEWSWIRE_ELASTICSEARCH_URL at your cluster instead"
)


def _require_workshop() -> None:
    """A clear error where the workshop is not installed (the Docker image)."""
    try:
        import workshop  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "workshop":
            raise
        raise ConfigError(NOT_INSTALLED) from None


def _stack(config: Settings, nodes: int | None = None) -> Any:
    """The local stack of ``config.home``: ``nodes`` brokers and search nodes, or as many
    as ``stack up --nodes`` last started there."""
    _require_workshop()
    from workshop.stack import LocalStack
    from workshop.stack.cluster import recorded_nodes

    count = nodes if nodes is not None else recorded_nodes(config.home)
    return LocalStack(config, progress=lambda line: err.print(f"[dim]{line}[/dim]"), nodes=count)


def status_table(status: Any) -> Table:
    table = Table(title="local stack")
    for column in ("service", "state", "version", "endpoint", "pid", "log"):
        table.add_column(column)
    for service in status.services:
        state = (
            "[green]up[/green]"
            if service.healthy
            else ("[yellow]starting[/yellow]" if service.running else "[red]down[/red]")
        )
        table.add_row(
            service.name,
            state,
            service.version or "",
            service.endpoint or "",
            str(service.pid or ""),
            str(service.log_file or ""),
        )
    return table


def status_json(status: Any) -> dict[str, Any]:
    """The engine and versions first, then one entry per server (a cluster's numbered)."""
    names = {s.name.rsplit("-", 1)[0] if s.name[-1:].isdigit() else s.name for s in status.services}
    return {
        "home": str(status.home),
        "healthy": status.healthy,
        "search_engine": status.search_engine,
        "search_version": status.search.version if status.search_engine else None,
        "kafka_version": status.kafka.version if "kafka" in names else None,
        "services": [
            {
                "service": s.name,
                "running": s.running,
                "healthy": s.healthy,
                "version": s.version,
                "endpoint": s.endpoint,
                "pid": s.pid,
                "log_file": str(s.log_file) if s.log_file else None,
            }
            for s in status.services
        ],
    }


@stack_app.command("up")
def stack_up(
    as_json: JsonOption = False,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            min=1,
            max=9,
            help="Brokers and search nodes: 3 runs a local cluster (KRaft quorum of 3, "
            "topics RF 3 / min ISR 2, three Elasticsearch nodes); stop the stack to change it.",
        ),
    ] = 1,
) -> None:
    """Start Apache Kafka and Elasticsearch (or OpenSearch); Maven downloads them once."""
    _check_nodes(load_settings(local_endpoints=False), nodes)
    status = _stack(load_settings(local_endpoints=False), nodes).up()
    print_json(status_json(status)) if as_json else out.print(status_table(status))


def _check_nodes(config: Settings, nodes: int) -> None:
    """Refuse to start N nodes over a running stack of another size (its servers would be
    left out of ``stack down``)."""
    _require_workshop()
    from workshop.stack.cluster import recorded_nodes

    running = recorded_nodes(config.home)
    if running != nodes and any(s.running for s in _stack(config, running).status().services):
        raise ConfigError(
            f"a {running}-node stack runs in {config.home}: `newswire stack down` first"
        )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local stack cleanly (SIGTERM, wait, then kill)."""
    _stack(load_settings(local_endpoints=False)).down()
    out.print("local stack stopped")


@stack_app.command("status")
def stack_status(as_json: JsonOption = False) -> None:
    """Whether each local service really answers."""
    status = _stack(load_settings(local_endpoints=False)).status()
    print_json(status_json(status)) if as_json else out.print(status_table(status))
    if not all(s.healthy for s in status.services):
        raise typer.Exit(3)


@app.command()
def run(
    keep_stack: Annotated[
        bool, typer.Option(help="Leave the local stack running after Ctrl-C.")
    ] = False,
) -> None:
    """The main job: local stack (if nothing is configured), setup, worker, poller, seeds."""
    _require_workshop()
    from workshop.run import run_all

    # Unresolved: the run decides itself whether it needs the local stack, then resolves.
    config = load_settings(local_endpoints=False)
    raise typer.Exit(run_all(config, console=err, keep_stack=keep_stack))


def start_corenlp_for_run(settings: Settings, purpose: str) -> Any:
    """A CoreNLP server of the local stack, started for one run (``newswire enrich``) and
    stopped after: a context manager yielding its URL."""
    _require_workshop()
    from workshop.stack.corenlp import server_for_run

    return server_for_run(settings, purpose, lambda line: err.print(f"[dim]{line}[/dim]"))
