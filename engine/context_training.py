"""Training of the KLT codec's learned context model (torch; never imported by the decoder).

Data: each training scene is normalised, its KLT fitted, and its components quantised at several steps
exactly as the encoder does (engine/klt_codec.py). From the integer planes come

1. the linear predictors of the mean: besides "zero" and MED, a least-squares predictor over the taps
   (W, N, NW, NE, WW, NN, MED) fitted on the planes where MED beats zero, and one on the others;
2. with each plane's best predictor (the encoder's own choice), the residuals and the integer features of
   engine/context_models.features; an MLP (features -> scale index, one hidden ReLU layer) is fitted by
   minimising the bits of the residuals under the discretised Laplace of that scale;
3. the weights rounded to the fixed-point units of engine/context_models.mlp_index.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from engine import context_models as cm
from engine.entropy.laplace import SCALE_MIN, STEPS_PER_OCTAVE
from engine.klt import fit_klt, make_stage
from engine.klt_codec import choose_k, project, quantise


@numba.njit(cache=True)
def _taps(q, c):
    k, h, w = q.shape
    out = np.zeros((h * w, cm.N_TAPS), np.float64)
    t = np.zeros(cm.N_TAPS, np.int64)
    n = 0
    for y in range(h):
        for x in range(w):
            p = q[c]
            W = cm.at(p, y, x - 1, h, w)
            N = cm.at(p, y - 1, x, h, w)
            NW = cm.at(p, y - 1, x - 1, h, w)
            out[n, 0] = W
            out[n, 1] = N
            out[n, 2] = NW
            out[n, 3] = cm.at(p, y - 1, x + 1, h, w)
            out[n, 4] = cm.at(p, y, x - 2, h, w)
            out[n, 5] = cm.at(p, y - 2, x, h, w)
            out[n, 6] = cm.med(W, N, NW)
            n += 1
    return out


@numba.njit(cache=True)
def _features_of_plane(q, res, c, pred, log_std_c, preds):
    k, h, w = q.shape
    f = np.zeros((h * w, cm.N_FEATURES), np.int64)
    r = np.zeros(h * w, np.int64)
    mu = np.zeros((h, w), np.int64)
    idx = np.zeros((h, w), np.int64)
    w1 = np.zeros((1, cm.N_FEATURES), np.int64)
    one = np.zeros(1, np.int64)
    cm.plane_contexts(cm.LEARNED, q, res, mu, idx, c, pred, log_std_c, one, preds, w1, one, one, 0)
    n = 0
    for y in range(h):
        for x in range(w):
            cm.features(q, res, c, y, x, h, w, log_std_c, f[n])
            r[n] = res[c, y, x]
            n += 1
    return f, r


def quantised_planes(x: np.ndarray, valid, steps) -> list[tuple[np.ndarray, np.ndarray]]:
    """(q (k, h, w) int64, log_std (k,)) of a normalised scene at each step, as the encoder makes them."""
    mean, basis, var, used = fit_klt([(x, valid)], x.shape[0])
    out = []
    for step in steps:
        stage = make_stage(mean, basis, var, used, step, choose_k(var, step))
        q = quantise(project(x, stage), stage.step)
        out.append((q, stage.log_std.astype(np.int64)))
    return out


def fit_predictors(planes) -> np.ndarray:
    """(4, N_TAPS) int64 predictors in 1/256: zero, MED, least squares on MED-friendly planes, on the others."""
    groups = {True: ([], []), False: ([], [])}
    for q, _ in planes:
        for c in range(q.shape[0]):
            t = _taps(q, c)
            v = q[c].reshape(-1).astype(np.float64)
            if not v.any():
                continue
            smooth = np.abs(v - t[:, 6]).sum() < np.abs(v).sum()
            groups[smooth][0].append(t)
            groups[smooth][1].append(v)
    preds = np.zeros((4, cm.N_TAPS), np.int64)
    preds[1, 6] = 256
    for row, key in ((2, True), (3, False)):
        if groups[key][0]:
            a = np.concatenate(groups[key][0])
            b = np.concatenate(groups[key][1])
            coef = np.linalg.lstsq(a, b, rcond=None)[0]
            preds[row] = np.round(coef * 256).astype(np.int64)
    return preds


def training_samples(planes, preds: np.ndarray, per_set: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, F) int64, residuals (n,)) with each plane's best predictor; at most per_set per scene-step."""
    fs, rs = [], []
    for q, log_std in planes:
        k, h, w = q.shape
        nz = np.flatnonzero(np.abs(q).reshape(k, -1).max(axis=1)) if k else np.array([], int)
        kt = int(nz[-1]) + 1 if nz.size else 0
        res = np.zeros_like(q)
        f_s, r_s = [], []
        for c in range(kt):
            pred = cm.best_predictor(q, c, preds)
            f, r = _features_of_plane(q, res, c, pred, log_std[c], preds)
            f_s.append(f)
            r_s.append(r)
        if not f_s:
            continue
        f, r = np.concatenate(f_s), np.concatenate(r_s)
        pick = rng.choice(r.size, size=min(per_set, r.size), replace=False)
        fs.append(f[pick])
        rs.append(r[pick])
    return np.concatenate(fs), np.concatenate(rs)


