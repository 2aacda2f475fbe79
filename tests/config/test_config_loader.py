"""The configuration loader: per-section defaults, refused keys with their path, the round trip `zhida up` makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from zhida.config import Config, ConfigError, load, parse

pytestmark = pytest.mark.timeout(60)


def test_no_file_gives_the_single_box_defaults() -> None:
    config = load(None)
    assert config.recognizer.listen == "127.0.0.1:50051"
    assert config.routing.listen == "127.0.0.1:50052"
    assert config.sip.port == 5060
    assert config.directory_db_url == f"sqlite:///{config.kamailio_db}"


@pytest.mark.parametrize("section, listen", [("recognizer", "127.0.0.1:50051"), ("routing", "127.0.0.1:50052")])
def test_a_section_given_in_part_keeps_its_own_defaults(section: str, listen: str) -> None:
    config = parse({section: {"target": "ipv4:10.0.0.1:1,10.0.0.2:1"}})
    service = getattr(config, section)
    assert service.listen == listen
    assert service.client_target == "ipv4:10.0.0.1:1,10.0.0.2:1"


def test_a_partial_controller_section_keeps_the_other_keys() -> None:
    config = parse({"controller": {"pause_ms": 300}, "sip": {"port": "5070"}})
    assert config.controller.pause_ms == 300
    assert config.controller.end_silence_ms == 700
    assert config.sip.port == 5070  # Ansible's inventory values may arrive as strings


@pytest.mark.parametrize("data, path", [
    ({"sip": {"prot": 5060}}, "sip.prot: unknown setting"),
    ({"recognizer": {"listne": "x"}}, "recognizer.listne: unknown setting"),
    ({"colour": "blue"}, "colour: unknown setting"),
    ({"controller": {"end_silence_ms": "soon"}}, "controller.end_silence_ms: Input should be a valid integer"),
    ({"speech": {"backend": "tensorflow"}}, "speech.backend: Input should be 'paddle', 'onnx' or 'onnx-int8'"),
    ({"sip": {"port": 70000}}, "sip.port: Input should be less than or equal to 65535"),
    ({"media": {"interfaces": "pub/1.2.3.4"}}, "media.interfaces: Input should be a valid list"),
])
def test_bad_keys_and_values_are_refused_with_their_path(data: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(data, "zhida.yaml")
    assert str(refused.value).startswith("zhida.yaml: ")
    assert path in str(refused.value)


def test_every_bad_key_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        parse({"sip": {"prot": 1}, "media": {"ng_prot": 2}})
    assert "sip.prot" in str(refused.value) and "media.ng_prot" in str(refused.value)


def test_a_file_that_is_not_a_mapping_or_not_yaml(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping, not list"):
        load(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("sip: {port: [\n")
    with pytest.raises(ConfigError, match="not YAML"):
        load(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.yaml")


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "zhida.yaml"
    empty.write_text("# nothing set\n")
    assert load(empty) == Config()


def test_what_zhida_up_writes_reads_back_the_same(tmp_path: Path) -> None:
    config = Config(run_dir=tmp_path / "run", model_dir=tmp_path / "model")
    config.controller.db_url = "sqlite:////var/lib/zhida/zhida.db"
    config.controller.api_tokens = tmp_path / "tokens.yaml"
    config.media.interfaces = ["pub/203.0.113.5", "priv/10.0.2.1"]
    config.recognizer.target = "dns:///recognizer.internal"
    written = tmp_path / "zhida.yaml"
    written.write_text(config.to_yaml(), encoding="utf-8")
    assert load(written) == config
    assert yaml.safe_load(written.read_text())["controller"]["api_tokens"] == str(tmp_path / "tokens.yaml")


def test_assignments_are_validated_too() -> None:
    config = Config()
    with pytest.raises(ValueError, match="valid integer"):
        config.sip.port = "five"  # type: ignore[assignment]


def test_a_bad_file_stops_the_command_with_the_keys_named(tmp_path: Path) -> None:
    bad = tmp_path / "zhida.yaml"
    bad.write_text("sip:\n  prot: 5060\ncontroller:\n  pause_ms: soon\n")
    done = subprocess.run([sys.executable, "-m", "zhida.cli", "down", "--config", str(bad)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "sip.prot: unknown setting" in done.stderr and "controller.pause_ms:" in done.stderr
    assert "Traceback" not in done.stderr
