"""Probes shared by the checks and explain/: weight copying, causality, identity probes (attention-weight read-out)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from autograder.judge.binding import role_of
from autograder.judge.contract import expect_named
from autograder.judge.expect import TOLERANCE, expect, fail
from autograder.judge.subjects import ModuleHandle, Subject

# The chapter's six-token sentence "Your journey starts with one step".
INPUTS = torch.tensor(
    [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
     [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]]
)
BATCH = torch.stack((INPUTS, INPUTS), dim=0)

# (b, T, d_in, d_out, context_length, num_heads)
SHAPES = [
    (2, 6, 3, 2, 6, 2),  # the chapter's two-sentence batch
    (1, 4, 5, 4, 8, 2),  # b = 1 and T < context_length
    (3, 1, 4, 6, 5, 3),  # a single token
    (2, 7, 8, 8, 10, 4),  # T < context_length, four heads
    (4, 10, 16, 16, 12, 8),  # eight heads
    (2, 5, 6, 4, 5, 1),  # T = context_length, one head
]
SEEDS = [0, 1, 2]


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def is_mask(name: str) -> bool:
    return name.split(".")[-1] == "mask"


def weights_of(module: ModuleHandle) -> dict[str, torch.Tensor]:
    """The module's trainable weights by name (a mask wrongly made a parameter is left out)."""
    return {k: v for k, v in module.state().items() if k in module.params and not is_mask(k)}


def copy_weights(source: ModuleHandle, target: ModuleHandle) -> None:
    """Load `source`'s parameters into `target` by name, so creation order never matters. The copy travels with
    the target's next request (its failure is raised there): a caller runs the module next."""
    names = {k for k in source.params if not is_mask(k)}
    got = {k for k in target.params if not is_mask(k)}
    if names != got:
        mapping = by_role(got, names)  # the chapter's layers under other names: charged by the layout check
        if mapping is None:
            if got - names and names - got:
                fail("fail.layer_names", where=target.label, found=layers(got - names), expected=layers(names - got))
            fail("fail.param_names", where=target.label, missing=", ".join(sorted(names - got)) or "-",
                 extra=", ".join(sorted(got - names)) or "-")
        target.load({mapping[k]: v for k, v in weights_of(source).items()}, wait=False)
        return
    if source.subject is target.subject:  # e.g. GPT-2-sized modules: the weights need not travel
        target.copy_from(source, sorted(names), wait=False)
    else:
        target.load(weights_of(source), wait=False)


def twin(sub: Subject, ref: Subject, name: str, *args, **kwargs) -> tuple[ModuleHandle, ModuleHandle]:
    """The student's and the reference's module built alike, carrying the reference's weights."""
    theirs, ours = sub.new(name, *args, **kwargs), ref.new(name, *args, **kwargs)
    copy_weights(ours, theirs)
    return theirs, ours


def expect_causal(module: ModuleHandle, b: int, T: int, d_in: int, seed: int) -> None:
    """Changing tokens after position t must not change any output at positions <= t.

    All variants travel in one batch: copy 0 is the original, copy t+1 has every token after
    position t replaced.
    """
    x = randn(b, T, d_in, seed=seed)
    variants = [x]
    for t in range(T - 1):
        changed = x.clone()
        changed[:, t + 1 :] = randn(b, T - t - 1, d_in, seed=seed + 100 + t)
        variants.append(changed)
    out = module(torch.cat(variants))
    if out.shape[:2] != (b * len(variants), T):
        fail("fail.shape", where=module.label, got=tuple(out.shape), expected=(b * len(variants), T, "..."),
             meaning="(batch, tokens, ...)")
    base = out[:b]
    for t in range(T - 1):
        changed = out[b * (t + 1) : b * (t + 2)]
        if not torch.allclose(changed[:, : t + 1], base[:, : t + 1], atol=TOLERANCE.atol,
                              rtol=TOLERANCE.rtol, equal_nan=True):
            fail(with_mask_buffer("fail.future_leak", module), where=module.label, position=t + 1, later=t + 2,
                 **mask_counts(module))


def expect_causal_gradients(module: ModuleHandle, b: int, T: int, d_in: int, d_model: int, seed: int) -> None:
    """The gradient of output position t reaches no input after t (copy t of the batch probes position t)."""
    x = randn(b, T, d_in, seed=seed).repeat(T, 1, 1)
    grad_out = torch.zeros(b * T, T, d_model)
    for t in range(T):
        grad_out[b * t : b * (t + 1), t] = 1.0
    result = module.forward(x, grad_out=grad_out)
    if result.x_grad is None:
        fail("fail.no_input_grad", where=module.label)
    scale = result.x_grad.abs().max().item() + 1e-12
    for t in range(T - 1):
        if result.x_grad[b * t : b * (t + 1), t + 1 :].abs().max().item() > TOLERANCE.atol * scale:
            fail(with_mask_buffer("fail.future_leak_grad", module), where=module.label, position=t + 1,
                 **mask_counts(module))


