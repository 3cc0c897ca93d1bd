"""What may cross back to the judge: plain tensors, plain values and module descriptions, or a refusal."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn


class Refused(Exception):
    """The student's object does not have the kind the request needs (e.g. not an nn.Module)."""

    def __init__(self, key: str, **params: Any):
        super().__init__(key)
        self.key = key
        self.params = params


def plain(tensor: Any, what: str) -> torch.Tensor:
    """A copy of `tensor` as an ordinary dense CPU tensor (no subclass, no graph); Refused for anything else."""
    if not isinstance(tensor, torch.Tensor):
        raise Refused("refused.not_tensor", what=what, got=type(tensor).__name__)
    if tensor.layout != torch.strided or tensor.device.type != "cpu":
        raise Refused("refused.not_tensor", what=what, got=f"{tensor.layout} tensor on {tensor.device}")
    return tensor.detach().as_subclass(torch.Tensor).clone(memory_format=torch.contiguous_format)


def plain_value(value: Any) -> Any:
    """A default or argument as wire data: plain scalars as they are, anything else by its type name."""
    if value is inspect.Parameter.empty:
        return {"$empty": True}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"$type": type(value).__name__}


def describe_module(module: nn.Module) -> dict:
    """A module's class, parameters, buffers, state keys, submodules and dropout rates, as plain data."""
    return {
        "class": type(module).__name__,
        "params": {n: list(p.shape) for n, p in module.named_parameters()},
        "buffers": {n: list(b.shape) for n, b in module.named_buffers()},
        "state_keys": list(module.state_dict().keys()),
        "modules": {n: type(m).__name__ for n, m in module.named_modules() if n},
        "dropout": {n: float(m.p) for n, m in module.named_modules() if isinstance(m, nn.Dropout)},
    }
