"""Small composable layers shared by M3PO and TD-MPC2 (TD-MPC2's split, written for this suite).

``NormedLinear`` (Linear -> LayerNorm -> activation, optional dropout), ``SimNorm`` (simplicial
normalisation of the latent), ``mlp`` builders, and discrete (two-hot) regression over symlog bins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimNorm(nn.Module):
    """Simplicial normalisation: softmax over consecutive groups of ``dim`` features.

    :param dim: group size (TD-MPC2: 8)
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return F.softmax(x.view(*shape[:-1], -1, self.dim), dim=-1).view(shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class NormedLinear(nn.Linear):
    """Linear layer, optional dropout, then LayerNorm and an activation (TD-MPC2's order).

    :param in_features: input size
    :param out_features: output size
    :param act: activation module (default Mish)
    :param dropout: dropout probability (0 disables it)
    """

    def __init__(
        self, in_features: int, out_features: int, act: nn.Module | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act if act is not None else nn.Mish(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.dropout is not None:  # before the norm, as TD-MPC2's NormedLinear
            x = self.dropout(x)
        return self.act(self.ln(x))


def mlp(
    in_dim: int,
    hidden: list[int] | tuple[int, ...],
    out_dim: int,
    out_act: nn.Module | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """MLP of ``NormedLinear`` hidden layers and a plain (or ``out_act``-normed) output layer.

    :param in_dim: input size
    :param hidden: hidden layer sizes
    :param out_dim: output size
    :param out_act: if given, the output layer is a ``NormedLinear`` with this activation
    :param dropout: dropout after the first hidden layer (TD-MPC2's Q-functions use 0.01)
    """
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = [
        NormedLinear(dims[i], dims[i + 1], dropout=dropout * (i == 0)) for i in range(len(dims) - 1)
    ]
    layers.append(NormedLinear(dims[-1], out_dim, act=out_act) if out_act else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a module's last linear layer, so a fresh reward or value head predicts 0."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
    return module


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Discrete regression over ``num_bins`` bins uniformly spaced in symlog space.

    :param num_bins: number of bins (TD-MPC2: 101)
    :param vmin: lowest bin centre in symlog space (TD-MPC2: -10)
    :param vmax: highest bin centre in symlog space (TD-MPC2: +10)
    """

    def __init__(self, num_bins: int = 101, vmin: float = -10.0, vmax: float = 10.0) -> None:
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = num_bins
        self.vmin = vmin
        self.vmax = vmax
        self.bin_size = (vmax - vmin) / (num_bins - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Targets ``x`` of shape (..., 1) -> two-hot distributions (..., num_bins) in symlog space."""
        x = symlog(x).clamp(self.vmin, self.vmax).squeeze(-1)
        position = (x - self.vmin) / self.bin_size
        low = position.floor().clamp(0, self.num_bins - 1)
        high_weight = position - low
        low_idx = low.long()
        high_idx = (low_idx + 1).clamp(max=self.num_bins - 1)
        target = torch.zeros(*x.shape, self.num_bins, device=x.device, dtype=x.dtype)
        target.scatter_(-1, low_idx.unsqueeze(-1), (1 - high_weight).unsqueeze(-1))
        target.scatter_add_(-1, high_idx.unsqueeze(-1), high_weight.unsqueeze(-1))
        return target

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., num_bins) -> expected value (..., 1) in the original scale."""
        bins = torch.linspace(self.vmin, self.vmax, self.num_bins, device=logits.device, dtype=logits.dtype)
        return symexp((F.softmax(logits, dim=-1) * bins).sum(-1, keepdim=True))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between ``logits`` (..., num_bins) and the two-hot of ``target`` (..., 1)."""
        return -(self.encode(target) * F.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)
