"""Carrier, platform and agents in separate network namespaces, as in a machine room.

The namespaces and their veth links are built with pyroute2; rtpengine bridges the carrier-facing and the
agent-facing network. Trunk trust is by source network, and each media leg must use the interface facing its peer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.call.netns_platform import (
    AGENT_IP,
    CARRIER_IP,
    PLATFORM_AGENT_IP,
    PLATFORM_CARRIER_IP,
)

pyroute2 = pytest.importorskip("pyroute2", reason="pyroute2 is a dependency of the project; install it")

REPO = Path(__file__).resolve().parents[2]


def _link(platform: str, peer_ns: str, host_side: str, peer_side: str, platform_ip: str, peer_ip: str) -> None:
    from pyroute2 import IPRoute, NetNS

    with IPRoute() as ip:
        ip.link("add", ifname=host_side, kind="veth", peer=peer_side)
        ip.link("set", index=ip.link_lookup(ifname=host_side)[0], net_ns_fd=platform)
        ip.link("set", index=ip.link_lookup(ifname=peer_side)[0], net_ns_fd=peer_ns)
    for ns_name, ifname, address in ((platform, host_side, platform_ip), (peer_ns, peer_side, peer_ip)):
        with NetNS(ns_name) as ns:
            index = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=index, address=address, prefixlen=24)
            ns.link("set", index=index, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI and the developer box run as root)")
    from pyroute2 import netns

    suffix = uuid.uuid4().hex[:6]
    names = {role: f"zhida-{role}-{suffix}" for role in ("carrier", "platform", "agents")}
    for name in names.values():
        netns.create(name)
    try:
        _link(names["platform"], names["carrier"], f"zc{suffix}", f"zC{suffix}", PLATFORM_CARRIER_IP, CARRIER_IP)
        _link(names["platform"], names["agents"], f"za{suffix}", f"zA{suffix}", PLATFORM_AGENT_IP, AGENT_IP)
        yield names
    finally:
        for name in names.values():
            netns.remove(name)


def test_call_across_carrier_platform_and_agent_networks(namespaces: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    subprocess.run(
        ["ip", "netns", "exec", namespaces["platform"], sys.executable, "-m", "tests.call.netns_platform",
         "--carrier-ns", namespaces["carrier"], "--agents-ns", namespaces["agents"], "--work", str(tmp_path),
         "--out", str(out)],
        cwd=REPO, timeout=280, check=True)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert "error" not in result, json.dumps(result, ensure_ascii=False, indent=1)[-6000:]
    assert result["register_1001"] == 0 and result["register_1091"] == 0

    call = result["call"]
    assert call["sipp_rc"] == 0, call
    reached = [user for user, calls in result["received"].items() if call["call_id"] in calls]
    assert len(reached) == 1, result["received"]

    # media: the caller's leg on the carrier-facing interface, the agent's on the agent-facing one, both ways
    legs = result["media"]
    by_remote = {leg["remote"]: leg for leg in legs.values()}
    assert by_remote[CARRIER_IP]["local"] == PLATFORM_CARRIER_IP, legs
    assert by_remote[AGENT_IP]["local"] == PLATFORM_AGENT_IP, legs
    assert by_remote[CARRIER_IP]["packets"] > 0 and by_remote[AGENT_IP]["packets"] > 0, legs

    # trunk trust: the agents' network is not a trunk
    assert result["untrusted_call"]["sipp_rc"] != 0
    assert result["kamailio_log_refusal"]
