"""A model folder in PaddleSpeech's layout, validated before anything heavy is loaded.

    model.yaml                       network config; `preprocess_config` (inline or a path) holds the fbank
                                     step and optionally a `cmvn_json` step
    data/mean_std.json               global CMVN statistics
    data/lang_char/vocab.txt         one unit a line: <blank> first, <unk>, ..., <eos> (= <sos>) last
    exp/<name>/checkpoints/*.pdparams the weights

PaddleSpeech resolves the paths inside `model.yaml` against the working directory; we resolve them against
the folder, so a server can be started from anywhere.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zhida.recognizer.features import FbankConfig, GlobalCMVN

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "zhida-test-conformer"
# The committed test model; `ZHIDA_MODEL_DIR` or --model-dir point elsewhere.
PACKAGED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelError(Exception):
    """A model folder is missing or unusable; the message says what to do."""


class ModelNotFoundError(ModelError):
    pass


class CorruptModelError(ModelError):
    pass


def _missing_message(path: Path) -> str:
    name = path.name or "NAME"
    return (
        f"model folder {path} not found (or has no model.yaml). Fetch a model with "
        f"`zhida models pull {name} --dir {path.parent}`, or point --model-dir / ZHIDA_MODEL_DIR at an "
        f"existing model folder."
    )


@dataclass
class ModelFolder:
    path: Path
    config: dict[str, Any]
    vocab: list[str]
    fbank: FbankConfig
    cmvn: GlobalCMVN | None
    checkpoint: Path
    decode: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, path: Path) -> ModelFolder:
        """Read and check everything except the weights' values; raises ModelError with a clear message."""
        path = Path(path).expanduser().resolve()
        model_yaml = path / "model.yaml"
        if not path.is_dir() or not model_yaml.is_file():
            raise ModelNotFoundError(_missing_message(path))
        try:
            config = yaml.safe_load(model_yaml.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise CorruptModelError(f"{model_yaml}: not valid YAML ({exc})") from exc
        if not isinstance(config, dict) or "encoder_conf" not in config or "decoder_conf" not in config:
            raise CorruptModelError(f"{model_yaml}: not a U2 model config (no encoder_conf/decoder_conf)")

        fbank_cfg, cmvn = cls._preprocess(path, config)
        # A `cmvn_file` (CMVN as a layer inside the encoder) is resolved in model_config().

        vocab_file = path / str(config.get("vocab_filepath") or "data/lang_char/vocab.txt")
        if not vocab_file.is_file():
            raise CorruptModelError(f"{path}: vocabulary {vocab_file} is missing")
        lines = vocab_file.read_text("utf-8").splitlines()
        vocab = [line.split()[0] if line.split() else " " for line in lines]
        if len(vocab) < 3 or vocab[0] != "<blank>":
            raise CorruptModelError(f"{vocab_file}: expected <blank> first and at least 3 units")

        checkpoint = cls._find_checkpoint(path)
        decode = dict(config.get("decode") or {})
        return cls(path, config, vocab, fbank_cfg, cmvn, checkpoint, decode)

    @staticmethod
    def _preprocess(path: Path, config: dict[str, Any]) -> tuple[FbankConfig, GlobalCMVN | None]:
        pre = config.get("preprocess_config")
        if isinstance(pre, str) and pre:
            pre_file = path / pre
            if not pre_file.is_file():
                raise CorruptModelError(f"{path}: preprocess config {pre_file} is missing")
            pre = yaml.safe_load(pre_file.read_text(encoding="utf-8"))
        steps = (pre or {}).get("process") if isinstance(pre, dict) else None
        if not steps:
            raise CorruptModelError(f"{path}/model.yaml: no preprocess_config.process steps (fbank settings)")
        fbank_cfg: FbankConfig | None = None
        cmvn: GlobalCMVN | None = None
        for step in steps:
            kind = step.get("type")
            if kind == "fbank_kaldi":
                fbank_cfg = FbankConfig.from_step(step)
            elif kind == "cmvn_json":
                cmvn_file = path / str(step.get("cmvn_path", "data/mean_std.json"))
                cmvn = _load_cmvn(cmvn_file)
        if fbank_cfg is None:
            raise CorruptModelError(f"{path}/model.yaml: preprocess has no fbank_kaldi step")
        if fbank_cfg.fs != 16000:
            raise CorruptModelError(f"{path}: model expects {fbank_cfg.fs} Hz audio, not 16 kHz")
        return fbank_cfg, cmvn

    @staticmethod
    def _find_checkpoint(path: Path) -> Path:
        found = sorted(path.glob("exp/*/checkpoints/*.pdparams")) or sorted(path.rglob("*.pdparams"))
        if not found:
            raise CorruptModelError(f"{path}: no checkpoint (*.pdparams) in the model folder")
        averaged = [p for p in found if p.stem.startswith("avg_")]
        return (averaged or found)[-1]

    def model_config(self) -> dict[str, Any]:
        """The config dict for `U2Model`, with dims filled in and paths made absolute."""
        cfg = copy.deepcopy(self.config)
        cfg["input_dim"] = self.fbank.n_mels
        cfg["output_dim"] = len(self.vocab)
        if cfg.get("cmvn_file"):
            cmvn_file = self.path / str(cfg["cmvn_file"])
            if not cmvn_file.is_file():
                raise CorruptModelError(f"{self.path}: cmvn_file {cmvn_file} is missing")
            cfg["cmvn_file"] = str(cmvn_file)
            cfg.setdefault("cmvn_file_type", "json")
        cfg.setdefault("model_conf", {})
        return cfg

    def build_model(self) -> Any:
        """Construct PaddleSpeech's U2Model and load the weights (eval mode).

        Raises CorruptModelError when the checkpoint is unreadable or does not match model.yaml.
        """
        from zhida.recognizer.paddle_compat import load_u2_classes

        ns = load_u2_classes()
        try:
            model = ns.U2Model.from_config(self.model_config())
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise CorruptModelError(f"{self.path}/model.yaml: cannot build the model ({exc!r})") from exc
        try:
            state = ns.paddle.load(str(self.checkpoint))
        except Exception as exc:  # paddle raises assorted errors on a damaged pickle
            raise CorruptModelError(f"{self.checkpoint}: unreadable checkpoint ({exc!r})") from exc
        if not isinstance(state, dict):
            raise CorruptModelError(f"{self.checkpoint}: not a state dict")
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        bad_shape = [k for k in own if k in state and list(state[k].shape) != list(own[k].shape)]
        if missing or bad_shape:
            raise CorruptModelError(
                f"{self.checkpoint}: does not match model.yaml "
                f"(missing {missing[:3]}, wrong shape {bad_shape[:3]})"
            )
        model.set_state_dict(state)
        model.eval()
        return model


def _load_cmvn(path: Path) -> GlobalCMVN:
    if not path.is_file():
        raise CorruptModelError(f"CMVN statistics {path} are missing")
    try:
        return GlobalCMVN.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptModelError(f"{path}: bad CMVN statistics ({exc})") from exc
