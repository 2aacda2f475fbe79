"""`zhida demo`: the product's main job on one box — real calls through the real stack, on embedded defaults."""

from __future__ import annotations

import csv
import json
import logging
import sys
import tempfile
from pathlib import Path

import yaml

from zhida.call.prompts import synthesize
from zhida.config import DEMO_DIR, Config
from zhida.directory import Directory
from zhida.stack.calls import place_call
from zhida.stack.sipp import AgentPhone, register_agent, start_agent_phone
from zhida.stack.up import down, up

log = logging.getLogger(__name__)

AGENT_IP = "127.0.0.3"
TRUNK_IP = "127.0.0.2"


def demo_sentences(count: int) -> list[tuple[str, str]]:
    with (DEMO_DIR / "sentences.tsv").open(encoding="utf-8") as handle:
        rows = [(row["text"], row["group"]) for row in csv.DictReader(handle, delimiter="\t")]
    by_group: dict[str, list[str]] = {}
    for text, group in rows:
        by_group.setdefault(group, []).append(text)
    picked: list[tuple[str, str]] = []
    index = 0
    count = count or len(by_group)
    while len(picked) < count:
        for group, texts in by_group.items():
            if len(picked) < count and index < len(texts):
                picked.append((texts[index], group))
        index += 1
        if index > max(len(t) for t in by_group.values()):
            break
    return picked


def start_demo_agents(config: Config, work: Path) -> list[AgentPhone]:
    """A phone for every agent of the platform file (passwords come from there), registered."""
    directory = Directory(config.directory_db_url)
    phones = []
    platform = yaml.safe_load(config.platform_file.read_text(encoding="utf-8"))
    target = f"{config.sip.address}:{config.sip.port}"
    for tenant_name, tenant in platform["tenants"].items():
        domain = directory.tenant(tenant_name)["domain"]
        for group in tenant["groups"].values():
            for agent in group.get("agents", []):
                phone = start_agent_phone(username=str(agent["username"]), password=agent["password"],
                                          domain=domain, ip=AGENT_IP, work_dir=work)
                phones.append(phone)
    for phone in phones:
        if register_agent(target, phone, work_dir=work) != 0:
            raise RuntimeError(f"agent {phone.aor} could not register")
    return phones


def run_demo(config: Config, calls: int = 0) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="zhida-demo-") as tmp:
        work = Path(tmp)
        phones: list[AgentPhone] = []
        try:
            up(config, None)
            phones = start_demo_agents(config, work)
            for text, group in demo_sentences(calls):
                wav = synthesize(text, work / "sentence.wav")
                line = place_call(config, number="4008001234", wav=wav, trunk=TRUNK_IP, expected_group=group,
                                  said=text)
                received = [p for p in phones if line["call_id"] and line["call_id"] in p.received_calls()]
                line["agent"] = received[-1].aor if received and line["agent"] else ""
                group_agents = Directory(config.directory_db_url).agents("demo", group)
                ok = bool(line["agent"]) and line["agent"] in group_agents
                failures += 0 if ok else 1
                print(json.dumps(line, ensure_ascii=False), flush=True)
        finally:
            for phone in phones:
                phone.stop()
            down(config)
    if failures:
        print(f"{failures} call(s) did not reach an agent of their expected group", file=sys.stderr)
    return 1 if failures else 0
