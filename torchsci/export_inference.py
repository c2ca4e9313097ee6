"""Fast in-process inference without writing a file: :func:`optimize_for_inference`.

Beside :func:`torchsci.export` (an artifact for another process or language), this compiles the model
for this process, with inductor and weight freezing. It is reached as
``torchsci.export.optimize_for_inference``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def optimize_for_inference(model: nn.Module, example_inputs: tuple) -> Callable[..., Any]:
    """Compile ``model`` for inference with inductor and weight freezing; return the compiled callable.

    Freezing folds the weights into the compiled graph as constants (conv-batchnorm folding, weight
    prepacking for oneDNN), which on CPU is where most of inductor's inference speed-up comes from. The
    callable runs without gradients; later changes to ``model``'s weights are not seen by it. The first
    call (made here on ``example_inputs``) compiles; new shapes compile once more.

    Parameters
    ----------
    model
        The module to compile; it is put in eval mode.
    example_inputs
        Positional inputs of one batch, run once here so the compilation happens now.

    Returns
    -------
    Callable
        Takes the model's inputs and returns its outputs, without gradients.

    Examples
    --------
    >>> import torch, torchsci
    >>> fast = torchsci.export.optimize_for_inference(torch.nn.Linear(4, 2), (torch.randn(3, 4),))  # doctest: +SKIP
    """
    import torch._inductor.config as inductor_config

    model = model.eval()
    # Inductor reads freezing from its global config while compiling, which may happen at any call with
    # a new shape, so every call patches it. Passing it also as an option gives this compilation a backend
    # of its own: otherwise dynamo would reuse a graph this model already compiled without freezing.
    compiled = torch.compile(model, backend="inductor", options={"freezing": True})

    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return compiled(*args, **kwargs)

    run(*example_inputs)
    return run
