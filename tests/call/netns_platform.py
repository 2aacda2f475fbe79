"""The platform side of the network-namespace test; runs inside the platform namespace (`ip netns exec`).

Kamailio listens on the carrier-facing and the agent-facing network, rtpengine bridges them (logical interfaces
`pub` and `priv`, plus `lo` towards the controller's media fork), sipp runs the carrier and the agents in their own
namespaces. Writes what it saw as JSON for the test to judge.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from zhida.call.prompts import synthesize
from zhida.config import DEMO_DIR
from zhida.stack import up as stack
from zhida.stack.calls import place_call
from zhida.stack.sipp import register_agent, start_agent_phone

from tests.call.conftest import rtpengine_final_stats, stack_config

PLATFORM_CARRIER_IP = "10.77.1.1"
CARRIER_IP = "10.77.1.2"
PLATFORM_AGENT_IP = "10.77.2.1"
AGENT_IP = "10.77.2.2"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--carrier-ns", required=True)
    parser.add_argument("--agents-ns", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    work = args.work
    platform = yaml.safe_load((DEMO_DIR / "platform.yaml").read_text(encoding="utf-8"))
    platform["trunks"] = [{"address": CARRIER_IP, "mode": "early"}]
    platform_file = work / "platform.yaml"
    platform_file.write_text(yaml.safe_dump(platform, allow_unicode=True), encoding="utf-8")

    config = stack_config(work / "run")
    config.platform_file = platform_file
    config.sip.address = PLATFORM_CARRIER_IP
    config.sip.agent_listen = f"udp:{PLATFORM_AGENT_IP}:{config.sip.port}"
    config.media.interfaces = [f"pub/{PLATFORM_CARRIER_IP}", f"priv/{PLATFORM_AGENT_IP}", "lo/127.0.0.1"]
    config.media.trunk_interface, config.media.agent_interface = "pub", "priv"
    config.media.controller_interface = "lo"
    result: dict[str, Any] = {}
    phones = []
    try:
        stack.up(config, None)
        agent_target = f"{PLATFORM_AGENT_IP}:{config.sip.port}"
        for user in ("1001", "1091"):
            phone = start_agent_phone(username=user, password=f"demo-{user}-pass", domain="demo.zhida.local",
                                      ip=AGENT_IP, work_dir=work, netns=args.agents_ns)
            phones.append(phone)
            result[f"register_{user}"] = register_agent(agent_target, phone, work_dir=work, netns=args.agents_ns)
        with tempfile.TemporaryDirectory() as tmp:
            wav = synthesize("我家的空调坏了需要上门维修", Path(tmp) / "s.wav")
            line = place_call(config, number="4008001234", wav=wav, trunk=CARRIER_IP, netns=args.carrier_ns)
            # the agents' network is not a trunk: the same call from there is refused
            agent_side = config.model_copy(update={"sip": config.sip.model_copy(update={"address": PLATFORM_AGENT_IP})})
            untrusted = place_call(agent_side, number="4008001234", wav=wav, trunk=AGENT_IP, netns=args.agents_ns,
                                   lead_silence_s=0.2)
        time.sleep(0.5)
        result["call"] = line
        result["untrusted_call"] = untrusted
        result["received"] = {p.username: p.received_calls() for p in phones}
        result["media"] = rtpengine_final_stats(config.log_dir / "rtpengine.log", line["call_id"])
        result["kamailio_log_refusal"] = f"INVITE from untrusted {AGENT_IP}" in (
            config.log_dir / "kamailio.log").read_text(errors="replace")
    except Exception as exc:  # reported to the test, which prints the logs
        result["error"] = repr(exc)
        result["logs"] = {p.name: p.read_text(errors="replace")[-3000:] for p in config.log_dir.glob("*.log")}
    finally:
        for phone in phones:
            phone.stop()
        stack.down(config)
        args.out.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
