"""Static checks of the playbooks: ansible-lint's production profile, syntax, and the machine room's wiring."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import ANSIBLE_DIR, EXAMPLE_INVENTORY, LOCAL_INVENTORY, ansible_env, require


def test_ansible_lint_passes_the_production_profile(tmp_path: Path) -> None:
    require("ansible-lint")
    done = subprocess.run(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], cwd=ANSIBLE_DIR,
                          env=ansible_env(tmp_path), capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Passed with production profile" in output, output[-2000:]


@pytest.mark.parametrize("inventory", [EXAMPLE_INVENTORY, LOCAL_INVENTORY], ids=["example", "local"])
def test_site_playbook_passes_syntax_check(inventory: Path, tmp_path: Path) -> None:
    require("ansible-playbook")
    done = subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml", "--syntax-check"],
                          cwd=ANSIBLE_DIR, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def host_var(tmp_path: Path, host: str, expression: str) -> object:
    """A variable as the play would see it on one host of the example machine room (templated, not run)."""
    env = ansible_env(tmp_path) | {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    done = subprocess.run(
        ["ansible", "-i", str(EXAMPLE_INVENTORY), host, "-m", "ansible.builtin.debug", "-a",
         f"msg={{{{ {expression} }}}}"],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"][host]
    return result["msg"]


def test_example_machine_room_wires_every_media_node_into_kamailio(tmp_path: Path) -> None:
    assert host_var(tmp_path, "sip-edge-2", "kamailio_rtpengine_set") == [
        "udp:10.20.2.21:2223=2", "udp:10.20.2.22:2223=1"]


def test_example_machine_room_points_controllers_at_every_speech_node(tmp_path: Path) -> None:
    config = host_var(tmp_path, "sip-edge-1", "zhida_config")
    assert isinstance(config, dict)
    assert config["recognizer"]["listen"] == "ipv4:10.20.3.31:50051,10.20.3.32:50051,10.20.3.33:50051"
    assert config["routing"]["listen"] == "ipv4:10.20.3.31:50052,10.20.3.32:50052,10.20.3.33:50052"
    url = host_var(tmp_path, "sip-edge-1", "zhida_directory_url")
    assert isinstance(url, str) and url.startswith("postgresql://") and "@pg.example.internal/" in url
    assert host_var(tmp_path, "sip-edge-2", "kamailio_db_url") == host_var(tmp_path, "sip-edge-1", "kamailio_db_url")


def test_example_machine_room_scrapes_every_node(tmp_path: Path) -> None:
    jobs = host_var(tmp_path, "monitor-1", "prometheus_jobs")
    assert isinstance(jobs, list)
    targets = {job["name"]: job["targets"] for job in jobs}
    assert targets["kamailio"] == ["10.20.1.11:9101", "10.20.1.12:9101"]
    assert targets["rtpengine"] == ["10.20.2.21:2225", "10.20.2.22:2225"]
    assert targets["zhida-controller"] == ["10.20.1.11:9102", "10.20.1.12:9102"]
    assert len(targets["node"]) == 8


def test_example_machine_room_admits_sip_only_from_trunks_and_agents(tmp_path: Path) -> None:
    networks = host_var(tmp_path, "sip-edge-1", "common_firewall_sip_networks")
    assert networks == ["203.0.113.10/32", "203.0.113.11/32", "192.0.2.64/28", "10.30.0.0/16"]
    assert host_var(tmp_path, "media-1", "common_firewall_internal_ports['media']['udp']") == [2223]
