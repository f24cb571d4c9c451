"""The model on a tiny config: shapes, rendering, locality, attention paths, training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from ablate.model import scan

from ablate.data.coords import make_coord
from ablate.model.decoder import CrossAttention, attention_reference
from ablate.model.inr import SRModel, build_model
from ablate.model.scan import BackendUnavailable
from ablate.spec.config import ModelConfig

TINY = ModelConfig(
    dim=32, depth=1, d_state=4, d_conv=4, expand=2, mlp_dim=64, patch_size=4, num_latents=64,
    heads=2, head_dim=16, feature_dim=16, sigmas=(32.0, 8.0), mamba_backend="torch",
)


def tiny_model(seed: int = 0, **changes) -> SRModel:
    torch.manual_seed(seed)
    return build_model(dataclasses.replace(TINY, **changes), input_size=32, device="cpu")


def images(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def grid(b: int, r: int) -> torch.Tensor:
    return make_coord(r).expand(b, -1, -1)  # (b, r², 2)


# ---------------------------------------------------------------------------------------------
# Shapes and construction
# ---------------------------------------------------------------------------------------------


def test_shapes():
    model = tiny_model()
    img = images(2)
    lat = model.encode(img)
    assert lat.shape == (2, 64, 32)  # (B, num_latents, dim)
    out = model.decode(lat, torch.rand(2, 100, 2))
    assert out.shape == (2, 100, 3) and torch.isfinite(out).all()
    assert model(img, grid(2, 32)).shape == (2, 1024, 3)
    assert model.scan_backend == "torch"


def test_num_latents_free_except_for_2d_locality():
    assert tiny_model(num_latents=16).encode(images(2)).shape == (2, 16, 32)  # raster: any m
    with pytest.raises(ValueError, match="num_latents = 16"):
        tiny_model(num_latents=16, locality="2d")(images(1), torch.rand(1, 4, 2))
    with pytest.raises(ValueError, match="patch_size = 5"):
        tiny_model(patch_size=5)


def test_wrong_input_size_is_refused():
    with pytest.raises(ValueError, match="32×32"):
        tiny_model().encode(torch.rand(1, 3, 16, 16))


def test_auto_backend_resolves_to_torch_on_cpu_and_fused_is_refused():
    assert tiny_model(mamba_backend="auto").scan_backend == "torch"
    # without mamba_ssm the message says how to install it; with it, that fused needs CUDA
    expected = "CUDA devices only" if scan.fused_available() else "ablate\\[cuda\\]"
    with pytest.raises(BackendUnavailable, match=expected):
        tiny_model(mamba_backend="fused")


def test_every_parameter_gets_a_gradient():
    model = tiny_model()
    model(images(2), torch.rand(2, 50, 2)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_scan_backends_agree_inside_the_model():
    model = tiny_model()
    img, coords = images(2), torch.rand(2, 64, 2)
    out_torch = model(img, coords)
    model.backend = "reference"
    assert model.scan_backend == "reference"
    torch.testing.assert_close(model(img, coords), out_torch, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [32, 48, 64])
def test_render_in_chunks_equals_one_full_decode(r):
    model = tiny_model()
    img = images(2)
    with torch.no_grad():
        full = model.decode(model.encode(img), grid(2, r))  # (2, r², 3), one chunk
        chunked = model.render(img, r, chunk=333)  # uneven chunks
    assert chunked.shape == (2, 3, r, r)
    torch.testing.assert_close(chunked, rearrange(full, "b (h w) c -> b c h w", h=r))
    assert torch.equal(model.render(img, r, chunk=10**6), model.render(img, r))  # cfg chunk


def test_render_at_input_size_matches_forward_on_the_pixel_grid():
    model = tiny_model()
    img = images(1)
    with torch.no_grad():
        out = model(img, grid(1, 32))
        torch.testing.assert_close(model.render(img, 32)[0, :, 5, 7], out[0, 5 * 32 + 7])


# ---------------------------------------------------------------------------------------------
# Decoder pieces
# ---------------------------------------------------------------------------------------------


def test_locality_modes_run_and_differ():
    img, coords = images(2), torch.rand(2, 40, 2)
    out = {}
    for mode in ("2d", "raster", "none"):
        model = tiny_model(locality=mode)
        out[mode] = model(img, coords)
        assert out[mode].shape == (2, 40, 3) and torch.isfinite(out[mode]).all()
    # same weights (seed), other bias
    assert not torch.allclose(out["2d"], out["raster"])
    assert not torch.allclose(out["raster"], out["none"], atol=1e-7)


def test_sdpa_matches_reference_attention():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 17, 8, generator=g)
    k, v = torch.randn(2, 2, 3, 11, 8, generator=g)
    bias = -10 * torch.rand(2, 1, 17, 11, generator=g)
    torch.testing.assert_close(
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias), attention_reference(q, k, v, bias)
    )
    attn = CrossAttention(query_dim=6, context_dim=5, heads=2, head_dim=4, out_dim=7)
    x, ctx = torch.randn(2, 9, 6, generator=g), torch.randn(2, 11, 5, generator=g)
    bias = -3 * torch.rand(2, 1, 9, 11, generator=g)
    fast = attn(x, context=ctx, bias=bias)
    attn.use_sdpa = False
    torch.testing.assert_close(fast, attn(x, context=ctx, bias=bias))


# ---------------------------------------------------------------------------------------------
# It learns
# ---------------------------------------------------------------------------------------------


def test_a_few_steps_on_one_image_reduce_the_loss():
    """100 AdamW steps fit a smooth image well below its variance (more than its mean).

    The seed's decoder has no Fourier feature below 5 cycles/image (ω starts at 10 in
    sin(π·x·ω)), so smooth ramps must come from the attention and the ReLUs: it takes more
    steps, at a higher rate, than a decoder with low frequencies would."""
    model = tiny_model()
    y, x = make_coord(32).unbind(-1)
    target = torch.stack([
        0.5 + 0.4 * torch.sin(2 * math.pi * (y + x)),
        0.5 + 0.4 * torch.cos(4 * math.pi * x),
        0.1 + 0.8 * y,
    ], dim=-1)[None]  # (1, 1024, 3)
    img = rearrange(target, "b (h w) c -> b c h w", h=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        loss = F.mse_loss(model(img, grid(1, 32)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    variance = target.var(dim=1).mean().item()  # the loss of predicting the mean colour
    assert losses[-1] < 0.01 * losses[0], losses
    assert losses[-1] < 0.1 * variance, (losses, variance)


def test_position_code_is_fixed_and_distinct():
    from ablate.model.encoder import fourier_position_code

    pos = make_coord(8)
    code = fourier_position_code(pos, dim=32, grid=8)  # 8 frequencies per axis, 1..4 cycles
    assert code.shape == (64, 32)
    torch.testing.assert_close(code[:, 0], torch.sin(2 * math.pi * pos[:, 0]))  # 1 cycle in y
    assert torch.cdist(code, code).add(torch.eye(64)).min() > 0.1  # every patch tells apart
    model = tiny_model()
    assert "encoder.pos_code" in model.state_dict()  # a buffer, not a parameter
    assert not any(n.endswith("pos_code") for n, _ in model.named_parameters())


def test_bf16_autocast_stays_close_to_fp32():
    model = tiny_model()
    img, coords = images(2), torch.rand(2, 200, 2)
    with torch.no_grad():
        ref = model(img, coords)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(img, coords)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.01  # bf16 Fourier angles: ~0.02 off


def test_shared_queries_are_computed_once_with_the_same_result():
    # an expanded (stride-0) batch of coordinates takes the broadcast path in the decoder.
    # In float64: the two paths add the same terms in different orders (the broadcast one
    # sums the batch's gradient contributions in the expand's backward), which in float32
    # leaves differences up to ~1e-5 relative on some gradient elements (more with
    # OMP_NUM_THREADS=1, whose reductions group differently). In float64 that rounding is
    # ~1e-14, far under the default tolerance (1e-7), while a real difference between the
    # paths (a wrong or missing term) is as large in float64 as in float32.
    model = tiny_model().double()
    img = images(3).double()
    shared = make_coord(24).double().expand(3, -1, -1)
    copies = shared.clone()
    assert shared.stride(0) == 0 and copies.stride(0) != 0
    a, b = model(img, shared), model(img, copies)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.square().sum(), list(model.parameters()))
    gb = torch.autograd.grad(model(img, copies).square().sum(), list(model.parameters()))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y)


def test_param_groups_decay_only_weight_matrices():
    cfg = ModelConfig(dim=16, depth=1, num_latents=16, d_state=4, mlp_dim=32, heads=1,
                      head_dim=8, feature_dim=8, patch_size=4)
    model = SRModel(cfg, input_size=16)
    decay, no_decay = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = {id(p): n for n, p in model.named_parameters()}
    quiet = {ids[id(p)] for p in no_decay["params"]}
    loud = {ids[id(p)] for p in decay["params"]}
    assert quiet | loud == set(ids.values()) and not quiet & loud  # every parameter exactly once
    for name in quiet:
        assert name.endswith((".bias", "A_log", ".D", "latents")) or "norm" in name, name
    assert "encoder.latents" in quiet
    assert any(n.endswith("A_log") for n in quiet) and any(n.endswith(".D") for n in quiet)
    assert any("norm" in n and n.endswith(".weight") for n in quiet)
    for name in loud:
        assert name.endswith(".weight") and "norm" not in name, name


def test_shifted_add_conv_equals_conv1d_with_gradients():
    """Mamba._conv's CPU path (K shifted multiply-adds in the (B, L, D) layout) against
    nn.Conv1d on the (B, D, L) layout, the reference: outputs and every gradient, float64."""
    from ablate.model.mamba import Mamba

    torch.manual_seed(0)
    m = Mamba(dim=8, d_state=4, d_conv=4, expand=2).double()
    x = torch.randn(3, 11, m.d_inner, dtype=torch.float64, requires_grad=True)
    fast = m._conv(x)
    ref = m.conv1d(rearrange(x, "b l d -> b d l"))[..., :11]
    ref = rearrange(ref, "b d l -> b l d")
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, (x, m.conv1d.weight, m.conv1d.bias), g)
    grads_ref = torch.autograd.grad(ref, (x, m.conv1d.weight, m.conv1d.bias), g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
