"""``python -m dcim.simulators.snmp``: serve the simulated hall's PDUs and CDUs over SNMP, or record them.

    python -m dcim.simulators.snmp serve --site site.yaml --port-base 1161 [--v3-user ops --v3-auth-env A --v3-priv-env P]
    python -m dcim.simulators.snmp record --out DIR      # one .snmprec per device, for snmpsim and tests
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click

from dcim.config import default_site, load_site
from dcim.errors import ConfigError


def _hall(site_path: str | None, seed: int):
    from dcim.simulators.hall import Hall

    site = load_site(site_path) if site_path else default_site()
    return Hall(site, seed=seed)


@click.group()
def main() -> None:
    """Simulated SNMP devices of the data hall."""


@main.command("serve")
@click.option("--site", "site_path", type=click.Path(exists=True, dir_okay=False), help="site YAML (default: embedded)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port-base", type=int, default=1161, show_default=True, help="first UDP port; 0 picks free ports")
@click.option("--community", default="public", show_default=True)
@click.option("--v3-user", default=None, help="SNMPv3 user (authPriv, SHA + AES)")
@click.option("--v3-auth-env", default=None, help="environment variable holding the v3 auth key")
@click.option("--v3-priv-env", default=None, help="environment variable holding the v3 priv key")
@click.option("--step-s", type=float, default=1.0, show_default=True, help="hall step, simulated = wall seconds")
@click.option("--seed", type=int, default=42, show_default=True)
def serve_cmd(site_path: str | None, host: str, port_base: int, community: str, v3_user: str | None,
              v3_auth_env: str | None, v3_priv_env: str | None, step_s: float, seed: int) -> None:
    """Serve every PDU and CDU on its own UDP port; prints the name -> port map as JSON."""
    from dcim.simulators.snmp import V3User, serve

    users = []
    if v3_user:
        auth = os.environ.get(v3_auth_env or "", "")
        priv = os.environ.get(v3_priv_env or "", "")
        if len(auth) < 8 or len(priv) < 8:
            raise click.UsageError("--v3-user needs --v3-auth-env and --v3-priv-env naming keys of >= 8 characters")
        users.append(V3User(v3_user, auth, priv))

    async def run() -> None:
        hall = _hall(site_path, seed)
        handle = serve(hall, host, port_base, community=community, v3_users=users)
        click.echo(json.dumps(handle.ports))
        sys.stdout.flush()
        try:
            while True:
                await asyncio.sleep(step_s)
                hall.advance(step_s)
        finally:
            handle.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:  # a device whose vendor has no simulated layout: say which, no traceback
        raise click.ClickException(str(exc)) from None


@main.command("record")
@click.option("--site", "site_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--steps", type=int, default=60, show_default=True, help="hall steps of 1 s before the snapshot")
def record_cmd(site_path: str | None, out_dir: str, seed: int, steps: int) -> None:
    """Write one .snmprec snapshot per device (file name = device name)."""
    from dcim.simulators.snmp.responder import device_renderers
    from dcim.simulators.snmp.snmprec import dumps

    hall = _hall(site_path, seed)
    for _ in range(steps):
        hall.advance(1.0)
    try:
        renderers = device_renderers(hall)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (render, _) in renderers.items():
        (out / f"{name}.snmprec").write_text(dumps(render()))
    click.echo(f"wrote {len(renderers)} devices to {out}")


if __name__ == "__main__":
    main()
