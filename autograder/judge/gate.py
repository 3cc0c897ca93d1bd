"""What only attention does: its weights are a softmax of dot products of its own projections of the input.

The gate every behaviour check of an attention class starts with (checks/precondition.py). On ordinary inputs
(random tokens, sizes that vary, the module's own initial weights and then weights drawn like nn.Linear's), the
class's output is read back as weights times values: for some layer of its own that makes the values, the output
is A @ V exactly, and A must be, for some pair of its own layers (queries, keys), a softmax of c * (Q @ K.T) along
some axis, at one positive scale c shared by every head and batch entry, with any positions masked. That family
holds every mistake of the catalogue (a wrong scale, a swapped projection, the wrong axis, no mask or a wrong one,
0 instead of -inf, a mask after the softmax, heads never split or merged the wrong way, no out_proj, the weights
transposed), heads split by stride (LAYOUTS), and nothing that is not attention: a fixed mixing matrix, a uniform
average, a tiny q.k term on top of either, a softmax of anything but its own projections.

The probes are drawn from `seed`, which a course keeps secret (config.probe_seed), so a class cannot tell them
from ordinary use; a correct class passes whatever the seed.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from autograder.assignment import Attention
from autograder.errors import StudentError
from autograder.judge.expect import SAME_CODE, ZERO, fail
from autograder.judge.subjects import ModuleHandle, Subject

MIN_SPREAD = 0.02
"""The least standard deviation of the fitted logits c * q.k: below it the weights hardly depend on q.k."""
RESIDUAL = 0.03
"""The largest misfit of log A against c * q.k, as a share of that spread (plus the read-out's own error)."""
SMALLEST = 1e-4
"""Weights below this, or below READ_MARGIN read errors, are not fitted: they cannot be told apart from 0."""
READ_MARGIN = 10
"""How many times its estimated read error a weight's misfit may carry."""
REDRAWS = 3
"""Probes drawn in turn while the read-out is too coarse to tell (then the class is not shown to be attention)."""
UNREADABLE = "unreadable"
BLANK = "blank"
"""Every weight 0 or 1: nothing shows; smaller inputs are tried, and if nothing shows still, it is not attention."""
COARSEST = 0.05
"""The largest weight the read-out may fail to tell from 0 (READ_MARGIN read errors) before a probe is redrawn."""
SHRINK = (1.0, 0.5, 0.25)
"""The input's scales, in turn, while a probe's weights are too nearly 0 or 1 to show anything."""
EXACT = 1e-3
"""How far A @ V may miss the output, relative to its largest value (plus ZERO), for V to make the values."""
FLOAT32 = 2.0 ** -23
"""The outputs' rounding, relative: the read-out of each weight carries it, magnified (see _read)."""
STRIDED = "strided"
LAYOUTS = (True, False, STRIDED)
"""How a multi-head class may lay its heads out in d_out features (its projections and its output), the chapter's
way first: (tokens, heads, head_dim), True; (heads, tokens, head_dim), a view without the transpose, False;
(tokens, head_dim, heads), head h every heads-th feature (a view with its two last sizes swapped), STRIDED."""


@dataclass(frozen=True)
class Probe:
    """One ordinary use of a class: its constructor arguments and an input."""

    args: tuple
    x: torch.Tensor
    heads: int
    head_dim: int
    """Value columns per head (the wrapper: each head's d_out)."""
    form: Attention
    names: tuple[str, ...] = ()
    """The stub's names of `args`."""

    def scaled(self, factor: float) -> Probe:
        return replace(self, x=self.x * factor)


SIZES = ("d_in", "d_out", "context_length", "dropout", "num_heads")
"""The stub parameters a probe gives values (a graded attention class's other parameters need defaults)."""


def probe(sub: Subject, name: str, seed: int, square: bool | None = None) -> Probe:
    """Sizes that vary with `seed`, d_in, d_out, head_dim, tokens and context_length all different, and
    every head at least two value columns wider than the tokens (so the weights can be read back). The
    arguments are the stub's parameters without defaults (Assignment.stubs), in its order.
    `square` (a class that splits d_out among its heads; default: what the gate settled for the class): as many
    heads as each has columns, so that a class which lays d_out out as (head_dim, num_heads) reads back too."""
    form = sub.assignment.attention[name]
    rng = random.Random(seed)
    T = rng.choice((5, 6, 7))
    heads = rng.choice((2, 3)) if form.heads else 1
    head_dim = T + rng.choice((2, 3))
    if form.heads == "split" and (sub.cache.get(f"square:{name}", False) if square is None else square):
        heads = head_dim
    d_out = head_dim if form.heads == "concat" else heads * head_dim
    d_in = d_out * heads + rng.choice((1, 3))
    context = T + rng.choice((1, 2, 4))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*((2, T) if form.batched else (T,)), d_in, generator=generator)
    values = {"d_in": d_in, "d_out": d_out, "context_length": context, "dropout": 0.0, "num_heads": heads}
    names = tuple(p for p in sub.stubs[name] if "=" not in p)
    unknown = [p for p in names if p not in values]
    if unknown:
        raise ValueError(f"{name}: the attention gate gives values to {', '.join(SIZES)} only, not {unknown}")
    return Probe(tuple(values[p] for p in names), x, heads, head_dim, form, names)


