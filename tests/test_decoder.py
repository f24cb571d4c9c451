"""The seed's LA-INR decoder, its locality biases and the encoder's interleaving, each against an
independent implementation written here from the description (not from the module's code)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ablate.data.coords import make_coord
from ablate.model.decoder import Decoder, FourierFeatures, locality_bias
from ablate.model.encoder import Encoder, interleave_index
from ablate.spec.config import ModelConfig

SMALL = ModelConfig(dim=16, heads=2, head_dim=8, feature_dim=8, num_latents=16,
                    sigmas=(64.0, 16.0, 4.0), query_sigma=16.0, mamba_backend="torch",
                    depth=1, mlp_dim=32, d_state=4, patch_size=8)


def test_default_decoder_has_the_seeds_380166_parameters():
    dec = Decoder(ModelConfig(), grid=16)
    assert sum(p.numel() for p in dec.parameters()) == 380_166
    # by hand: query 64·256+256; to_q 256·128; to_kv 256·256; to_out 128·256+256;
    # 2 bands × (embed 64·256+256 + modulate 256·256+256 + out 256·3+3); 1 chain 256·256+256
    by_hand = (64 * 256 + 256) + 256 * 128 + 256 * 256 + (128 * 256 + 256) \
        + 2 * ((64 * 256 + 256) + (256 * 256 + 256) + (256 * 3 + 3)) + (256 * 256 + 256)
    assert by_hand == 380_166


# ---------------------------------------------------------------------------------------------
# An independent implementation from the description (numpy, float64, explicit loops)
# ---------------------------------------------------------------------------------------------


def gamma(x: np.ndarray, sigma: float, feature_dim: int) -> np.ndarray:
    """[sin(π·x·ω), cos(π·x·ω)] over both axes, ω = 10 … σ log-spaced, n = feature_dim / 4."""
    n = feature_dim // 4
    omega = np.logspace(1.0, np.log10(sigma), n)
    ang = np.concatenate([np.pi * x[:, 0:1] * omega, np.pi * x[:, 1:2] * omega], axis=1)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)  # (Q, 4n)


def bias_by_hand(x: np.ndarray, mode: str, alpha: float, G: int, m: int) -> np.ndarray:
    Q = x.shape[0]
    out = np.zeros((Q, m))
    for q in range(Q):
        for j in range(m):
            if mode == "raster":
                row = min(max(math.floor(x[q, 0] * G), 0), G - 1)
                col = min(max(math.floor(x[q, 1] * G), 0), G - 1)
                t = (row * G + col) / G**2
                s = (j + 0.5) / m
                out[q, j] = -alpha * (t - s) ** 2
            elif mode == "2d":
                cy, cx = (j // G + 0.5) / G, (j % G + 0.5) / G  # patch j's centre, row-major
                d = math.hypot((x[q, 0] - cy) * G, (x[q, 1] - cx) * G)  # in patch widths
                out[q, j] = -alpha * d**2
    return out


def decode_by_hand(params: dict, cfg: ModelConfig, G: int, tokens: np.ndarray,
                   x: np.ndarray) -> np.ndarray:
    """One image: tokens (m, dim), coords (Q, 2) -> rgb (Q, 3)."""
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    lin = lambda name, z: z @ params[name + ".weight"].T + (  # noqa: E731
        params[name + ".bias"] if name + ".bias" in params else 0.0)
    q = relu(lin("query", gamma(x, cfg.query_sigma, cfg.feature_dim)))  # (Q, dim)
    Wq, Wkv = params["attn.to_q.weight"], params["attn.to_kv.weight"]
    inner = cfg.heads * cfg.head_dim
    k_all, v_all = (tokens @ Wkv.T)[:, :inner], (tokens @ Wkv.T)[:, inner:]
    qq = q @ Wq.T
    bias = bias_by_hand(x, cfg.locality, cfg.locality_alpha, G, tokens.shape[0])
    heads = []
    for h in range(cfg.heads):
        sl = slice(h * cfg.head_dim, (h + 1) * cfg.head_dim)
        scores = qq[:, sl] @ k_all[:, sl].T * cfg.head_dim**-0.5 + bias  # (Q, m)
        w = np.exp(scores - scores.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        heads.append(w @ v_all[:, sl])
    m = lin("attn.to_out", np.concatenate(heads, axis=1))  # (Q, dim)
    rgb, v = 0.0, None
    for k, sigma in enumerate(cfg.sigmas):
        h = relu(lin(f"bands.{k}.embed", gamma(x, sigma, cfg.feature_dim)))
        m_k = relu(h + lin(f"bands.{k}.modulate", m))
        v = m_k if k == 0 else relu(lin(f"bands.{k}.chain", m_k + v))
        rgb = rgb + lin(f"bands.{k}.out", v)
    return rgb


@pytest.mark.parametrize("locality", ["raster", "2d", "none"])
def test_decoder_matches_the_description(locality):
    cfg = dataclasses.replace(SMALL, locality=locality, locality_alpha=3.0)
    G = 4  # 16 patches, one LP token each
    torch.manual_seed(0)
    dec = Decoder(cfg, grid=G).double()
    params = {k: v.numpy() for k, v in dec.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, 16, 16, generator=g, dtype=torch.float64)
    coords = torch.rand(2, 37, 2, generator=g, dtype=torch.float64) * 1.1 - 0.05  # some outside
    with torch.no_grad():
        out = dec(tokens, coords).numpy()
        # a shared (stride-0) batch of queries takes the broadcast path: same answer
        shared = dec(tokens, coords[:1].expand(2, -1, -1)).numpy()
    for b in range(2):
        want = decode_by_hand(params, cfg, G, tokens[b].numpy(), coords[b].numpy())
        np.testing.assert_allclose(out[b], want, rtol=1e-9, atol=1e-9)
        want0 = decode_by_hand(params, cfg, G, tokens[b].numpy(), coords[0].numpy())
        np.testing.assert_allclose(shared[b], want0, rtol=1e-9, atol=1e-9)


def test_bands_run_in_the_order_given_and_the_chain_starts_at_the_first():
    dec = Decoder(SMALL, grid=4)
    assert [b.fourier.sigma for b in dec.bands] == [64.0, 16.0, 4.0]
    assert dec.bands[0].chain is None and all(b.chain is not None for b in dec.bands[1:])


def test_fourier_features_are_log_spaced_from_10_to_sigma_and_float32_under_autocast():
    ff = FourierFeatures(64, sigma=128.0)
    omega = ff.omega(torch.float64)
    np.testing.assert_allclose(omega.numpy(), 10 ** np.linspace(1, math.log10(128), 16))
    assert omega[0].item() == pytest.approx(10.0) and omega[-1].item() == pytest.approx(128)
    x = torch.rand(5, 2, dtype=torch.float64)
    np.testing.assert_allclose(ff(x).numpy(), gamma(x.numpy(), 128.0, 64), rtol=1e-12, atol=1e-12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = ff(x.float())
    assert low.dtype == torch.float32 and torch.equal(low, ff(x.float()))
    with pytest.raises(ValueError, match="multiple of 4"):
        FourierFeatures(10, sigma=8.0)


# ---------------------------------------------------------------------------------------------
# Locality bias: the figures the description gives
# ---------------------------------------------------------------------------------------------


def test_raster_bias_is_nearly_inert_at_alpha_10():
    G, m = 16, 256
    centres = make_coord(G)
    q = centres[None, [5 * G + 7]]  # the centre of patch (5, 7): i_q = 87, t = 87/256
    bias = locality_bias(q, "raster", 10.0, G, m)[0, 0, 0]  # (m,)
    torch.testing.assert_close(bias, -10.0 * (87 / 256 - (torch.arange(256) + 0.5) / 256) ** 2)
    own, neighbour = bias[87].item(), bias[88].item()
    assert own == pytest.approx(-10 * (0.5 / 256) ** 2)
    assert own - neighbour == pytest.approx(2 * 10 / 256**2, rel=1e-4)  # 3e-4 nats: inert
    assert bias.max() - bias.min() < 10 * 0.5  # the farthest token: < α·½² away


def test_2d_bias_is_in_patch_widths():
    G = 16
    q = make_coord(G)[None, [5 * G + 7]]
    bias = locality_bias(q, "2d", 1.0, G, G * G)[0, 0, 0].view(G, G)
    assert bias[5, 7] == 0
    assert bias[5, 8].item() == pytest.approx(-1.0)  # one patch width away
    assert bias[6, 8].item() == pytest.approx(-2.0)
    assert locality_bias(q, "none", 1.0, G, G * G) is None


# ---------------------------------------------------------------------------------------------
# Encoder: LP tokens interleaved equidistantly, drawn from N(0, 1)
# ---------------------------------------------------------------------------------------------


def test_interleave_positions_are_the_seeds():
    lp, patches = interleave_index(256, 256)
    assert torch.equal(lp, torch.linspace(0, 511, 256).long())
    assert lp[0] == 0 and lp[-1] == 511 and lp[1] == 2
    assert sorted(lp.tolist() + patches.tolist()) == list(range(512))  # a partition, in order
    assert torch.all(patches[1:] > patches[:-1])
    lp, patches = interleave_index(64, 16)  # fewer latents: spread over the whole sequence
    assert lp.tolist() == torch.linspace(0, 79, 16).long().tolist() and len(patches) == 64


def test_encoder_places_patches_and_latents_where_the_index_says():
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, num_latents=16)
    enc = Encoder(cfg, input_size=32)  # 4×4 patches of 8
    seen = {}
    enc.blocks[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("seq", args[0]))
    img = torch.rand(2, 3, 32, 32)
    out = enc(img)
    seq = seen["seq"]  # (2, 32, 16)
    assert seq.shape == (2, 32, 16) and out.shape == (2, 16, 16)
    lp = torch.linspace(0, 31, 16).long()
    torch.testing.assert_close(seq[:, lp], enc.latents.expand(2, -1, -1))
    others = [i for i in range(32) if i not in set(lp.tolist())]
    from einops import rearrange
    x = rearrange(img * 2 - 1, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=8, p2=8)
    torch.testing.assert_close(seq[:, others], enc.patch_embed(x) + enc.pos_code)


def test_latents_are_standard_normal():
    torch.manual_seed(0)
    enc = Encoder(ModelConfig(depth=1), input_size=32)
    assert enc.latents.shape == (256, 256)
    assert enc.latents.std().item() == pytest.approx(1.0, abs=0.02)
    assert abs(enc.latents.mean().item()) < 0.02


def test_fit_options_off_by_default_and_what_they_change():
    """docs/fit.md's two decoder options: both None by default (the seed's decoder, the same
    trial ids); fourier_min moves the lowest ω, cell_features adds the in-patch offset."""
    cfg = ModelConfig(dim=16, feature_dim=8, heads=1, head_dim=8, num_latents=16,
                      locality="2d", locality_alpha=3.0)
    assert cfg.fourier_min is None and cfg.cell_features is None
    assert torch.allclose(FourierFeatures(8, 128.0).omega(torch.float64)[0],
                          torch.tensor(10.0, dtype=torch.float64))
    assert FourierFeatures(8, 128.0, omega_min=1.0).omega(torch.float64)[0] == 1.0
    plain = Decoder(cfg, grid=4)
    with_cell = Decoder(dataclasses.replace(cfg, cell_features=2), grid=4)
    assert plain.cell is None and with_cell.cell.dim == 2 + 4 * 2
    extra = sum(p.numel() for p in with_cell.parameters()) - sum(
        p.numel() for p in plain.parameters())
    assert extra == len(cfg.sigmas) * with_cell.cell.dim * cfg.dim  # R_k, no bias
    from ablate.model.decoder import cell_offset
    centres = make_coord(8, dtype=torch.float64)  # 8 px, 4 patches of 2 px per side
    off = cell_offset(centres, grid=4)
    assert set(off[:, 0].tolist()) == {-0.25, 0.25}  # left/right pixel of its patch
    tokens = torch.randn(2, 16, 16)
    out = with_cell(tokens, centres.float().expand(2, -1, -1))
    assert out.shape == (2, 64, 3) and torch.isfinite(out).all()
