"""A machine room's configuration: worker lists, media nodes, what Kamailio and the channels get from them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from zhida.call.channels import channel_options
from zhida.config import ConfigError, parse
from zhida.stack.up import kamailio_argv, render_kamailio_local


def test_a_list_of_workers_is_one_static_target_and_a_single_address_still_works() -> None:
    config = parse({"recognizer": {"target": ["10.0.4.11:50051", "10.0.4.12:50051"]},
                    "routing": {"target": "10.0.4.11:50052"}})
    assert config.recognizer.client_target == "ipv4:10.0.4.11:50051,10.0.4.12:50051"
    assert config.routing.client_target == "10.0.4.11:50052"
    assert parse({"recognizer": {"target": ["[::1]:5", "[::2]:6"]}}).recognizer.client_target == "ipv6:[::1]:5,[::2]:6"
    assert parse({}).recognizer.client_target == "127.0.0.1:50051"


@pytest.mark.parametrize(("data", "message"), [
    ({"recognizer": {"target": ["speech-1:50051"]}}, "recognizer.target: Value error, 'speech-1:50051': a list of "
                                                     "workers takes IP addresses"),
    ({"recognizer": {"target": ["10.0.0.1:50051", "[::1]:50051"]}}, "IPv4 or IPv6 addresses, not both"),
    ({"routing": {"target": ["10.0.0.1"]}}, "routing.target: Value error, '10.0.0.1' is not host:port"),
    ({"media": {"nodes": ["10.0.0.1:99999"]}}, "media.nodes: Value error, '10.0.0.1:99999' is not host:port"),
    ({"media": {"nodes": [f"10.0.0.{i}:2223" for i in range(5)]}}, "media.nodes: List should have at most 4"),
])
def test_bad_lists_are_refused_by_their_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert message in str(info.value)


def test_the_channels_balance_round_robin_and_check_each_workers_health() -> None:
    config = parse({"recognizer": {"target": ["10.0.4.11:50051", "10.0.4.12:50051"]}})
    options = dict(channel_options(config.recognizer, config.recognizer.health_service, keepalive=True))
    service_config = json.loads(options["grpc.service_config"])
    assert service_config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert service_config["healthCheckConfig"] == {"serviceName": "zhida.v1.RecognizerService"}
    # a stream a full worker refuses is tried once more, on the next one (tests/ha/test_speech_refusal.py)
    [method] = service_config["methodConfig"]
    assert method["name"] == [{"service": "zhida.v1.RecognizerService"}]
    assert method["retryPolicy"]["maxAttempts"] == 2
    assert method["retryPolicy"]["retryableStatusCodes"] == ["RESOURCE_EXHAUSTED"]
    assert options["grpc.keepalive_time_ms"] == 1000
    dns = parse({"routing": {"target": "dns:///speech.internal:50052"}})
    options = dict(channel_options(dns.routing, dns.routing.health_service))
    assert options["grpc.service_config_disable_resolution"] == 1
    assert "grpc.keepalive_time_ms" not in options


def test_kamailio_gets_one_rtpengine_set_per_media_node_and_accepts_them(tmp_path: Path) -> None:
    config = parse({"run_dir": str(tmp_path), "media": {"nodes": ["127.0.0.1:2223", "127.0.0.1:2233"]}})
    local = render_kamailio_local(config).splitlines()
    assert '#!define RTPENGINE_SOCKET "udp:127.0.0.1:2223 udp:127.0.0.1:2233"' in local
    assert '#!define RTPENGINE_SET_1 "1 == udp:127.0.0.1:2223"' in local
    assert '#!define RTPENGINE_SET_2 "2 == udp:127.0.0.1:2233"' in local
    argv = kamailio_argv(config)
    check = subprocess.run([*argv[:3], "-c"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    single = render_kamailio_local(parse({"run_dir": str(tmp_path)}))
    assert '#!define RTPENGINE_SOCKET "udp:127.0.0.1:2223"' in single and "RTPENGINE_SET_" not in single