DRAWS = ("uniform", "normal", None)
"""The gate's three probes: weights drawn like nn.Linear's, like randn / sqrt(fan_in), the module's own."""
SPOT_SHARE = 6
"""About one behaviour check in this many (chosen from the secret seed) is first preceded by a spot gate."""


@dataclass
class Gated:
    """A class that passed the gate on its own code (no stand-ins): the module of its last probe, kept alive in
    the subject for the last look (`recheck`), with that probe's (scaled) input and the output it gave."""

    module: ModuleHandle
    probe: Probe
    out: torch.Tensor
    turns: int = 0
    """Behaviour checks of the class begun since."""


def expect_attention_family(sub: Subject, name: str, seed: int, stand_in: tuple[str, ...] = ()) -> None:
    """Fail with fail.not_attention unless `name`'s output is attention, on three probes: weights drawn like
    nn.Linear's (uniform within 1/sqrt(fan_in)), then like randn / sqrt(fan_in), then the module's own
    initial weights, with inputs scaled so that its scores are of ordinary size. `stand_in`: the graded classes
    it builds on that are replaced by the kit's own (checks/precondition.py). Those stand-ins are not attention,
    on purpose, so a class built on them is not asked to be: its own checks compare it with them."""
    if stand_in:
        return
    refused = None
    for square in (False, True) if sub.assignment.attention[name].heads == "split" else (False,):
        sub.cache[f"square:{name}"] = square  # every later probe of the class (spot gates, last look) alike
        kept = _family(sub, name, seed)
        if isinstance(kept, Gated):
            sub.cache[f"gated:{name}"] = kept
            return
        refused = refused or kept
    sub.cache[f"square:{name}"] = False
    fail("fail.not_attention", where=refused)


def _family(sub: Subject, name: str, seed: int) -> Gated | str:
    """The gate's three probes in the geometry `probe` settles: the Gated class, or where it is not attention.
    A class that splits d_out among its heads is asked again in square probes (as many heads as columns) before it
    is refused: one whose view swaps head_dim and num_heads has heads of num_heads columns, fewer than the tokens,
    whose weights no ordinary probe can read back; its heads are still attention."""
    for i, draw in enumerate(DRAWS):
        verdict, p, kept = _verdict(sub, name, seed + i, draw)
        if verdict is False or verdict == UNREADABLE:  # (None: saturated at every scale, what shows is attention)
            return f"{name}{p.args}"
    module, p = kept
    return Gated(module, p, module(p.x))


def spot_gate(sub: Subject, name: str) -> None:
    """A class is attention every time it runs, not only while the gate looks. At behaviour checks chosen from the
    secret seed (about one in SPOT_SHARE, never predictable from the kit's code), a fresh module of the class must
    pass the gate again on a fresh probe. Fails with fail.attention_changes, and for every later check too, once a
    class is seen not to be attention (`recheck` then takes back what its earlier checks earned)."""
    gated = sub.cache.get(f"gated:{name}")
    if gated is None:  # judged with stand-ins: its own checks compare it with them
        return
    changed = sub.cache.get(f"changed:{name}")
    if changed is None:
        gated.turns += 1
        if gated.turns > 1 and _chance(sub.probe_seed, name, gated.turns) < 1 / SPOT_SHARE:
            changed = _fresh_look(sub, name, gated.turns)
    if changed is not None:
        fail("fail.attention_changes", **changed)


