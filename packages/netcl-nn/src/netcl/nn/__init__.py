"""netcl.nn: modules, layers, losses and initializers for netcl.

Layers that own parameters take the queue first, as in
``Linear(q, 784, 256)``: a pyopencl CommandQueue, a netcl Device, or None
for the default device. Losses and the functional forms of the layers are
in ``netcl.nn.functional``; the losses are re-exported here. Activations
and the loss modules (``CrossEntropyLoss(weight=None, ...)``, torch's
arguments) take no queue.
"""

from netcl.core.tensor import Parameter
from netcl.nn import functional, init
from netcl.nn._version import __version__
from netcl.nn.activation import (
    GELU,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from netcl.nn.attention import MultiheadAttention
from netcl.nn.batchnorm import BatchNorm1d, BatchNorm2d, GroupNorm, RMSNorm
from netcl.nn.container import ModuleDict, ModuleList, Sequential
from netcl.nn.conv import Conv2d
from netcl.nn.dropout import Dropout
from netcl.nn.embedding import Embedding
from netcl.nn.flatten import Flatten
from netcl.nn.functional import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)
from netcl.nn.linear import Linear
from netcl.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from netcl.nn.module import LoadResult, Module, StateDictError
from netcl.nn.normalization import LayerNorm
from netcl.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from netcl.nn.transformer import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LoadResult",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "MultiheadAttention",
    "NLLLoss",
    "Parameter",
    "RMSNorm",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "__version__",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "functional",
    "init",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "softmax",
]
