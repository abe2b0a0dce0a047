"""Recurrent cores: the fused one-step cell equals nn.LSTM/nn.GRU; GRU core keeps the (h, c) layout."""

from __future__ import annotations

import pytest
import torch as th

from sb3_selfplay.rnn import GRUCore, fused_step, make_rnn_core, stack_core_weights


def make_cores(rnn_type: str, n: int, layers: int, in_size: int = 5, hidden: int = 7):
    th.manual_seed(0)
    return [make_rnn_core(rnn_type, in_size, hidden, layers) for _ in range(n)]


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_step_matches_cores(rnn_type, layers):
    cores = make_cores(rnn_type, 3, layers)
    x = th.randn(3, 4, 5)
    h = th.randn(3, layers, 4, 7)
    c = th.randn(3, layers, 4, 7)
    out, h_new, c_new = fused_step(stack_core_weights(cores), x, h, c)
    for g, core in enumerate(cores):
        ref_out, (ref_h, ref_c) = core(x[g].unsqueeze(0), (h[g], c[g]))
        th.testing.assert_close(out[g], ref_out[0], atol=1e-6, rtol=1e-5)
        th.testing.assert_close(h_new[g], ref_h, atol=1e-6, rtol=1e-5)
        th.testing.assert_close(c_new[g], ref_c, atol=1e-6, rtol=1e-5)


def test_gru_core_keeps_cell_slot_and_parameter_names():
    core = GRUCore(3, 4)
    assert [n for n, _ in core.named_parameters()] == [n for n, _ in th.nn.GRU(3, 4).named_parameters()]
    c = th.randn(1, 2, 4)
    _, (h, c_out) = core(th.randn(5, 2, 3), (th.zeros(1, 2, 4), c))
    assert c_out is c and h.shape == (1, 2, 4)


def test_unknown_rnn_type_and_stacking_checks():
    with pytest.raises(ValueError, match="unknown rnn_type 'rnn'"):
        make_rnn_core("rnn", 3, 4)
    with pytest.raises(ValueError, match="same type and shape"):
        stack_core_weights([th.nn.LSTM(3, 4), th.nn.LSTM(3, 5)])
    # no-bias cores stack with zero biases
    core = th.nn.LSTM(3, 4, bias=False)
    out, _, _ = fused_step(stack_core_weights([core]), th.ones(1, 2, 3), th.zeros(1, 1, 2, 4), th.zeros(1, 1, 2, 4))
    th.testing.assert_close(out[0], core(th.ones(1, 2, 3))[0][0], atol=1e-6, rtol=1e-5)
