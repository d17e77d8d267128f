"""``dcim agent gpu``: run the GPU agent (or one poll with ``--once``) against NVML or the simulated backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

import click
from prometheus_client import CollectorRegistry

from dcim.config import SiteConfig, default_site, load_site
from dcim.errors import ConfigError

log = logging.getLogger(__name__)


def node_tags(site: SiteConfig, node: str | None) -> dict[str, str]:
    """Location tags of ``node`` (default: the first node of the site)."""
    first = None
    for rack in site.racks():
        for n in rack.nodes:
            first = first or (rack.name, n.name)
            if node is None or n.name == node:
                return {**site.rack_tags(rack.name), "node": n.name}
    if first is None:
        msg = f"site {site.site!r} has no GPU nodes"
        raise ConfigError(msg)
    msg = f"node {node!r} is not in site {site.site!r} (first node: {first[1]}); pass --node"
    raise ConfigError(msg)


def host_node(site: SiteConfig, host: str) -> str:
    """The node this host is in ``site``: its host name, or its short name (before the first dot).

    A host that is not in the site file is refused: taking some other node's identity would publish
    several servers as one.
    """
    names = {n.name for r in site.racks() for n in r.nodes}
    for candidate in (host, host.split(".", 1)[0]):
        if candidate in names:
            return candidate
    msg = (f"this host ({host!r}) is not a node of site {site.site!r}: pass --node NAME for the node it is, "
           "or add it to the site file")
    raise ConfigError(msg)


def load_backend(simulate: bool, site: SiteConfig, node: str, scenario: str | None) -> Any:
    if simulate:
        from dcim.simulators.hall import backend_for_node

        return backend_for_node(site, node, seed=site.simulator.seed, scenario=scenario)
    import pynvml  # the official binding; the library itself loads at nvmlInit

    return pynvml


@click.command("gpu")
@click.option("--site", "site_path", type=click.Path(dir_okay=False), help="Site YAML (default: the embedded hall).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Site YAML whose gpu_agent and mqtt sections apply (default: those of --site).")
@click.option("--node", help="Node to read (simulated: which node; default the first; real: default this host, "
              "which must be a node of the site).")
@click.option("--simulate/--no-simulate", default=None, help="Use the simulated NVML backend.")
@click.option("--scenario", help="Simulator scenario to run (with --simulate).")
@click.option("--once", is_flag=True, help="Poll once, print, exit.")
@click.option("--format", "fmt", type=click.Choice(["lp", "prometheus"]), default="lp", show_default=True,
              help="With --once: line protocol, or the /metrics exposition of that poll.")
@click.option("--interval", "interval_s", type=float, help="Poll interval in seconds (default: gpu_agent.interval_s).")
@click.option("--metrics-port", type=int, help="Port for /metrics (0: off; default: gpu_agent.metrics.port).")
def gpu_cmd(site_path: str | None, config_path: str | None, node: str | None, simulate: bool | None,
            scenario: str | None, once: bool, fmt: str, interval_s: float | None, metrics_port: int | None) -> None:
    """Read every GPU of this node through NVML; publish each poll over MQTT and serve /metrics."""
    from dcim.agents.gpu.agent import GpuAgent

    site = load_site(site_path) if site_path else default_site()
    cfg_site = load_site(config_path) if config_path else site
    cfg = cfg_site.gpu_agent
    simulate = cfg.simulate if simulate is None else simulate
    if node is None and not simulate:
        node = host_node(site, socket.gethostname())
    tags = node_tags(site, node)
    backend = load_backend(simulate, site, tags["node"], scenario)
    registry = CollectorRegistry()
    agent = GpuAgent(backend, tags=tags, registry=registry, reinit_backoff_max_s=cfg.reinit_backoff_max_s)
    if once:
        from dcim.lineprotocol.encode import encode

        agent.start()  # no NVML: DeviceError -> "error: ..." and exit 2
        try:
            records = agent.poll()
        finally:
            agent.close()
        if fmt == "lp":
            click.echo(encode(records), nl=False)
        else:
            from dcim.agents.gpu.metrics import render

            click.echo(render(registry).decode(), nl=False)
        return
    interval = interval_s if interval_s is not None else cfg.interval_s
    if interval <= 0:
        msg = "--interval must be positive"
        raise ConfigError(msg)
    port = cfg.metrics.port if metrics_port is None else metrics_port
    asyncio.run(_run(agent, cfg_site, tags, registry, interval, cfg.metrics.host, port, cfg.queue_max))


async def _run(agent: Any, cfg_site: SiteConfig, tags: dict[str, str], registry: CollectorRegistry,
               interval_s: float, metrics_host: str, metrics_port: int, queue_max: int) -> None:
    from dcim.agents.gpu.agent import gpu_topic, run_agent
    from dcim.agents.gpu.metrics import serve_gpu_metrics
    from dcim.agents.publisher import Publisher
    from dcim.errors import DeviceError

    try:
        agent.start()
    except DeviceError as exc:
        log.error("%s; the agent keeps running and retries", exc)  # the poll loop re-opens with backoff
    server = serve_gpu_metrics(registry, metrics_host, metrics_port) if metrics_port else None
    if server is not None:
        log.info("serving %s", server.url)
    mqtt = cfg_site.mqtt
    topic = gpu_topic(mqtt.topic_prefix, tags)
    publisher = Publisher(mqtt, client_id=mqtt.client_id or f"dcim-gpu-{tags['node']}",
                          status_topic=f"{topic}/status", queue_max=queue_max, registry=registry, component="gpu")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with publisher:
            await run_agent(agent, publisher, topic=topic, interval_s=interval_s, stop=stop)
            await publisher.flush(5.0)  # give queued polls a moment to leave on a clean stop
    finally:
        agent.close()
        if server is not None:
            server.close()