def laplace_bits(r, z):
    """Bits of integer residuals r under a discretised Laplace of scale SCALE_MIN 2^(z / STEPS_PER_OCTAVE)."""
    import torch

    s = SCALE_MIN * torch.pow(2.0, z / STEPS_PER_OCTAVE)
    a = r.abs()
    upper = torch.exp(-(a - 0.5).clamp(min=0) / s)  # P(|X| >= a - 1/2) for a > 0, as a tail mass
    lower = torch.exp(-(a + 0.5) / s)
    p = torch.where(a == 0, 1.0 - lower, 0.5 * (upper - lower))
    return -torch.log2(p.clamp(min=2.0**-16))


def train_mlp(f: np.ndarray, r: np.ndarray, hidden: int = 12, epochs: int = 30, seed: int = 0,
              log=print) -> cm.LearnedWeights:
    """Fit the scale MLP (float), then round it to the fixed-point units of context_models.mlp_index."""
    import torch

    torch.manual_seed(seed)
    x = torch.tensor(f, dtype=torch.float32) / 16.0  # octaves
    y = torch.tensor(r, dtype=torch.float32)
    l1 = torch.nn.Linear(f.shape[1], hidden)
    l2 = torch.nn.Linear(hidden, 1)
    with torch.no_grad():  # start near "scale = mean magnitude of the neighbours"
        l2.bias.fill_(4.0 * math.log2(1.0 / SCALE_MIN))
    params = list(l1.parameters()) + list(l2.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    n = x.shape[0]
    batch = 16384
    for epoch in range(epochs):
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, batch):
            j = perm[i:i + batch]
            z = l2(torch.relu(l1(x[j]))).squeeze(1)
            loss = laplace_bits(y[j], z).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * j.numel()
        if epoch % 5 == 4 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}: {total / n:.4f} bits/sample")
        if epoch == int(epochs * 0.7):
            for g in opt.param_groups:
                g["lr"] = 1e-3
    w1 = np.round(l1.weight.detach().numpy().astype(np.float64) * 256).astype(np.int64)
    b1 = np.round(l1.bias.detach().numpy().astype(np.float64) * 4096).astype(np.int64)
    w2 = np.round(l2.weight.detach().numpy().astype(np.float64)[0] * 256).astype(np.int64)
    b2 = int(round(float(l2.bias.detach()[0]) * 65536))
    return cm.LearnedWeights(np.zeros((0, cm.N_TAPS), np.int64), w1, b1, w2, b2)


def fixed_point_bits(w: cm.LearnedWeights, f: np.ndarray, r: np.ndarray) -> float:
    """Mean ideal bits per sample of the rounded network (its index rounded, as the coder uses it)."""
    import torch

    idx = np.array([cm.mlp_index(f[i], w.w1, w.b1, w.w2, np.int64(w.b2)) for i in range(min(len(r), 200000))])
    return float(laplace_bits(torch.tensor(r[:idx.size], dtype=torch.float32),
                              torch.tensor(idx, dtype=torch.float32)).mean())
