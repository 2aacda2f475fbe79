"""Make Baidu LAC 2.1.2 importable on paddle 3.x.

LAC imports `paddle.fluid` and `paddle.fluid.core`, which paddle removed in 2.6; their contents moved to
`paddle.base`.  Registering the old names as aliases of the new modules before LAC is imported is enough:
LAC only uses the inference predictor API (`AnalysisConfig`, `create_paddle_predictor`, `PaddleTensor`), which
`paddle.base.core` still provides, and the output is identical on paddle 3.0-3.3.

This is the only place in zhida that knows about the alias.  Importing it imports paddle (slow, ~1-2 s), so
import it lazily, right before LAC.
"""

from __future__ import annotations

import sys


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
    """Return the `LAC.LAC` class, installing the alias first."""
    install()
    from LAC import LAC

    return LAC
