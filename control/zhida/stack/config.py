"""The stack's configuration: one YAML file, every value with a working single-box default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent.parent
DEMO_DIR = PACKAGE_DIR / "demo"


@dataclass
class SipConfig:
    address: str = "127.0.0.1"
    port: int = 5060
    http_port: int = 5080  # Kamailio's Prometheus statistics
    rpc_port: int = 8090
    evapi_port: int = 8448
    controller_timeout_s: int = 30
    agent_ring_timeout_ms: int = 15000
    workers: int = 8
    # A second SIP socket facing the agents' network ("udp:10.0.2.1:5060"); empty: agents use `address`.
    agent_listen: str = ""
    config_file: Path = REPO_DIR / "kamailio" / "kamailio.cfg"


@dataclass
class MediaConfig:
    interface: str = "127.0.0.1"
    ng_port: int = 2223
    http_port: int = 2225
    port_min: int = 30000
    port_max: int = 30999
    # Logical interfaces ("pub/203.0.113.5", "priv/10.0.2.1", "lo/127.0.0.1") when the media node bridges
    # networks; empty: one interface, `interface`. The three names below pick, by role, which one faces whom.
    interfaces: list[str] = field(default_factory=list)
    trunk_interface: str = ""
    agent_interface: str = ""
    controller_interface: str = ""
    config_file: Path = REPO_DIR / "rtpengine" / "rtpengine.conf"


@dataclass
class ControllerConfig:
    rtp_address: str = "127.0.0.1"
    api_listen: str = "127.0.0.1:50061"
    # Answered mode (PSTN trunks): the B2BUA's SIP port (UDP, on rtp_address); Kamailio relays those trunks' calls
    # there and trusts INVITEs from exactly this address and port.
    b2bua_port: int = 5070
    # Kamailio's B2BUA_ANSWER_TIMEOUT: an INVITE older than this has gone to the fallback group already, and the
    # B2BUA refuses it (a controller resuming after a stall must not answer it too).
    b2bua_answer_timeout_ms: int = 5000
    metrics_port: int = 9461
    # Where /metrics listens; a machine room's monitoring node needs the node's private address here.
    metrics_address: str = "127.0.0.1"
    # Endpointing: the recogniser ends the utterance after this silence; the controller may decide earlier on
    # a stable, confident partial.
    end_silence_ms: int = 700
    no_input_timeout_ms: int = 6000
    max_utterance_ms: int = 12000
    # A partial unchanged for this long, with routing confidence at or above the tenant's threshold, decides: for
    # a noisy line where the endpointer keeps hearing "voice" after the words. A streaming model may add nothing
    # for several chunks while the caller goes on (the test model does), so a short window cuts the
    # caller off mid-sentence (at 160 ms the demo's complaint call was routed on "我要投诉" of "我要投诉你们的…").
    stable_partial_ms: int = 1000
    # ... or once the caller has paused this long after speech (then the endpointer's long silence is not waited
    # out).
    pause_ms: int = 120
    # A partial decides only after this much speech: a sentence's first syllables rarely name its subject, and a
    # streaming model's first partials are its least reliable (a pause between two words is not the end).
    min_speech_ms: int = 800
    prompt: str = "请用一句话描述咨询的问题"
    reprompt: str = "抱歉，没有听清，请再说一遍"
    # Answered mode only: said before hanging up when no agent took the call (the caller has been answered, so
    # the carrier plays no tone of its own).
    unavailable: str = "抱歉，现在没有空闲的坐席，请稍后再拨"


@dataclass
class SpeechConfig:
    # Decoding chunk in encoder frames of 40 ms: smaller gives partials (and decisions) sooner for more CPU.
    chunk_size: int = 4
    # paddle | onnx | onnx-int8 (onnx needs `zhida models export-onnx`)
    backend: str = "paddle"
    max_streams: int = 64


@dataclass
class ServiceConfig:
    listen: str = "127.0.0.1:0"
    # Where the controller reaches the service (a gRPC target: "host:port", "ipv4:a:p,b:p", "dns:///name");
    # empty: `listen`. Remote recogniser workers are listed here.
    target: str = ""

    @property
    def client_target(self) -> str:
        return self.target or self.listen


@dataclass
class StackConfig:
    run_dir: Path = Path("run")
    platform_file: Path = DEMO_DIR / "platform.yaml"
    # Tenants' routing files written at run time (uploads, learned rules); the packaged demo tenant is the
    # routing service's built-in default, so nothing is ever written into the package.
    # (default: <run_dir>/data/tenants)
    tenants_dir: Path | None = None
    model_dir: Path | None = None
    # The directory (agents, numbers, trunks) as a SQLAlchemy URL; empty: Kamailio's SQLite file in the run dir.
    # Several SIP edge nodes share one PostgreSQL database here.
    directory_url: str = ""
    sip: SipConfig = field(default_factory=SipConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    recognizer: ServiceConfig = field(default_factory=lambda: ServiceConfig("127.0.0.1:50051"))
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    routing: ServiceConfig = field(default_factory=lambda: ServiceConfig("127.0.0.1:50052"))

    @property
    def kamailio_db(self) -> Path:
        return (self.run_dir / "data" / "kamailio.sqlite").resolve()

    @property
    def directory_db_url(self) -> str:
        return self.directory_url or f"sqlite:///{self.kamailio_db}"

    @property
    def routing_tenants_dir(self) -> Path:
        return self.tenants_dir or self.run_dir / "data" / "tenants"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(dataclasses.asdict(self)), allow_unicode=True, sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"unknown setting {cls.__name__}.{key}")
        kind = fields[key].type
        default = getattr(cls(), key) if key in fields else None
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value or {})
        elif isinstance(default, Path) or "Path" in str(kind):
            kwargs[key] = Path(value) if value is not None else None
        elif isinstance(default, bool):
            kwargs[key] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        elif isinstance(default, int) and value is not None:
            try:
                kwargs[key] = int(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{cls.__name__}.{key} must be an integer, not {value!r}") from exc
        else:
            kwargs[key] = value
    return cls(**kwargs)


def load(path: Path | None) -> StackConfig:
    if path is None:
        return StackConfig()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return _build(StackConfig, data)
