"""Actor forwards over rows: frozen policies with stacked weights, and a live policy as it is.

:class:`FrozenStack` holds the actor weights of G frozen policies of one architecture
(:class:`~sb3_selfplay.selfplay.actor_path.ActorSpec`), copied ONCE when the set of policies
changes. Its forward takes rows sorted by member (:class:`RowLayout`: where each member's rows
end) and runs each row through its own member's weights. The recurrent core (nearly all the
arithmetic) is one grouped matmul per layer (``torch._grouped_mm``: each member's block of rows
times its slice of the stacked weights; no padding, no per-row weight copies), so its work is
exactly the rows that use the stack; biases ride in the matmul as one more input column of ones,
and matrices are zero-padded to the 16-byte strides the grouped matmul needs. The small layers
after it run as one batched matmul over ``(G, B_max)`` rows while that padding at most doubles
the rows (:data:`MAX_PADDING`; measured faster there than G tiny products), grouped otherwise.
Where ``torch._grouped_mm`` is missing or refuses a device, the same products run as one ``mm``
per member with rows (exact, slower). ``tanh`` is computed as ``2 sigmoid(2x) - 1`` (within
2e-7; ``torch.tanh`` is ~4x slower on this CPU build).

:func:`live_forward` runs one policy's own actor modules on its rows, reading its current
weights at every call: the learner needs no copy and no refresh after an optimiser step.

Recurrent states are ``(rows, n_layers, hidden)`` here (the bank's per-slot layout).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from torch import nn

from sb3_selfplay.rnn import GRUCore, rnn_type_of
from sb3_selfplay.selfplay.actor_path import ActorSpec

__all__ = ["FrozenStack", "RowLayout", "grouped_mm", "live_forward", "row_layout"]


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


@functools.cache
def _grouped_mm_works(device_type: str) -> bool:
    """Whether ``torch._grouped_mm`` runs float32 2D x 3D products with offsets on this device, exactly."""
    fn = getattr(th, "_grouped_mm", None)
    if fn is None:
        return False
    try:
        gen = th.Generator().manual_seed(0)
        a = th.randn(12, 8, generator=gen).to(device_type)
        b = th.randn(3, 8, 4, generator=gen).to(device_type)
        offs = th.tensor([4, 4, 12], dtype=th.int32, device=device_type)
        out = fn(a, b, offs=offs)
        want = th.cat([a[:4] @ b[0], a[4:] @ b[2]])
        return out.shape == want.shape and bool(th.allclose(out, want, atol=1e-5))
    except Exception:  # any refusal (dtype, device, build) means: use the fallback
        return False


def grouped_mm(z: th.Tensor, w: th.Tensor, offsets: th.Tensor, bounds: list[int]) -> th.Tensor:
    """
    Row block ``g`` of ``z`` times ``w[g]``: ``(rows, K) x (G, K, N) -> (rows, N)``.

    :param offsets: int32 ``(G,)`` on ``z``'s device: where each block ends (cumulative).
    :param bounds: The same as Python ints, with a leading 0 (for the fallback).
    """
    if _grouped_mm_works(z.device.type):
        return th._grouped_mm(z, w, offs=offsets)
    out = z.new_empty(len(z), w.shape[2])
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        if b > a:
            th.mm(z[a:b], w[g], out=out[a:b])
    return out


def _with_ones(x: th.Tensor, width: int, below: th.Tensor | None = None) -> th.Tensor:
    """``[x, 1, below, 0...]`` as one ``(rows, width)`` tensor (the ones column carries the bias)."""
    parts = [x, x.new_ones(len(x), 1)]
    if below is not None:
        parts.append(below)
    used = sum(p.shape[1] for p in parts)
    if width > used:
        parts.append(x.new_zeros(len(x), width - used))
    return th.cat(parts, dim=1)


def _tanh(x: th.Tensor) -> th.Tensor:
    """``tanh`` as ``2 sigmoid(2x) - 1`` (within 2e-7; about 4x faster than ``torch.tanh`` on CPU here)."""
    return th.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


class _FastTanh(nn.Module):
    def forward(self, x: th.Tensor) -> th.Tensor:
        return _tanh(x)


def _lstm_cell(gates: th.Tensor, c: th.Tensor, hidden: int) -> tuple[th.Tensor, th.Tensor]:
    # tanh(g) = 2 sigmoid(2g) - 1: the g columns are doubled once, then one sigmoid covers all four gates.
    gates[:, 2 * hidden : 3 * hidden] *= 2.0
    sig = th.sigmoid(gates)
    g = sig[:, 2 * hidden : 3 * hidden].mul(2.0).sub_(1.0)
    c_new = sig[:, hidden : 2 * hidden] * c + sig[:, :hidden] * g
    return sig[:, 3 * hidden :] * _tanh(c_new), c_new


def _gru_cell(gi: th.Tensor, gh: th.Tensor, h: th.Tensor, hidden: int) -> th.Tensor:
    rz = th.sigmoid(gi[:, : 2 * hidden] + gh[:, : 2 * hidden])
    n = _tanh(gi[:, 2 * hidden : 3 * hidden] + rz[:, :hidden] * gh[:, 2 * hidden : 3 * hidden])
    z = rz[:, hidden : 2 * hidden]
    return n + z * (h - n)


@dataclass
class _Linear:
    """A stacked Linear layer: ``[W^T; b; 0]`` for grouped products, ``W^T`` and ``b`` for padded batches."""

    with_bias: th.Tensor  # (G, K, N), zero-padded to multiples of 4
    n_out: int
    weight: th.Tensor  # (G, in, out)
    bias: th.Tensor  # (G, 1, out)


class FrozenStack:
    """
    The actor weights of G frozen policies of one architecture, stacked once (detached copies).

    Layout per matrix: ``(G, K, N)`` with the transposed weight in the first rows, the bias in the
    row after the inputs, zero rows up to ``K`` and zero columns up to ``N`` (multiples of 4).
    An LSTM layer is one matrix over ``[x, 1, h]``; a GRU layer two, over ``[x, 1]`` and ``[h, 1]``.

    :param specs: The members' actor paths, all of one signature, in member order.
    """

    def __init__(self, specs: list[ActorSpec]) -> None:
        first = specs[0]
        self.size = len(specs)
        self.device = first.device
        self.dist = copy.copy(first.dist)
        self.rnn_type: str | None = None
        self.hidden = 0
        self.core: list[tuple[th.Tensor, ...]] = []
        self.layers: list[_Linear | nn.Module] = []
        with th.no_grad():
            if first.core is not None:
                self._stack_core([s.core for s in specs])  # type: ignore[misc]
            for k, module in enumerate(first.layers):
                if isinstance(module, nn.Linear):
                    mods = [s.layers[k] for s in specs]
                    w = self._matrix([m.weight.t() for m in mods], [m.bias for m in mods], module.out_features)
                    k, n = module.in_features, module.out_features
                    self.layers.append(_Linear(w, n, w[:, :k, :n].contiguous(), w[:, k : k + 1, :n].contiguous()))
                else:
                    self.layers.append(_FastTanh() if type(module) is nn.Tanh else module)

    def _matrix(self, weights_t: list[th.Tensor], biases: list[th.Tensor | None], n_out: int,
                below: list[th.Tensor] | None = None) -> th.Tensor:
        """``(G, K, N)``: ``[W^T; b; below; 0]`` per member (``below``: a second input's ``W^T``)."""
        n_in = weights_t[0].shape[0] + 1 + (below[0].shape[0] if below else 0)
        out = th.zeros(self.size, _round4(n_in), _round4(n_out), device=self.device)
        k = weights_t[0].shape[0]
        for g, w in enumerate(weights_t):
            out[g, :k, :n_out] = w
            if biases[g] is not None:
                out[g, k, :n_out] = biases[g]
            if below:
                out[g, k + 1 : k + 1 + below[g].shape[0], :n_out] = below[g]
        return out

    def _stack_core(self, cores: list[nn.RNNBase]) -> None:
        core = cores[0]
        self.rnn_type = rnn_type_of(core)
        self.hidden = hidden = core.hidden_size
        for layer in range(core.num_layers):
            w_ih = [getattr(c, f"weight_ih_l{layer}").t() for c in cores]
            w_hh = [getattr(c, f"weight_hh_l{layer}").t() for c in cores]
            if core.bias:
                b_ih = [getattr(c, f"bias_ih_l{layer}") for c in cores]
                b_hh = [getattr(c, f"bias_hh_l{layer}") for c in cores]
            else:
                b_ih = b_hh = [None] * len(cores)
            if self.rnn_type == "lstm":
                bias = [None if a is None else a + b for a, b in zip(b_ih, b_hh, strict=True)]
                self.core.append((self._matrix(w_ih, bias, 4 * hidden, below=w_hh),))
            else:
                self.core.append((self._matrix(w_ih, b_ih, 3 * hidden), self._matrix(w_hh, b_hh, 3 * hidden)))

    def forward(
        self, x: th.Tensor, h: th.Tensor | None, c: th.Tensor | None, rows: RowLayout
    ) -> tuple[th.Tensor, th.Tensor | None, th.Tensor | None]:
        """
        Logits (and new states) of rows sorted by member.

        :param x: Flat features ``(rows, in)``.
        :param h: Hidden states ``(rows, n_layers, hidden)`` (None without a core); ``c`` likewise.
        :param rows: Where each member's rows are (:func:`row_layout`).
        :return: ``(logits, h, c)``.
        """
        hidden = self.hidden
        offsets, bounds = rows.offsets, rows.bounds
        hs, cs = [], []
        for layer, mats in enumerate(self.core):
            h_l = h[:, layer]  # type: ignore[index]
            if self.rnn_type == "lstm":
                z = _with_ones(x, mats[0].shape[1], below=h_l)
                x, c_l = _lstm_cell(grouped_mm(z, mats[0], offsets, bounds), c[:, layer], hidden)  # type: ignore[index]
                cs.append(c_l)
            else:
                gi = grouped_mm(_with_ones(x, mats[0].shape[1]), mats[0], offsets, bounds)
                gh = grouped_mm(_with_ones(h_l, mats[1].shape[1]), mats[1], offsets, bounds)
                x = _gru_cell(gi, gh, h_l, hidden)
            hs.append(x)
        padded = rows.pad is not None
        if padded:  # small layers: one batched matmul over (G, B_max) beats G small products
            x = x.index_select(0, rows.pad)  # type: ignore[arg-type]
        for layer in self.layers:
            if isinstance(layer, nn.Module):
                x = layer(x)
                continue
            if padded:
                x = th.baddbmm(layer.bias, x.view(self.size, -1, x.shape[1]), layer.weight).view(len(x), layer.n_out)
                continue
            w = layer.with_bias
            x = grouped_mm(_with_ones(x, w.shape[1]), w, offsets, bounds)
            if w.shape[2] != layer.n_out:
                x = x[:, : layer.n_out]
        if padded:
            x = x.index_select(0, rows.valid)  # type: ignore[arg-type]
        if not self.core:
            return x, h, c
        h_new = th.stack(hs, dim=1)
        c_new = th.stack(cs, dim=1) if cs else c
        return x, h_new, c_new


def live_forward(
    spec: ActorSpec, x: th.Tensor, h: th.Tensor | None, c: th.Tensor | None
) -> tuple[th.Tensor, th.Tensor | None, th.Tensor | None]:
    """
    Logits (and new states) of one policy's rows through its own modules, with its current weights.

    :param x: Flat features ``(rows, in)``.
    :param h: Hidden states ``(rows, n_layers, hidden)`` (None without a core); ``c`` likewise.
    :return: ``(logits, h, c)``.
    """
    core = spec.core
    if core is not None:
        state: Any = (h.transpose(0, 1), c.transpose(0, 1))  # type: ignore[union-attr]
        if isinstance(core, nn.GRU) and not isinstance(core, GRUCore):
            out, h_new = core(x.unsqueeze(0), state[0].contiguous())
            h, c = h_new.transpose(0, 1), c
        else:
            out, (h_new, c_new) = core(x.unsqueeze(0), (state[0].contiguous(), state[1].contiguous()))
            h, c = h_new.transpose(0, 1), c_new.transpose(0, 1)
        x = out[0]
    for module in spec.layers:
        x = module(x)
    return x, h, c


@dataclass
class RowLayout:
    """
    Where each member's rows are, for rows sorted by member.

    :param offsets: int32 ``(G,)``: where each member's rows end (cumulative), on the stack's device.
    :param bounds: The same as Python ints with a leading 0.
    :param pad: For the small layers' batched matmul: the row of each ``(G, B_max)`` position
        (padding repeats a member's first row, or row 0), flat; None: those layers run grouped too.
    :param valid: The flat ``(G, B_max)`` position of each row (with ``pad``).
    """

    offsets: th.Tensor
    bounds: list[int]
    pad: th.Tensor | None = None
    valid: th.Tensor | None = None


#: Largest ``G * B_max / rows`` for which the small layers run padded (beyond it, grouped).
MAX_PADDING = 2.0


def row_layout(
    rank: np.ndarray, size: int, device: th.device, max_padding: float = MAX_PADDING
) -> tuple[np.ndarray, RowLayout]:
    """
    The order that sorts rows by member, and their :class:`RowLayout`.

    :param rank: The member of each row.
    :param size: Number of members (G).
    :param device: The stack's device.
    :param max_padding: Pad the small layers only while ``G * B_max <= max_padding * rows``.
    :return: ``(order, layout)`` with ``rank[order]`` sorted by member.
    """
    order = np.argsort(rank, kind="stable")
    counts = np.bincount(rank, minlength=size)
    ends = np.cumsum(counts)
    layout = RowLayout(th.as_tensor(ends, dtype=th.int32, device=device), [0, *ends.tolist()])
    n, b_max = len(rank), int(counts.max()) if len(rank) else 0
    if n and size * b_max <= max_padding * n:
        sorted_rank = rank[order]
        first = ends - counts
        pos = np.arange(n) - first[sorted_rank]
        pad = np.repeat(np.where(counts > 0, first, 0)[:, None], b_max, axis=1)
        pad[sorted_rank, pos] = np.arange(n)
        layout.pad = th.as_tensor(pad.reshape(-1), device=device)
        layout.valid = th.as_tensor(sorted_rank * b_max + pos, device=device)
    return order, layout
