"""zhida's configuration: one YAML file, one typed model, every value with a working single-box default.

The lowest layer of the package: every service reads its settings from `Config`, `zhida up` and Ansible write
files that `load()` reads back, and nothing else parses them. A section given in part keeps the defaults of the
keys it leaves out; an unknown key or a value of the wrong type is refused with the key's path
(`recognizer.listne: unknown setting`), before anything starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent.parent
DEMO_DIR = PACKAGE_DIR / "demo"
# kamailio.cfg defines one rtpengine set per media node, this many at most
MAX_MEDIA_NODES = 4
# kamailio.cfg takes this many DMQ notification addresses (the other SIP edge nodes)
MAX_DMQ_PEERS = 3


def _checked_host_port(address: str) -> str:
    _host_port(address)
    return address


def _checked_host_ports(addresses: list[str]) -> list[str]:
    for address in addresses:
        _host_port(address)
    return addresses


# "host:port" (IPv6 as "[::1]:port"), refused with the key's path otherwise; the optional one may be empty, and
# a list is refused by its own key (the error names the list, as the setting's documentation does)
OptionalHostPort = Annotated[str, AfterValidator(lambda address: _checked_host_port(address) if address else address)]
HostPorts = Annotated[list[str], AfterValidator(_checked_host_ports)]

class ConfigError(ValueError):
    """A configuration file that does not load, with every offending key's path in the message."""


class Section(BaseModel):
    # validate_assignment: fixtures and tools that set a value after loading are held to the same types.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SipConfig(Section):
    address: str = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)
    http_port: int = Field(5080, ge=1, le=65535)  # Kamailio's Prometheus statistics
    rpc_port: int = Field(8090, ge=1, le=65535)
    evapi_port: int = Field(8448, ge=1, le=65535)
    controller_timeout_s: int = Field(30, ge=1)
    agent_ring_timeout_ms: int = Field(15000, ge=1)
    workers: int = Field(8, ge=1)
    # A second SIP socket facing the agents' network ("udp:10.0.2.1:5060"); empty: agents use `address`.
    agent_listen: str = ""
    # Several SIP edge nodes share agents' registrations over DMQ (Kamailio's dmq_usrloc): this node's DMQ socket
    # ("10.0.1.11:5090", UDP, on the network between the edge nodes) and the other nodes' ("10.0.1.12:5090"), or
    # one DNS name that resolves to all of them; both or neither (`zhida up` refuses one alone). Empty: one edge
    # node, registrations in its memory alone.
    dmq_address: OptionalHostPort = ""
    dmq_peers: HostPorts = Field(default_factory=list, max_length=MAX_DMQ_PEERS)
    config_file: Path = REPO_DIR / "kamailio" / "kamailio.cfg"


class MediaConfig(Section):
    interface: str = "127.0.0.1"
    ng_port: int = Field(2223, ge=1, le=65535)
    http_port: int = Field(2225, ge=1, le=65535)
    port_min: int = Field(30000, ge=1, le=65535)
    port_max: int = Field(30999, ge=1, le=65535)
    # Logical interfaces ("pub/203.0.113.5", "priv/10.0.2.1", "lo/127.0.0.1") when the media node bridges
    # networks; empty: one interface, `interface`. The three names below pick, by role, which one faces whom.
    interfaces: list[str] = Field(default_factory=list)
    trunk_interface: str = ""
    agent_interface: str = ""
    controller_interface: str = ""
    config_file: Path = REPO_DIR / "rtpengine" / "rtpengine.conf"
    # Media nodes of a machine room, their ng addresses ("10.0.3.11:2223"), in the order of Kamailio's rtpengine
    # sets 1..N (zhida.media.pool); empty: this box's rtpengine, `interface`:`ng_port`.
    nodes: HostPorts = Field(default_factory=list, max_length=MAX_MEDIA_NODES)

    @property
    def ng_nodes(self) -> list[tuple[str, int]]:
        """Every media node's ng address; the first is the default."""
        return [_host_port(node) for node in self.nodes] or [(self.interface, self.ng_port)]


