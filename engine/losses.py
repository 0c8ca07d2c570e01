"""Training losses shared by learned codecs: masked MSE, bits of likelihoods, rate + lmbda * distortion.

Torch is imported inside the functions that need it, so codec modules can name these without pulling in
torch at import (listing codecs stays cheap).
"""

from __future__ import annotations


def masked_mse(x_hat, xb, vb):
    """MSE over the valid samples only (``vb`` True); nodata samples teach the network nothing."""
    w = vb.float()
    return ((x_hat - xb) ** 2 * w).sum() / w.sum().clamp_min(1.0)


def likelihood_bits(likelihoods):
    """Total bits of a likelihood tensor, or of every tensor in a dict of them."""
    import torch

    lks = [likelihoods] if torch.is_tensor(likelihoods) else likelihoods.values()
    return sum((-torch.log2(lk)).sum() for lk in lks)


def rate_distortion_loss(out: dict, xb, vb, lmbda: float):
    """lmbda * masked MSE + bits per value of every likelihood in ``out``; returns (loss, metrics)."""
    mse = masked_mse(out["x_hat"], xb, vb)
    bpv = likelihood_bits(out["likelihoods"]) / xb.numel()
    return lmbda * mse + bpv, {"mse": mse.item(), "bpppc": bpv.item()}
