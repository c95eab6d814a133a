"""What a PyTorch training script calls on a model, beside the layers, each against
torch 2.13: Dropout's inplace."""

from __future__ import annotations

import numpy as np
import torch

import netcl.core.tensor as nt
import netcl.nn as nn
from netcl.nn import functional as F

TNN = torch.nn


def test_dropout_takes_torch_s_inplace_and_computes_out_of_place() -> None:
    assert repr(nn.Dropout(0.1, inplace=True)) == repr(TNN.Dropout(0.1, inplace=True))
    assert repr(nn.Dropout()) == repr(TNN.Dropout())
    x = nt.ones((16, 16))
    nt.manual_seed(5)
    plain = F.dropout(x, 0.5, True).numpy()
    nt.manual_seed(5)
    inplace = F.dropout(x, 0.5, True, True).numpy()  # torch's positional order
    np.testing.assert_array_equal(inplace, plain)
    assert 0 < (plain == 0).sum() < plain.size
    np.testing.assert_array_equal(x.numpy(), np.ones((16, 16)))  # left unchanged
    nt.manual_seed(5)
    np.testing.assert_array_equal(nn.Dropout(0.5, inplace=True)(x).numpy(), plain)