def recheck(sub: Subject, parts: list[str]) -> dict[str, dict]:
    """After the checks, the last look at each class of `parts` that passed the gate on its own code: its gate
    module, called on the same input as many times in a row as any check called one module, gives at the last what
    it gave then, and is attention on a fresh input. Returns the parts seen not to be attention at some point
    (spot_gate included) -> the message's parameters."""
    changed = {}
    for name in parts:
        gated = sub.cache.get(f"gated:{name}")
        if gated is None or name in sub.charged:
            continue
        found = sub.cache.get(f"changed:{name}")
        if found is None:
            sub.begin_part(name)  # its own budget pays for its last look
            if not sub.keeps_modules():  # a part left something running: its worker, and the gate's module, are gone
                continue
            try:
                found = _last_look(sub, name, gated)
            except StudentError:  # raised or over budget: no proof either way (the budget charges the part)
                found = None
        if found is not None:
            changed[name] = found
    return changed


def _fresh_look(sub: Subject, name: str, turn: int) -> dict | None:
    """A fresh module on a fresh probe (the draws in turn) is still attention; else note the change and say where."""
    seed = int(_chance(sub.probe_seed, name, -turn) * 2 ** 31)
    try:
        verdict, p, _ = _verdict(sub, name, seed, DRAWS[turn % len(DRAWS)])
    except StudentError:  # the class raised: its check says so; not a proof that it changed
        return None
    if verdict is not False:  # (UNREADABLE after every redraw proves nothing either way)
        return None
    return _changed(sub, name, f"{name}{p.args}")


def _last_look(sub: Subject, name: str, gated: Gated) -> dict | None:
    module, p = gated.module, gated.probe
    if not SAME_CODE.agree(module.forward(p.x, times=max(sub.most_calls.get(name, 1), 1)).out, gated.out):
        return _changed(sub, name, f"{name}{p.args}")
    generator = torch.Generator().manual_seed(int(_chance(sub.probe_seed, name, 0) * 2 ** 31))
    x = torch.randn(p.x.shape, generator=generator) * float(p.x.std())
    for shrink in SHRINK:
        verdict = is_attention(module, replace(p, x=x * shrink))
        if verdict is not None and verdict != BLANK:
            break
    return _changed(sub, name, f"{name}{p.args}") if verdict is False else None


def _changed(sub: Subject, name: str, where: str) -> dict:
    sub.cache[f"changed:{name}"] = {"where": where}
    return sub.cache[f"changed:{name}"]


