"""Import PaddleSpeech's U2 model classes without the side effects of a plain `import paddlespeech...`.

Two things happen at import time that must stay out of a call-serving process:

* `paddlespeech.s2t.modules.ctc` tries `from ...decoders.ctcdecoder import ...`, which needs the compiled
  `paddlespeech_ctcdecoders` package (no build exists for Python 3.11).  On ImportError it runs
  `pip install paddlespeech_ctcdecoders` *inside the process*: ~16 s and a registry call, then fails anyway.
  zhida never uses those decoders (it has its own CTC prefix search), so we register a stub module under the
  decoder package's name before the import; the `try` then succeeds and no pip is run.
* an import inside paddle sets the root logger's level to WARNING; we put the previous level back.
* `paddlespeech.s2t.utils.log` adds loguru sinks in a class body: one on stdout with a background thread, and
  a file sink under `exp/log/` relative to the working directory.  We drop sinks added during the import and
  keep loguru quiet below WARNING (only PaddleSpeech logs through loguru here).

Importing this module is cheap; `load_u2_classes()` does the heavy import (paddle, ~2-3 s) once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import types
from functools import cache
from typing import Any

_CTC_DECODER_MODULE = "paddlespeech.s2t.decoders.ctcdecoder"
_STUB_NAMES = ("ctc_beam_search_decoding_batch", "ctc_greedy_decoding", "Scorer", "CTCBeamSearchDecoder")


def _missing(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("paddlespeech_ctcdecoders is not installed; zhida uses its own CTC decoder")


def _install_ctcdecoder_stub() -> None:
    if _CTC_DECODER_MODULE in sys.modules:
        return
    if importlib.util.find_spec("paddlespeech_ctcdecoders") is not None:
        return  # the real package is there: let PaddleSpeech use it
    stub = types.ModuleType(_CTC_DECODER_MODULE)
    stub.__doc__ = "Placeholder: the compiled CTC decoders are not available on this Python."
    for name in _STUB_NAMES:
        setattr(stub, name, _missing)
    sys.modules[_CTC_DECODER_MODULE] = stub


@cache
def load_u2_classes() -> types.SimpleNamespace:
    """Import and return PaddleSpeech's `U2Model` and the helpers zhida uses, without side effects."""
    import loguru

    _install_ctcdecoder_stub()
    logger = loguru.logger
    real_add = logger.add
    added: list[int] = []

    def quiet_add(sink: Any, *args: Any, **kwargs: Any) -> int:
        # Swallow file sinks (exp/log/...) and stdout sinks; record ids of anything else to remove it later.
        if isinstance(sink, str) or sink is sys.stdout:
            return -1
        handler_id = real_add(sink, *args, **kwargs)
        added.append(handler_id)
        return handler_id

    logger.add = quiet_add  # type: ignore[method-assign]
    root_level = logging.getLogger().level  # some paddle import resets the root logger's level
    try:
        import paddle
        from paddlespeech.audio.compliance import kaldi
        from paddlespeech.s2t.models.u2 import U2Model
        from paddlespeech.s2t.utils.utility import log_add
    finally:
        logger.add = real_add  # type: ignore[method-assign]
        logging.getLogger().setLevel(root_level)
        for handler_id in added:
            logger.remove(handler_id)
    with contextlib.suppress(ValueError):
        logger.remove(0)  # loguru's default DEBUG handler on stderr
    logger.add(sys.stderr, level="WARNING")
    return types.SimpleNamespace(paddle=paddle, U2Model=U2Model, kaldi=kaldi, log_add=log_add)