class ControllerConfig(Section):
    rtp_address: str = "127.0.0.1"
    api_listen: str = "127.0.0.1:50061"
    # Where the other controllers of a machine room reach this one's API (host:port): a RerouteCall that
    # reaches another controller is forwarded here for the calls this one holds. Empty: api_listen, unless that
    # listens on every address (0.0.0.0, [::]), which names no node: then this controller's calls are not
    # forwarded to.
    api_advertise: OptionalHostPort = ""
    # Answered mode (PSTN trunks): the B2BUA's SIP port (UDP, on rtp_address); Kamailio relays those trunks' calls
    # there and trusts INVITEs from exactly this address and port. 0: answered mode off.
    b2bua_port: int = Field(5070, ge=0, le=65535)
    # Kamailio's B2BUA_ANSWER_TIMEOUT: an INVITE older than this has gone to the fallback group already, and the
    # B2BUA refuses it (a controller resuming after a stall must not answer it too).
    b2bua_answer_timeout_ms: int = Field(5000, ge=0)
    metrics_port: int = Field(9461, ge=0, le=65535)  # 0: no /metrics
    # Where /metrics listens; a machine room's monitoring node needs the node's private address here.
    metrics_address: str = "127.0.0.1"
    # Call records (SQLAlchemy URL); empty: <run_dir>/data/zhida.db. $ZHIDA_DB_URL wins over both.
    db_url: str = ""
    # The CRM API's token file; empty: <run_dir>/api-tokens.yaml, created on first start. $ZHIDA_API_TOKENS wins.
    api_tokens: Path | None = None
    # Endpointing: the recogniser ends the utterance after this silence; the controller may decide earlier on
    # a stable, confident partial.
    end_silence_ms: int = Field(700, ge=0)
    no_input_timeout_ms: int = Field(6000, ge=0)
    max_utterance_ms: int = Field(12000, ge=0)
    # A partial unchanged for this long, with routing confidence at or above the tenant's threshold, decides: for
    # a noisy line where the endpointer keeps hearing "voice" after the words. A streaming model may add nothing
    # for several chunks while the caller goes on (the test model does), so a short window cuts the
    # caller off mid-sentence (at 160 ms the demo's complaint call was routed on "我要投诉" of "我要投诉你们的…").
    stable_partial_ms: int = Field(1000, ge=0)
    # ... or once the caller has paused this long after speech (then the endpointer's long silence is not waited
    # out).
    pause_ms: int = Field(120, ge=0)
    # A partial decides only after this much speech: a sentence's first syllables rarely name its subject, and a
    # streaming model's first partials are its least reliable (a pause between two words is not the end).
    min_speech_ms: int = Field(800, ge=0)
    prompt: str = "请用一句话描述咨询的问题"
    reprompt: str = "抱歉，没有听清，请再说一遍"
    # Answered mode only: said before hanging up when no agent took the call (the caller has been answered, so
    # the carrier plays no tone of its own).
    unavailable: str = "抱歉，现在没有空闲的坐席，请稍后再拨"

    @property
    def api_peer_address(self) -> str:
        """The address other controllers forward to (api_advertise, else a specific api_listen; else "")."""
        if self.api_advertise:
            return self.api_advertise
        host, _ = _host_port(self.api_listen)
        return "" if host.strip("[]") in ("0.0.0.0", "::", "") else self.api_listen


class SpeechConfig(Section):
    # Decoding chunk in encoder frames of 40 ms: smaller gives partials (and decisions) sooner for more CPU.
    chunk_size: int = Field(4, ge=1)
    # onnx and onnx-int8 need `zhida models export-onnx`
    backend: Literal["paddle", "onnx", "onnx-int8"] = "paddle"
    max_streams: int = Field(64, ge=1)


class ServiceConfig(Section):
    """A gRPC service of the stack: where it listens, and where the controller reaches it."""

    listen: str = "127.0.0.1:0"
    # Where the controller reaches the service: one gRPC target ("host:port", "ipv4:a:p,b:p", "dns:///name"), or
    # the workers' addresses as a list (["10.0.4.11:50051", "10.0.4.12:50051"], IP literals); empty: `listen`.
    # Several workers share the streams round robin, a worker failing its health check gets none
    # (zhida.call.channels).
    target: str | list[str] = ""

    @field_validator("target")
    @classmethod
    def _target_list_is_literal(cls, target: str | list[str]) -> str | list[str]:
        if isinstance(target, list):
            _static_target(target)
        return target

    @property
    def client_target(self) -> str:
        if isinstance(self.target, list):
            return _static_target(self.target) if self.target else self.listen
        return self.target or self.listen


# One class per service so that a section given in part (`recognizer: {target: …}`) keeps its own listen default.
class RecognizerServiceConfig(ServiceConfig):
    listen: str = "127.0.0.1:50051"
    # the name the workers' grpc.health.v1 reports on (zhida.recognizer.server)
    health_service: ClassVar[str] = "zhida.v1.RecognizerService"


class RoutingServiceConfig(ServiceConfig):
    listen: str = "127.0.0.1:50052"
    health_service: ClassVar[str] = "zhida.v1.RoutingService"


def _host_port(address: str) -> tuple[str, int]:
    """"host:port" (IPv6 as "[::1]:port") split; ValueError naming the address otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def _static_target(addresses: list[str]) -> str:
    """A list of worker addresses as one gRPC target of the `ipv4:`/`ipv6:` resolvers (a static address list;
    gRPC has no resolver for a list of names: one DNS name with several records is `dns:///name`)."""
    families = set()
    for address in addresses:
        host, _ = _host_port(address)
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(f"{address!r}: a list of workers takes IP addresses; for names use one "
                             f"\"dns:///name:port\" target") from None
    if len(families) > 1:
        raise ValueError("a list of workers takes IPv4 or IPv6 addresses, not both")
    if families == {6}:
        return "ipv6:" + ",".join(f"[{_host_port(a)[0]}]:{_host_port(a)[1]}" for a in addresses)
    return "ipv4:" + ",".join(addresses)


class Config(Section):
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
    sip: SipConfig = Field(default_factory=SipConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    recognizer: RecognizerServiceConfig = Field(default_factory=RecognizerServiceConfig)
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    routing: RoutingServiceConfig = Field(default_factory=RoutingServiceConfig)

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
        return yaml.safe_dump(self.model_dump(mode="json"), allow_unicode=True, sort_keys=False)


def parse(data: Any, source: str = "<config>") -> Config:
    """The whole tree validated; ConfigError naming every bad key's path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, not {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown setting"
    return f"{path}: {error['msg']} (got {error.get('input')!r:.60})"


def load(path: Path | None) -> Config:
    """The file's configuration over the defaults; the defaults alone when `path` is None."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from None
    return parse(data, str(path))
