"""Recurrent cores: LSTM and GRU behind one ``(h, c)`` state layout, and a fused one-step cell.

Everything downstream (buffers, the hidden-state API, opponent inference) sees a recurrent
state as a pair ``(h, c)`` of tensors shaped ``(n_layers, batch, hidden)``. For a GRU the
second tensor is carried unchanged (zeros), so no code branches on the cell type.

:func:`fused_step` runs one time step of G cores at once (actor and critic of one policy,
or the actors of G opponent snapshots) with their weights stacked, as one batched matmul
per layer instead of G ``nn.LSTM`` calls (each of which costs ~150 us of overhead here).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch as th
from torch import nn

RNN_TYPES = ("lstm", "gru")

State = tuple[th.Tensor, th.Tensor]


class GRUCore(nn.GRU):
    """``nn.GRU`` that takes and returns an ``(h, c)`` pair like ``nn.LSTM``; ``c`` passes through.

    Parameter names are those of ``nn.GRU``, so saved weights load into a plain ``nn.GRU``.
    """

    def forward(self, x: th.Tensor, state: State | None = None) -> tuple[th.Tensor, State]:  # type: ignore[override]
        if state is None:
            out, h = super().forward(x)
            return out, (h, th.zeros_like(h))
        out, h = super().forward(x, state[0])
        return out, (h, state[1])


def check_rnn_type(rnn_type: str) -> str:
    """Return the normalised cell name or raise a one-line error naming it."""
    name = str(rnn_type).lower()
    if name not in RNN_TYPES:
        raise ValueError(f"unknown rnn_type {rnn_type!r}; expected one of {', '.join(RNN_TYPES)}")
    return name


def make_rnn_core(rnn_type: str, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any) -> nn.Module:
    """Build an LSTM or GRU core with the shared ``(h, c)`` state interface (time-major)."""
    if kwargs.get("batch_first"):
        raise ValueError("lstm_kwargs: batch_first=True is not supported (cores are time-major)")
    if check_rnn_type(rnn_type) == "lstm":
        return nn.LSTM(input_size, hidden_size, num_layers=num_layers, **kwargs)
    return GRUCore(input_size, hidden_size, num_layers=num_layers, **kwargs)


def rnn_type_of(core: nn.Module) -> str:
    """The cell name of a core built by :func:`make_rnn_core` (or a plain ``nn.LSTM``/``nn.GRU``)."""
    if isinstance(core, nn.LSTM):
        return "lstm"
    if isinstance(core, nn.GRU):
        return "gru"
    raise TypeError(f"not a recurrent core: {type(core).__name__}")


class FusedWeights(NamedTuple):
    """Weights of G cores of one shape, stacked for :func:`fused_step`.

    ``layers[l]`` is ``(w_ih_t, w_hh_t, b_ih, b_hh)`` with shapes ``(G, in, gates)``,
    ``(G, hidden, gates)``, ``(G, 1, gates)``, ``(G, 1, gates)``.
    """

    rnn_type: str
    hidden_size: int
    layers: tuple[tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor], ...]


def _core_signature(core: nn.Module) -> tuple:
    return (rnn_type_of(core), core.input_size, core.hidden_size, core.num_layers, core.bias)


def stack_core_weights(cores: list[nn.Module]) -> FusedWeights:
    """Stack the weights of cores with identical shapes (detached; for inference only)."""
    sig = _core_signature(cores[0])
    if any(_core_signature(c) != sig for c in cores[1:]):
        raise ValueError("stack_core_weights: all cores must have the same type and shape")
    rnn_type, _, hidden, n_layers, bias = sig
    n_gates = (4 if rnn_type == "lstm" else 3) * hidden
    layers = []
    with th.no_grad():
        for layer in range(n_layers):
            w_ih = th.stack([getattr(c, f"weight_ih_l{layer}").t() for c in cores])
            w_hh = th.stack([getattr(c, f"weight_hh_l{layer}").t() for c in cores])
            if bias:
                b_ih = th.stack([getattr(c, f"bias_ih_l{layer}") for c in cores]).unsqueeze(1)
                b_hh = th.stack([getattr(c, f"bias_hh_l{layer}") for c in cores]).unsqueeze(1)
            else:
                b_ih = b_hh = w_ih.new_zeros(len(cores), 1, n_gates)
            layers.append((w_ih.contiguous(), w_hh.contiguous(), b_ih.contiguous(), b_hh.contiguous()))
    return FusedWeights(rnn_type, hidden, tuple(layers))


def fused_step(weights: FusedWeights, x: th.Tensor, h: th.Tensor, c: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """One time step of G stacked cores.

    :param weights: from :func:`stack_core_weights`
    :param x: input ``(G, B, in)``
    :param h: hidden state ``(G, n_layers, B, hidden)``
    :param c: cell state, same shape (ignored and returned unchanged for a GRU)
    :return: output of the last layer ``(G, B, hidden)``, new ``h`` and ``c``
    """
    hs, cs = [], []
    hidden = weights.hidden_size
    for layer, (w_ih_t, w_hh_t, b_ih, b_hh) in enumerate(weights.layers):
        h_prev = h[:, layer]
        if weights.rnn_type == "lstm":
            gates = th.baddbmm(b_ih + b_hh, x, w_ih_t).baddbmm_(h_prev, w_hh_t)
            sig = th.sigmoid(gates)
            g = th.tanh(gates[..., 2 * hidden : 3 * hidden])
            c_new = sig[..., hidden : 2 * hidden] * c[:, layer] + sig[..., :hidden] * g
            x = sig[..., 3 * hidden :] * th.tanh(c_new)
            cs.append(c_new)
        else:
            gi = th.baddbmm(b_ih, x, w_ih_t)
            gh = th.baddbmm(b_hh, h_prev, w_hh_t)
            rz = th.sigmoid(gi[..., : 2 * hidden] + gh[..., : 2 * hidden])
            n = th.tanh(gi[..., 2 * hidden :] + rz[..., :hidden] * gh[..., 2 * hidden :])
            z = rz[..., hidden:]
            x = n + z * (h_prev - n)
        hs.append(x)
    h_new = th.stack(hs, dim=1)
    c_new_all = th.stack(cs, dim=1) if cs else c
    return x, h_new, c_new_all