def mask_buffer(module: ModuleHandle) -> str | None:
    """What `module`'s `mask` buffer marks, as far as a message may say: "right" (exactly the positions above the
    diagonal), "diagonal" (the diagonal too, or part of it), "other", or None (no 2-D buffer named mask)."""
    mask = _mask(module)
    if mask is None:
        return None
    marked = mask != 0
    if bool((marked == torch.triu(torch.ones_like(marked), diagonal=1)).all()):
        return "right"
    return "diagonal" if bool(marked.diagonal().any()) else "other"


def _mask(module: ModuleHandle) -> torch.Tensor | None:
    mask = module.state().get("mask") if "mask" in module.buffers else None
    return mask if mask is not None and mask.dim() == 2 and mask.shape[0] == mask.shape[1] else None


def mask_counts(module: ModuleHandle) -> dict[str, int]:
    """How many positions the mask buffer marks, and how many lie above the diagonal (for the messages)."""
    mask = _mask(module)
    if mask is None:
        return {}
    size = mask.shape[0]
    return {"marked": int((mask != 0).sum()), "expected": size * (size - 1) // 2, "size": size}


def with_mask_buffer(key: str, module: ModuleHandle) -> str:
    """`key`, or its variant that also says what the mask buffer is: right (so the leak is not the buffer's) or
    not (it marks other positions than those above the diagonal). Without a buffer, `key` says only the leak."""
    state = mask_buffer(module)
    return key if state is None else f"{key}_mask_right" if state == "right" else f"{key}_mask_wrong"


def expect_mask_buffer(module: ModuleHandle, context_length: int) -> None:
    """mask is a (context_length, context_length) buffer, not a parameter.

    A buffer registered with persistent=False is accepted: it still moves with .to(), and the
    book's later chapters register it so.
    """
    where = module.label
    expect("mask" not in module.params, "fail.mask_is_parameter", where=where)
    expect_named(module, "mask", "buffer", where, "fail.mask_missing")
    expect(module.buffers["mask"] == [context_length, context_length], "fail.mask_shape", where=where,
           got=module.buffers["mask"], expected=[context_length, context_length])


def one_hot(T: int, d_in: int | None = None) -> torch.Tensor:
    """An identity probe's input: token j is e_j (d_in = T unless given), a batch of two alike: (2, T, d_in)."""
    return torch.eye(d_in or T)[:T].unsqueeze(0).repeat(2, 1, 1)


def by_role(names: set[str], expected: set[str]) -> dict[str, str] | None:
    """{expected name: student's name} when the student's weights `names` are the `expected` ones under other layer
    names, one for one (`W_Q.weight` for `W_query.weight`); None otherwise."""
    def renamed(name: str) -> str:
        parts = name.split(".")
        if len(parts) > 1:
            parts[-2] = role_of(parts[-2])
        return ".".join(parts)
    mapping = {renamed(n): n for n in names}
    return mapping if len(mapping) == len(names) and set(mapping) == expected else None


def layers(names) -> str:
    """The layers holding weights `names`, in order: "W_K, W_Q, W_V"."""
    return ", ".join(sorted({n.split(".")[-2] for n in names if "." in n})) or "-"


def layer_of(name: str) -> tuple[str, int | None]:
    """The layer holding weight `name` and, for a wrapper's "heads.<h>." weights, the head h.

    "W_value.weight" -> ("W_value", None), "heads.1.W_query.weight" -> ("W_query", 1); "" for a non-weight.
    """
    parts = name.split(".")
    layer = parts[-2] if len(parts) > 1 and parts[-1] == "weight" else ""
    head = int(parts[1]) if len(parts) > 2 and parts[0] == "heads" and parts[1].isdigit() else None
    return layer, head


def identity_state(params: Iterable[tuple[str, list[int]]], d_in: int, heads: int,
                   other: Callable[[str, list[int]], torch.Tensor | None] | None = None,
                   role: Callable[[str, list[int]], tuple[str, int | None]] | None = None,
                   scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Weights under which an attention module's output *is* its attention weights, twice per head.

    Tokens enter one-hot (`one_hot`); each head's value projection maps token j to `scale` * [e_j, e_j]
    (two copies, 2 * d_in rows a head), out_proj (if any) is the identity and every bias is 0, so
    output[b, i] = scale * [A[i], A[i]] per head, where A is the attention-weight matrix. `role(name, shape)`
    (by default `layer_of(name)`) names each weight's layer ("W_value", "out_proj", ...) and head; every
    other weight is `other(name, shape)`, left out when that is None. Masks are never touched.
    """
    values = (scale * torch.cat([torch.eye(d_in), torch.eye(d_in)])).repeat(heads, 1)  # (heads * 2 d_in, d_in)
    block = 2 * d_in
    state = {}
    for name, shape in params:
        if is_mask(name):
            continue
        if role is not None:
            layer, head = role(name, shape)
        else:
            layer, head = layer_of(name)
            layer = role_of(layer)
        if name.endswith("bias"):
            state[name] = torch.zeros(shape)
        elif layer == "W_value":
            state[name] = values if head is None else values[head * block : (head + 1) * block]
        elif layer == "out_proj":
            state[name] = torch.eye(values.shape[0])
        elif other is not None and (made := other(name, shape)) is not None:
            state[name] = made
    return state


def identity_probe(sub: Subject, name: str, T: int, num_heads: int | None = None,
                   dropout: float = 0.0, seed: int = 0) -> tuple[ModuleHandle, torch.Tensor]:
    """Set up `name` so that its output *is* its attention-weight matrix, repeated twice (`identity_state`).

    Inputs are one-hot tokens (d_in = T); query and key weights are random.
    """
    heads = num_heads or 1
    d_out = 2 * T * heads
    args = (T, d_out, T, dropout) + ((num_heads,) if num_heads else ())
    module = sub.new(name, *args)
    generator = torch.Generator().manual_seed(seed)
    state = identity_state(((key, module.params[key]) for key in weights_of(module)), T, heads,
                           lambda _, shape: torch.randn(*shape, generator=generator) * 2.0)
    values = [k for k in state if role_of(layer_of(k)[0]) == "W_value"]
    expect(bool(values), "fail.layer_names", where=module.label, expected="W_query, W_key, W_value",
           found=layers(module.params))
    module.load(state)
    return module, one_hot(T)


def weights_from_output(out: torch.Tensor, T: int, heads: int,
                        d_in: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an identity-probe output (b, T, heads * 2 d_in) into both copies of A: (b, heads, T, T) each."""
    b, d_in = out.shape[0], d_in or T
    per_head = out.view(b, T, heads, 2, d_in)[..., :T].permute(0, 2, 3, 1, 4)  # (b, heads, 2, T, T)
    return per_head[:, :, 0], per_head[:, :, 1]


def expect_gradients(module: ModuleHandle, x: torch.Tensor, grad_out: torch.Tensor) -> None:
    """Backpropagation reaches every trainable weight."""
    result = module.forward(x, grad_out=grad_out)
    grads = result.grads or {}
    nan = [n for n, g in grads.items() if not is_mask(n) and g is not None and bool(g.isnan().any())]
    expect(not nan, "fail.nan_gradient", where=module.label, names=", ".join(nan))
    missing = [n for n, g in grads.items() if not is_mask(n) and (g is None or not g.abs().sum() > 0)]
    expect(bool(grads) and not missing, "fail.no_gradient", where=module.label, names=", ".join(missing) or "all")


def expect_rows_sum_to_one(weights: torch.Tensor, where: str, masked: bool = False) -> None:
    """Each query's attention weights (the last axis of `weights`, (b, heads, T, T)) sum to 1. A failure says what
    the weights show instead, and names a cause only where the sums prove it: the columns sum to 1 (the softmax
    ran over the queries); only the last row sums to 1 (`masked`: the future was zeroed after the softmax); every
    row sums to one same number (the weights were scaled after the softmax)."""
    rows = weights.sum(-1)
    if torch.allclose(rows, torch.ones_like(rows), atol=TOLERANCE.atol):
        return
    columns = weights.sum(-2)
    if torch.allclose(columns, torch.ones_like(columns), atol=TOLERANCE.atol):
        fail("fail.weights_columns", where=where)
    last, earlier = rows[..., -1], rows[..., :-1]
    if masked and torch.allclose(last, torch.ones_like(last), atol=TOLERANCE.atol) and \
            bool((earlier < 1 - TOLERANCE.atol).all()):
        fail("fail.rows_not_normalised_masked", where=where)
    if torch.allclose(rows, rows.flatten()[0].expand_as(rows), atol=TOLERANCE.atol):
        fail("fail.rows_scaled", where=where, total=f"{float(rows.flatten()[0]):.3g}")
    fail("fail.rows_sum", where=where, totals=", ".join(f"{v:.3g}" for v in rows.flatten()[: rows.shape[-1]].tolist()))