def _chance(seed: int, name: str, turn: int) -> float:
    """A number in [0, 1) fixed by the secret seed, the class and the turn (the same on a regrade)."""
    digest = hashlib.sha256(f"{seed}:{name}:{turn}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _verdict(sub: Subject, name: str, seed: int, draw: str | None) -> tuple[bool | str | None, Probe, tuple]:
    """The verdict on one probe drawn from `seed` (redrawn while unreadable), the probe, and (module, its input)."""
    for redraw in range(REDRAWS):
        p = probe(sub, name, seed + 7919 * redraw)
        kept: list[tuple[ModuleHandle, Probe]] = []
        try:
            verdict = _judge(sub, name, p, seed + 7919 * redraw, draw, kept)
        except StudentError:
            if "context_length" not in p.names:
                raise
            # a context longer than the tokens is incidental here: a mask never cut to the tokens is another
            # check's business (the causal checks), so ask again with the context as long as the tokens
            p = replace(p, args=tuple(p.x.shape[-2] if n == "context_length" else a for n, a in zip(p.names, p.args)))
            kept.clear()
            verdict = _judge(sub, name, p, seed + 7919 * redraw, draw, kept)
        if verdict != UNREADABLE:
            break
    return verdict, p, kept[-1]


def scale_message(sub: Subject, name: str, seed: int) -> tuple[str, dict[str, str]]:
    """The message for outputs that differ when the scores are large, from what `name` divides its scores by,
    measured on a drawn probe (the scale of the fit log A = c q.k): the scale, if it is not each head's
    sqrt(head_dim); that the scale is right, if it is; only the difference, if no fit shows the scale."""
    p = probe(sub, name, seed, square=False)  # the scale of an ordinary use (a square probe hides a swapped view)
    module = sub.new(name, *p.args, stand_in=())
    module.load(_drawn(module, seed, "normal"), wait=False)  # sent with is_attention's first request
    fits: list[Fit] = []
    for shrink in SHRINK:
        if is_attention(module, p.scaled(shrink), fits) is True:
            if fits[0].axis != -1:  # a softmax along another axis: its c is no divisor of the chapter's scores
                return "fail.large_scores", {}
            divisor, right = 1 / fits[0].c, p.head_dim ** 0.5
            if abs(divisor / right - 1) < 0.01:
                return "fail.large_scores_scale_right", {}
            return "fail.head_dim_scaling", {"found": f"{divisor:.3g}", "right": f"{right:.3g}"}
    return "fail.large_scores", {}


def _judge(sub: Subject, name: str, p: Probe, seed: int, draw: str | None,
           kept: list[tuple[ModuleHandle, Probe]] | None = None) -> bool | str | None:
    """`kept`, if given, receives the module and the input it was last judged on."""
    module = sub.new(name, *p.args, stand_in=())
    if draw is not None:
        module.load(_drawn(module, seed, draw), wait=False)  # sent with is_attention's first request
    else:
        p = _ordinary(module, p)
    for shrink in SHRINK:
        shown = p.scaled(shrink)
        verdict = is_attention(module, shown)
        if verdict is not None and verdict != BLANK:
            break
    if kept is not None:
        kept.append((module, shown))
    return False if verdict == BLANK else verdict


def _drawn(module: ModuleHandle, seed: int, draw: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in module.params.items():
        if key.split(".")[-1] == "mask":
            continue
        bound = 1 / max(shape[-1], 1) ** 0.5
        if draw == "uniform":
            state[key] = (torch.rand(*shape, generator=generator) * 2 - 1) * bound
        else:
            state[key] = torch.randn(*shape, generator=generator) * bound
    return state


def _ordinary(module: ModuleHandle, p: Probe) -> Probe:
    """`p` with its input scaled so that the module's own projections give scores of about one per sqrt(head_dim)
    (a fresh module whose weights are torch.rand's would otherwise make every weight 0 or 1)."""
    weights = _weights(module)
    x = p.x.double() if p.x.dim() == 3 else p.x.double().unsqueeze(0)
    P = _projections(weights, x, p.heads * p.head_dim if p.heads * p.head_dim in _widths(weights, x) else p.head_dim)
    size = max((float((Q @ K.transpose(-1, -2)).std()) for Q in P for K in P), default=1.0)
    factor = (p.head_dim ** 0.5 / max(size, 1e-6)) ** 0.5
    return p.scaled(factor)


def _weights(module: ModuleHandle, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The module's trainable weights in double precision, from `state` (default: its state_dict now)."""
    state = module.state() if state is None else state
    return {k: v.double() for k, v in state.items() if k in module.params and k.split(".")[-1] != "mask"}


def _widths(weights: dict[str, torch.Tensor], x: torch.Tensor) -> set[int]:
    return {int(W.shape[0]) for W in weights.values() if W.dim() == 2 and W.shape[1] == x.shape[-1]}


def is_attention(module: ModuleHandle, p: Probe, fits: list[Fit] | None = None) -> bool | str | None:
    """Whether `module`'s output on `p` is attention; None when it fits attention everywhere it can be read but
    some head's weights are all 0 or 1 (scores so far apart that they show nothing): the caller asks again with
    the input scaled down, which scales the scores down and keeps the family. UNREADABLE when it fits nothing but
    the read-out was too coarse to tell (a drawn out_proj nearly singular): the caller draws another probe.
    `fits`, if given, receives the fit that showed it is attention."""
    out, state = module.forward_and_state(p.x)  # one round trip: the weights it had when it gave out
    if out.shape[:-1] != p.x.shape[:-1] or not bool(torch.isfinite(out).any()):
        return False
    x = p.x.double() if p.x.dim() == 3 else p.x.double().unsqueeze(0)
    out = out.double().reshape(x.shape[0], x.shape[1], -1)
    weights = _weights(module, state)
    causal, multihead = p.form.causal, bool(p.form.heads)
    width = p.heads * p.head_dim
    if out.shape[-1] != width:
        return False
    if p.form.heads == "concat":
        return _wrapper(weights, x, out, p, causal, _heads(weights, module.info["modules"]))
    P = _projections(weights, x, width)
    saturated, blank, reads, memo = False, False, [], {}
    for y, magnify in (*_undone(weights, out, width), (out, 1.0)):
        for merged in (LAYOUTS if multihead else (True,)):
            ctx = _split(y, p.heads, p.head_dim, merged)  # each head's block of the output, as its heads were joined
            for A, S, axis, read in _read(ctx, P, p.heads, p.head_dim, causal, multihead, magnify, reads, memo,
                                          distinct_first=fits is None):
                fit = _fit(A, S, axis, read)
                if fit is not None and not fit.saturated:
                    if fits is not None:
                        fits.append(fit._replace(axis=axis))
                    return True
                saturated = saturated or (fit is not None and not math.isnan(fit.c))
                blank = blank or (fit is not None and math.isnan(fit.c))
    if saturated:
        return None
    coarse = _unread(reads)
    return coarse if coarse == UNREADABLE else BLANK if blank else False


def _unread(reads: list[float]) -> bool | str:
    """Not attention, unless the read-out was too coarse to tell."""
    return UNREADABLE if reads and READ_MARGIN * max(reads) > COARSEST else False


def _undone(weights: dict[str, torch.Tensor], out: torch.Tensor, width: int) -> list[tuple[torch.Tensor, float]]:
    """`out` before each square layer of the class (out_proj, found by shape), where that layer can be undone, with
    how much undoing it magnifies the outputs' rounding (its condition number)."""
    found = []
    for key, W in weights.items():
        if key.endswith("weight") and list(W.shape) == [width, width]:
            bias = weights.get(key[: -len("weight")] + "bias")
            try:
                found.append(((out - (bias if bias is not None else 0)) @ torch.linalg.inv(W.T),
                              float(torch.linalg.cond(W))))
            except RuntimeError:  # singular: not a layer that can be undone
                continue
    return found


def _heads(weights: dict[str, torch.Tensor], modules: dict[str, str]) -> list[str]:
    """The submodules of a wrapper that hold its heads' layers, whatever they are called (an nn.ModuleList's
    "heads.0", or "head_0" from add_module): each weight's owner, or the owner's parent where the owner is a Linear
    layer. The wrapper itself ("") is no head: a layer of its own comes after the heads."""
    owners = {key.rpartition(".")[0] for key in weights}
    return sorted({owner.rpartition(".")[0] if modules.get(owner) == "Linear" else owner for owner in owners} - {""})


def _wrapper(weights: dict[str, torch.Tensor], x: torch.Tensor, out: torch.Tensor, p: Probe,
             causal: bool, heads: list[str]) -> bool | None:
    """Each head's block of the output is attention by one of the heads' layers (`heads`: their submodules), all at
    one scale."""
    layers = [_projections({k[len(g) + 1:]: v for k, v in weights.items() if k.startswith(g + ".")}, x, p.head_dim)
              for g in heads]
    reads: list[float] = []
    memo: dict = {}
    for y, magnify in ((out, 1.0), *_undone(weights, out, p.heads * p.head_dim)):
        # first the softmax over the keys alone, each block's search ending at its first fit: what the whole search
        # below finds first, when it finds it (a correct wrapper's fits are the first candidates)
        first = [next((c for P in layers for c in _read(block.unsqueeze(1), P, 1, p.head_dim, causal, False, magnify,
                                                       [], memo) if c[2] == -1 and _fit(*c) is not None), None)
                 for block in y.split(p.head_dim, dim=-1)]
        if all(first):
            fit = _fit(*(torch.cat([c[i] for c in first], dim=1) for i in (0, 1)), -1,
                       torch.cat([c[3] for c in first], dim=1))
            if fit is not None:
                return BLANK if math.isnan(fit.c) else None if fit.saturated else True
        blocks = []  # per block of the output, what fits it alone
        for block in y.split(p.head_dim, dim=-1):
            blocks.append([(A, S, axis, read) for P in layers
                           for A, S, axis, read in _read(block.unsqueeze(1), P, 1, p.head_dim, causal, False, magnify,
                                                        reads, memo)
                           if _fit(A, S, axis, read) is not None])
            if not blocks[-1]:
                break
        else:  # the heads are one class: one scale fits them all together
            for axis in (-1, -2):
                chosen = [next((c for c in found if c[2] == axis), None) for found in blocks]
                if all(chosen):
                    fit = _fit(*(torch.cat([c[i] for c in chosen], dim=1) for i in (0, 1)), axis,
                               torch.cat([c[3] for c in chosen], dim=1))
                    if fit is not None:
                        return BLANK if math.isnan(fit.c) else None if fit.saturated else True
    return _unread(reads)


def _projections(weights: dict[str, torch.Tensor], x: torch.Tensor, width: int) -> list[torch.Tensor]:
    """What each layer of the class makes of x, (b, T, width) each, found by shape, not name: a Linear's
    (width, d_in) weight (with its bias), a (d_in, width) matrix used as x @ W, or a fused (3 width, d_in) one."""
    d_in = x.shape[-1]
    made = []
    for key, W in weights.items():
        if W.dim() != 2:
            continue
        if key.endswith("weight") and W.shape[1] == d_in and W.shape[0] in (width, 3 * width):
            bias = weights.get(key[: -len("weight")] + "bias")
            y = x @ W.T + (bias if bias is not None else 0)
            made += list(y.split(width, dim=-1))
        elif list(W.shape) == [d_in, width]:
            made.append(x @ W)
    return made


def _split(t: torch.Tensor, heads: int, head_dim: int, split: bool | str) -> torch.Tensor:
    """`t` (b, T, heads * head_dim) as (b, heads, T, head_dim) in the layout `split` (LAYOUTS)."""
    b, T = t.shape[:2]
    if split == STRIDED:
        return t.reshape(b, T, head_dim, heads).permute(0, 3, 1, 2)
    if split:
        return t.reshape(b, T, heads, head_dim).transpose(1, 2)
    return t.reshape(b, heads, T, head_dim)  # a view without the transpose: tokens and heads mixed


def _read(ctx: torch.Tensor, P: list[torch.Tensor], heads: int, head_dim: int, causal: bool, multihead: bool,
          magnify: float, reads: list[float], memo: dict, distinct_first: bool = False,
          ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]]:
    """Every (A, scores, axis, read error) worth fitting: for each layer V that, split into heads some way, gives
    ctx = A @ V exactly, A with every candidate score matrix of the class's own layers. The read error of A, per
    head: ctx's rounding (magnified `magnify` times by a layer undone) through V's pseudo-inverse. `memo` keeps
    each V's pseudo-inverse for the other outputs read back on the same layers (one is computed per V and split).
    `distinct_first`: where only whether some candidate fits matters, not which fits first, the layers are tried as
    values last to first, and the pairs of two different layers as queries and keys before a layer with itself."""
    for split in (LAYOUTS if multihead else (True,)):
        for V in (P[::-1] if distinct_first else P):  # (the values are made last, most often)
            Vh, inverse = _inverse(V, heads, head_dim, split, memo)
            A = ctx @ inverse
            error, size = (A @ Vh - ctx).abs(), ctx.abs()
            seen = ~error.isnan()  # a row the mask hides entirely is NaN: it shows nothing either way
            if not bool(seen.any()) or error[seen].max() > EXACT * size[seen].max() + ZERO:
                if FLOAT32 * magnify > 1e-4:  # a layer undone so ill-conditioned that nothing can be read back
                    reads.append(math.inf)
                continue
            smallest_singular = _smallest_singular(Vh, memo)  # (b, heads, 1, 1)
            scale = size.nan_to_num(0.0).amax(dim=(-1, -2), keepdim=True)
            read = FLOAT32 * magnify * scale * head_dim ** 0.5 / smallest_singular.clamp(min=1e-30)
            reads.append(float(read.max()))
            pairs = list(itertools.product(P, repeat=2))
            if distinct_first:  # a class's own queries and keys are seldom one layer: those pairs are tried last
                pairs = [(Q, K) for Q, K in pairs if Q is not K] + [(Q, K) for Q, K in pairs if Q is K]
            for Q, K in pairs:
                candidates = [_split(Q, heads, head_dim, split) @ _split(K, heads, head_dim, split).transpose(-1, -2)]
                if multihead:  # heads never split: one head's scores over all of d_out
                    candidates.append((Q @ K.transpose(-1, -2)).unsqueeze(1).expand_as(A))
                for S in candidates:
                    scores = [S]
                    if causal:  # 0 instead of -inf for the future
                        T = S.shape[-1]
                        scores.append(S.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), 0.0))
                    for S2 in scores:
                        for axis in ((-1, -2, 1) if multihead and heads > 1 else (-1, -2)):
                            yield A, S2, axis, read


