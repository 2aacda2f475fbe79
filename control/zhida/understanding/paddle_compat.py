"""Make Baidu LAC 2.1.2 importable on paddle 3.x.

LAC imports `paddle.fluid` and `paddle.fluid.core`, which paddle removed in 2.6; their contents moved to
`paddle.base`.  Registering the old names as aliases of the new modules before LAC is imported is enough:
LAC only uses the inference predictor API (`AnalysisConfig`, `create_paddle_predictor`, `PaddleTensor`), which
`paddle.base.core` still provides, and the output is identical on paddle 3.0-3.3.

LAC's predictor is also built here with paddle's oneDNN (MKLDNN) kernels switched off.  Paddle 3.0 turns them on
by default for CPU inference, and with them the predictor is not safe in a threaded server even when one lock
serialises every call: oneDNN keeps per-thread primitive caches keyed by the thread's id, and picking a oneDNN
kernel inserts into paddle's global kernel map (`KernelFactory::SelectKernelMap`), whose rehash under another
thread's lookup corrupts the heap.  A routing server hit by 8 client threads aborted ("corrupted double-linked
list", SIGSEGV in `OneDNNContext::SetOutputsName`) or returned other words; with oneDNN off the same load runs clean,
and LAC's small BiGRU-CRF is faster without it (docs/routing.md, "LAC and threads").

This is the only place in zhida that knows about the alias.  Importing it imports paddle (slow, ~1-2 s), so
import it lazily, right before LAC.
"""

from __future__ import annotations

import sys
from typing import Any


def install() -> None:
    """Register `paddle.fluid` and `paddle.fluid.core` as aliases of `paddle.base` (idempotent)."""
    if "paddle.fluid" in sys.modules:
        return
    import paddle
    import paddle.base
    import paddle.base.core

    sys.modules["paddle.fluid"] = paddle.base
    sys.modules["paddle.fluid.core"] = paddle.base.core
    paddle.fluid = paddle.base  # type: ignore[attr-defined]


def import_lac() -> type:
    """Return the `LAC.LAC` class, installing the alias first; its predictors are built without oneDNN."""
    install()
    import LAC.models as lac_models
    from LAC import LAC

    lac_models.AnalysisConfig = _analysis_config_without_onednn
    return LAC


def _analysis_config_without_onednn(model_dir: str) -> Any:
    """LAC's inference config, as LAC builds it, with oneDNN kernels off (see the module docstring)."""
    from paddle.base.core import AnalysisConfig

    config = AnalysisConfig(model_dir)
    config.disable_mkldnn()
    return config
