"""One GPU reading on the in-process pipeline (agent -> local bus -> collector -> observer -> embedded
store) is encoded once, by the agent, and decoded once, by the collector's validator."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent, gpu_topic, run_agent
from dcim.app.pipeline import LocalBus
from dcim.collector.app import Collector
from dcim.collector.store import EmbeddedStore
from dcim.config import CollectorConfig
from dcim.lineprotocol import decode as decode_mod
from dcim.lineprotocol import encode as encode_mod
from dcim.record import Record
from dcim.simulators.nvml import SimNvml, synthetic_gpus

TAGS = {"site": "dc1", "room": "hall1", "rack": "A01", "node": "A01-n01"}


class Seen:
    """An observer that keeps what it was shown."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def observe(self, records: list[Record]) -> list[Record]:
        self.records += records
        return []


async def test_one_reading_is_encoded_once_and_decoded_at_most_once(tmp_path, monkeypatch):
    agent = GpuAgent(SimNvml(synthetic_gpus(TAGS["node"], 1)), tags=TAGS, registry=CollectorRegistry(),
                     xid_events=False)
    agent.start()
    seen = Seen()
    cfg = CollectorConfig(sink="embedded", embedded_path=tmp_path / "store", spool_path=tmp_path / "spool",
                          dead_letter_path=tmp_path / "dl.jsonl", self_report_s=0)
    collector = Collector(cfg, observers=[seen], registry=CollectorRegistry())
    bus = LocalBus(collector.handle)

    # every encode of a record renders its fields through a field template; every decode of a
    # line goes through the fast reader or the careful scanner's parse
    encoded: list[tuple] = []
    decoded: list[str] = []
    real_render = encode_mod._FieldTemplate.render  # noqa: SLF001
    real_fast = decode_mod._fast_line  # noqa: SLF001
    real_parse = decode_mod._Scanner.parse  # noqa: SLF001

    def render(self, values):  # noqa: ANN001, ANN202
        encoded.append(values)
        return real_render(self, values)

    def fast(line, factor, default_time_ns):  # noqa: ANN001, ANN202
        decoded.append(line)
        return real_fast(line, factor, default_time_ns)

    def parse(self, factor, default_time_ns):  # noqa: ANN001, ANN202
        decoded.append(self.line)
        return real_parse(self, factor, default_time_ns)

    monkeypatch.setattr(encode_mod._FieldTemplate, "render", render)  # noqa: SLF001
    monkeypatch.setattr(decode_mod, "_fast_line", fast)
    monkeypatch.setattr(decode_mod._Scanner, "parse", parse)  # noqa: SLF001
    try:
        polls = await run_agent(agent, bus, topic=gpu_topic("dcim", TAGS), interval_s=0.01, stop=asyncio.Event(),
                                polls=1)
        await collector.flush()
    finally:
        monkeypatch.undo()
        collector.close()
        agent.close()
    assert polls == 1 and bus.published == 1

    (reading,) = [r for r in seen.records if r.measurement == "gpu"]
    assert reading.tags["gpu"] == "0" and reading.fields["power_w"] > 0
    with EmbeddedStore(tmp_path / "store") as store:
        assert list(store.query("gpu")) == [reading]  # it reached the store, unchanged
    values = tuple(reading.fields.values())
    assert [v for v in encoded if v == values] == [values]  # encoded once: by the agent
    assert len([line for line in decoded if line.startswith("gpu,")]) == 1  # decoded once: by the validator