def _inverse(V: torch.Tensor, heads: int, head_dim: int, split: bool | str,
             memo: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """V split into heads (see _split) and its pseudo-inverse, computed once per V and split while `memo` lives
    (V itself is kept there too, so that its id names no other tensor meanwhile)."""
    key = (id(V), heads, head_dim, split)
    if key not in memo:
        Vh = _split(V, heads, head_dim, split)
        memo[key] = (V, Vh, torch.linalg.pinv(Vh))
    return memo[key][1:]


def _smallest_singular(Vh: torch.Tensor, memo: dict) -> torch.Tensor:
    """Vh's smallest singular value per entry and head, (b, heads, 1, 1), computed once per Vh while `memo` lives."""
    key = ("svd", id(Vh))
    if key not in memo:
        memo[key] = (Vh, torch.linalg.svdvals(Vh)[..., -1:].unsqueeze(-1))
    return memo[key][1]


class Fit(NamedTuple):
    c: float
    saturated: bool
    """Some head of some entry shows too few weights between 0 and 1 to tell: it fits, but proves little."""
    axis: int = -1
    """The axis the weights sum to one along: -1 over the keys, as the chapter's softmax; else another axis."""


def _fit(A: torch.Tensor, S: torch.Tensor, axis: int, read: torch.Tensor) -> Fit | None:
    """The scale c > 0 with log A = c * S + (a constant along `axis`) wherever A is not masked, if there is one
    that moves the weights visibly; else None. A, S: (b, heads, T, T); `read`: A's read error, per head."""
    smallest = (READ_MARGIN * read).clamp(min=SMALLEST)
    valid = torch.isfinite(A) & (smallest < A)
    n = valid.sum(axis, keepdim=True)
    shown = (n - 1).clamp(min=0).sum(dim=(-1, -2))  # what each head of each entry shows of its weights
    if int(shown.sum()) < 2:  # all but one weight 0 or 1: nothing to fit (BLANK), unless smaller inputs show more
        return Fit(math.nan, True)
    y = torch.where(valid, torch.maximum(A, smallest).log(), 0.0)
    s = torch.where(valid, S, 0.0)
    y = torch.where(valid, y - y.sum(axis, keepdim=True) / n.clamp(min=1), 0.0)
    s = torch.where(valid, s - s.sum(axis, keepdim=True) / n.clamp(min=1), 0.0)
    c = float((s * y).sum() / (s * s).sum().clamp(min=1e-300))
    if not c > 0:
        return None
    logits = (c * s)[valid]
    spread = float(logits.std()) if logits.numel() > 1 else 0.0
    if spread < MIN_SPREAD:
        return None
    misfit = (y - c * s).abs() - READ_MARGIN * read / torch.maximum(A, smallest)  # grows as a weight shrinks
    if not bool((misfit[valid] <= RESIDUAL * spread).all()):
        return None
    return Fit(c, bool((shown < 1).any()) or int(shown.sum()) < 2 * shown.numel())  # every head, most twice
