"""Site configuration: the shipped example loads, errors name file, path and line, secrets stay out of YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.app.cli import main
from dcim.config import DEFAULT_SITE, SITES_DIR, Secret, SiteConfig, load_site
from dcim.errors import ConfigError, SecretError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"


def test_example_site_is_the_small_hall() -> None:
    site = load_site(EXAMPLE)
    racks = list(site.racks())
    assert [r.name for r in racks] == ["A01", "A02", "A03", "A04", "B01", "B02", "B03", "B04"]
    assert {len(r.nodes) for r in racks} == {4}
    assert sum(n.gpus for r in racks for n in r.nodes) == 256
    assert all([p.feed for p in r.pdus] == ["A", "B"] for r in racks)
    assert [(lp.name, lp.racks) for lp in site.loops] == [
        ("loop-a", ["A01", "A02", "A03", "A04"]),
        ("loop-b", ["B01", "B02", "B03", "B04"]),
    ]
    assert site.rack_tags("B03") == {"site": "dc1", "room": "hall1", "row": "B", "rack": "B03"}
    assert site.loop_of("A02").name == "loop-a"
    assert site.loop_tags(site.loops[1]) == {"site": "dc1", "room": "hall1", "row": "B", "loop": "loop-b", "cdu": "cdu-b"}
    assert EXAMPLE.resolve() == (SITES_DIR / "h100-hall.yaml").resolve()
    assert DEFAULT_SITE.resolve() == (SITES_DIR / "ai-factory-pod.yaml").resolve()


def test_node_count_expands_with_one_outlet_per_phase() -> None:
    site = load_site(EXAMPLE)
    rack = next(r for r in site.racks() if r.name == "B02")
    pdu = rack.pdus[0]
    assert [n.name for n in rack.nodes] == ["B02-n01", "B02-n02", "B02-n03", "B02-n04"]
    for node in rack.nodes:
        outlets = node.outlets["pdu-a"]
        assert sorted(pdu.phase_of(o) for o in outlets) == ["L1", "L2", "L3"]
    assert pdu.capacity_w == pytest.approx(3 * 230 * 63)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(text)
    return p


def test_error_names_file_path_line_and_expectation(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        """site: dc1
rooms:
  - name: hall1
    rows:
      - name: A
        racks:
          - name: A01
            pdus:
              - {name: p1, breaker_a: -3}
          - {name: A02, nodez: 4}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_site(p)
    msg = str(info.value)
    assert str(p) in msg
    assert "rooms[0].rows[0].racks[0].pdus[0].breaker_a (line 9): Input should be greater than 0" in msg
    assert "rooms[0].rows[0].racks[1].nodez (line 10): unknown key" in msg


def test_topology_cross_references_are_checked(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        """site: dc1
rooms: [{name: h, rows: [{name: A, racks: [{name: A01, nodes: 1}]}]}]
loops: [{name: l1, cdu: c1, racks: [A01, Z99]}]
""",
    )
    with pytest.raises(ConfigError, match="loop 'l1' cools unknown rack 'Z99'"):
        load_site(p)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "site: dc1\nrooms: [\n  - oops: : :\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: invalid YAML"):
        load_site(p)


def test_inline_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        """site: dc1
rooms: [{name: h, rows: [{name: A, racks: [{name: A01}]}]}]
mqtt: {password: hunter2-do-not-print}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_site(p)
    assert "mqtt.password (line 3)" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCIM_TEST_SECRET", "s3cret")
    assert Secret(env="DCIM_TEST_SECRET").resolve().get_secret_value() == "s3cret"
    f = tmp_path / "token"
    f.write_text("tok\n")
    assert Secret(file=f).resolve().get_secret_value() == "tok"
    monkeypatch.delenv("DCIM_TEST_SECRET")
    with pytest.raises(SecretError, match="DCIM_TEST_SECRET is not set"):
        Secret(env="DCIM_TEST_SECRET").resolve()
    with pytest.raises(SecretError, match="cannot read secret file"):
        Secret(file=tmp_path / "missing").resolve()
    resolved = Secret(file=f).resolve()
    assert "tok" not in repr(resolved) and "tok" not in str(resolved)


def test_secret_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Secret()
    with pytest.raises(ValueError, match="exactly one"):
        Secret(env="A", file="/x")


def test_model_forbids_unknown_keys() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        SiteConfig.model_validate({"site": "x", "rooms": [], "colector": {}})


def test_cli_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["config", "check", str(EXAMPLE)])
    assert "8 racks, 256 GPUs, 2 loops" in capsys.readouterr().out
    bad = _write(tmp_path, "site: dc1\nrooms: 5\n")
    with pytest.raises(SystemExit) as info:
        main(["config", "check", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "rooms (line 2)" in err


def test_metrics_listen_only_where_configured() -> None:
    import socket

    from prometheus_client import CollectorRegistry, Counter

    from dcim.exporter import serve_metrics

    reg = CollectorRegistry()
    Counter("dcim_test_things", "things", registry=reg).inc()
    with serve_metrics(reg, "127.0.0.1", 0) as server:
        assert server._httpd.server_address[0] == "127.0.0.1"  # not 0.0.0.0
        # reachable on loopback, and the bind is to that address only
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass
        import urllib.request

        assert b"dcim_test_things_total 1.0" in urllib.request.urlopen(server.url, timeout=5).read()  # noqa: S310
