"""The playbooks without this machine: ansible-lint's production profile, syntax, and the example machine room
wired and rendered node by node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import ANSIBLE_DIR, EXAMPLE_INVENTORY, LOCAL_INVENTORY, REPO, ansible_env, require


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
    assert targets["zhida-recognizer"] == ["10.20.3.31:9103", "10.20.3.32:9103", "10.20.3.33:9103"]
    assert targets["zhida-routing"] == ["10.20.3.31:9104", "10.20.3.32:9104", "10.20.3.33:9104"]
    assert len(targets["node"]) == 8


def test_example_machine_room_admits_sip_only_from_trunks_and_agents(tmp_path: Path) -> None:
    networks = host_var(tmp_path, "sip-edge-1", "common_firewall_sip_networks")
    assert networks == ["203.0.113.10/32", "203.0.113.11/32", "192.0.2.64/28", "10.30.0.0/16"]
    assert host_var(tmp_path, "media-1", "common_firewall_internal_ports['media']['udp']") == [2223]


EXAMPLE_HOSTS = ["sip-edge-1", "sip-edge-2", "media-1", "media-2", "speech-1", "speech-2", "speech-3",
                 "monitor-1"]


@pytest.fixture(scope="module")
def example_rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site.yml over the whole example machine room, every node rendered on this machine under root/<host>.

    Only what cannot happen here is switched off: connections are local, nothing is installed or started,
    the checkout and virtualenv are this repository's. Every check the roles make still runs: kamailio -c on
    each SIP edge node's staged pair, nft -c on each ruleset, promtool on the monitoring node, the key-file
    parse of each rtpengine.conf."""
    from tests.ansible.conftest import run_playbook

    require("ansible-playbook", "kamailio", "nft", "promtool")
    work = tmp_path_factory.mktemp("example")
    root = work / "root"
    node = str(root) + "/{{ inventory_hostname }}"
    extra: dict[str, object] = {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
        **{f"{role}_prefix": node for role in ("common", "kamailio", "rtpengine", "zhida", "prometheus", "grafana")},
        **{f"{role}_service_manager": "none"
           for role in ("common", "kamailio", "rtpengine", "zhida", "prometheus", "grafana")},
        "common_firewall_load": False, "common_sysctl_apply": False, "common_apt_update_cache": False,
        "common_manage_users": False, "common_packages_extra": [], "kamailio_postgres_packages": [],
        "rtpengine_forwarding": "userspace", "grafana_install": False,
        "zhida_git_repo": "", "zhida_source_dir": str(REPO), "zhida_venv": str(REPO / ".venv"),
        "zhida_pip_bootstrap": [], "zhida_directory_load": False, "zhida_models": [],
        # users are not managed here, so the service account may not exist on this machine: own as root
        "zhida_user": "root", "zhida_group": "root",
    }
    run = run_playbook(EXAMPLE_INVENTORY, work, extra)
    assert run.returncode == 0, run.output[-6000:]
    for host in EXAMPLE_HOSTS:
        assert run.recap(host)["failed"] == 0
    return root


def test_example_machine_room_renders_and_passes_every_check(example_rendered: Path) -> None:
    local = (example_rendered / "sip-edge-2/etc/kamailio/kamailio-local.cfg").read_text()
    assert '#!define RTPENGINE_SOCKET "udp:10.20.2.21:2223=2 udp:10.20.2.22:2223=1"' in local
    # one set per media node, in the order of the controller's media.nodes (the set it names for a call)
    assert '#!define RTPENGINE_SET_1 "1 == udp:10.20.2.21:2223"' in local.splitlines()
    assert '#!define RTPENGINE_SET_2 "2 == udp:10.20.2.22:2223"' in local.splitlines()
    assert "#!define LISTEN_SIP udp:10.20.1.12:5060 advertise 198.51.100.12:5060" in local
    assert '#!substdef "!RTP_AGENT_DIRECTION!direction=pub direction=priv!g"' in local
    # The controller refuses INVITEs older than its own limit: Kamailio's must be the same value.
    assert "#!define B2BUA_ANSWER_TIMEOUT 4000" in local.splitlines()
    # the edge pair: the directory in the shared PostgreSQL, registrations shared over DMQ, each naming the other
    for host, address, peer in (("sip-edge-1", "10.20.1.11", "10.20.1.12"), ("sip-edge-2", "10.20.1.12", "10.20.1.11")):
        lines = (example_rendered / host / "etc/kamailio/kamailio-local.cfg").read_text().splitlines()
        assert "#!define WITH_POSTGRES" in lines and "#!define WITH_DMQ" in lines, host
        assert f"#!define DMQ_LISTEN udp:{address}:5090" in lines
        assert f'#!define DMQ_SERVER_ADDRESS "sip:{address}:5090"' in lines
        assert [line for line in lines if "DMQ_NOTIFICATION_ADDRESS" in line] == [
            f'#!define DMQ_NOTIFICATION_ADDRESS "sip:{peer}:5090"']
        ruleset = (example_rendered / host / "etc/nftables.conf").read_text()
        assert "5090" in ruleset, "DMQ is not open between the edge nodes"
    media = (example_rendered / "media-2/etc/rtpengine/rtpengine.conf").read_text()
    assert "interface = priv/10.20.2.22;pub/10.20.2.22!198.51.100.22" in media.splitlines()
    for host in EXAMPLE_HOSTS:
        ruleset = (example_rendered / host / "etc/nftables.conf").read_text()
        rules = [line for line in ruleset.splitlines() if not line.lstrip().startswith("#")]
        assert any("@sip_peers_v4 udp dport" in line for line in rules) == host.startswith("sip-edge"), host
        assert any("udp dport 30000-40000 accept" in line for line in rules) == host.startswith("media"), host
    assert (example_rendered / "monitor-1/etc/prometheus/prometheus.yml").exists()


def test_example_zhida_configuration_loads_on_every_node(example_rendered: Path) -> None:
    from zhida import config as stack_config

    for host in ("sip-edge-1", "sip-edge-2", "speech-1", "speech-2", "speech-3"):
        config = stack_config.load(example_rendered / host / "etc/zhida/zhida.yaml")
        if host.startswith("sip-edge"):
            assert config.recognizer.listen == "ipv4:10.20.3.31:50051,10.20.3.32:50051,10.20.3.33:50051"
            assert config.media.interface == "10.20.2.21"
            assert config.media.ng_nodes == [("10.20.2.21", 2223), ("10.20.2.22", 2223)]
            assert (config.media.trunk_interface, config.media.agent_interface) == ("pub", "priv")
            assert config.controller.b2bua_answer_timeout_ms == 4000
            # the agents and groups Kamailio reads: the shared PostgreSQL, not a file of the node's own
            assert config.directory_url.startswith("postgresql") and "@pg.example.internal/" in config.directory_url
    units = sorted(path.name for path in (example_rendered / "speech-1/etc/systemd/system").glob("*.service"))
    assert units == ["zhida-learn-due.service", "zhida-recognizer.service", "zhida-routing.service"]
    # scheduled learning on one routing node only: the call records it learns from are shared
    units = sorted(path.name for path in (example_rendered / "speech-2/etc/systemd/system").glob("*.service"))
    assert units == ["zhida-recognizer.service", "zhida-routing.service"]
    assert [path.name for path in (example_rendered / "sip-edge-1/etc/systemd/system").glob("*.service")] == [
        "zhida-controller.service"]
