"""Selective-scan backends against the sequential reference: outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from ablate.model import scan
from ablate.model.scan import (
    BackendUnavailable,
    default_chunk,
    resolve_backend,
    selective_scan,
    selective_scan_ref,
    selective_scan_torch,
)

HAS_CUDA = torch.cuda.is_available()
HAS_FUSED = scan.fused_available() and HAS_CUDA


def make_inputs(b=2, d=3, n=4, L=16, dtype=torch.float64, device="cpu", seed=0,
                delta_scale=1.0, a_scale=1.0):
    """Random scan inputs (requires_grad): u, delta, A, B, C, D, z, delta_bias."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    ts = dict(
        u=r(b, d, L),
        delta=r(b, d, L) * 0.5 * delta_scale,
        A=-(torch.rand(d, n, generator=g, dtype=torch.float64) * 2 + 0.1) * a_scale,
        B=r(b, n, L),
        C=r(b, n, L),
        D=r(d),
        z=r(b, d, L),
        delta_bias=r(d) * 0.5,
    )
    return {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in ts.items()}


def run(fn, ts, use_D, use_z, use_bias, softplus, **kw):
    """Output and gradients (of a fixed random projection of it) w.r.t. every used input."""
    # Mamba's domain is delta + delta_bias ≥ 0: without softplus, keep the bias non-negative
    # too (the fused kernel returns NaN for negative steps; the reference would just grow)
    bias = ts["delta_bias"] if softplus else ts["delta_bias"].abs()
    args = dict(
        D=ts["D"] if use_D else None,
        z=ts["z"] if use_z else None,
        delta_bias=bias if use_bias else None,
    )
    if not softplus:  # keep delta ≥ 0 as Mamba has it, via abs
        delta = ts["delta"].abs()
    else:
        delta = ts["delta"]
    out = fn(ts["u"], delta, ts["A"], ts["B"], ts["C"], delta_softplus=softplus, **args, **kw)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    used = ["u", "delta", "A", "B", "C"]
    used += [k for k, on in (("D", use_D), ("z", use_z), ("delta_bias", use_bias)) if on]
    grads = torch.autograd.grad((out.double() * w.to(out.device)).sum(), [ts[k] for k in used])
    return out, dict(zip(used, grads))


def assert_matches(fn, ts, opts, atol, rtol, **kw):
    out_ref, g_ref = run(selective_scan_ref, ts, *opts)
    out, g = run(fn, ts, *opts, **kw)
    assert out.shape == out_ref.shape and out.dtype == out_ref.dtype
    torch.testing.assert_close(out, out_ref, atol=atol, rtol=rtol)
    assert g.keys() == g_ref.keys()
    for k in g_ref:
        torch.testing.assert_close(g[k], g_ref[k], atol=atol, rtol=rtol, msg=lambda m: f"d{k}: {m}")


OPTIONS = [  # (D, z, delta_bias, softplus)
    (True, True, True, True),
    (False, False, False, False),
    (True, False, True, False),
    (False, True, False, True),
]


@pytest.mark.parametrize("L,chunk", [(1, 4), (7, 4), (16, 4), (33, 8), (50, None), (64, 64)])
@pytest.mark.parametrize("opts", OPTIONS)
def test_torch_scan_matches_reference(L, chunk, opts):
    ts = make_inputs(L=L, seed=L)
    assert_matches(selective_scan_torch, ts, opts, atol=1e-10, rtol=1e-9, chunk_size=chunk)


@pytest.mark.parametrize("chunk", [2, 3, 12, 20, 50])
def test_torch_scan_any_chunk_length(chunk):
    """Chunk lengths that are not powers of two: ragged last chunks and backward sub-chunks."""
    ts = make_inputs(L=47, seed=chunk)
    assert_matches(selective_scan_torch, ts, (True, True, True, True), atol=1e-10, rtol=1e-9,
                   chunk_size=chunk)


def test_torch_scan_stable_for_large_decays():
    """delta·|A| of hundreds per step: no overflow (every exponent is ≤ 0)."""
    ts = make_inputs(L=40, delta_scale=200.0, a_scale=20.0)
    for dtype in (torch.float64, torch.float32):
        out = selective_scan_torch(*(ts[k].to(dtype) for k in ("u", "delta", "A", "B", "C")),
                                   delta_softplus=True, chunk_size=8)
        assert torch.isfinite(out).all()
    assert_matches(selective_scan_torch, ts, (True, True, True, True), 1e-10, 1e-9, chunk_size=8)


def test_torch_scan_float32_long_sequence():
    """float32 at L = 512 stays within float32 error of the float64 reference."""
    ts = make_inputs(b=1, d=8, n=16, L=512, seed=3)
    ref = selective_scan_ref(ts["u"], ts["delta"], ts["A"], ts["B"], ts["C"], delta_softplus=True)
    args = [ts[k].detach().float() for k in ("u", "delta", "A", "B", "C")]
    out = selective_scan_torch(*args, delta_softplus=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref.detach(), atol=1e-4, rtol=1e-4)


def test_torch_scan_gradcheck():
    ts = make_inputs(b=1, d=2, n=3, L=11)
    args = [ts[k] for k in ("u", "A", "B", "C")]
    delta = ts["delta"].detach().abs().requires_grad_()

    def f(u, delta, A, B, C):
        return scan._ChunkedScan.apply(u, delta, A, B, C, 4)

    assert torch.autograd.gradcheck(f, (args[0], delta, *args[1:]))


def test_torch_scan_saves_no_full_state_tensors():
    """Autograd keeps the inputs and chunk-boundary states, never a (B, D, L, N) tensor."""
    b, d, n, L = 2, 16, 16, 256
    ts = make_inputs(b=b, d=d, n=n, L=L, dtype=torch.float32)
    full = b * d * L * n * 4  # bytes of one (B, D, L, N) float32 tensor

    def saved_bytes(fn):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(ts["u"], ts["delta"], ts["A"], ts["B"], ts["C"], delta_softplus=True)
        return total

    assert saved_bytes(selective_scan_torch) < full / 2
    assert saved_bytes(selective_scan_ref) > full  # the loop keeps every step


def test_torch_scan_autocast_bf16():
    """bf16 inputs under autocast: computed in float32, returned as bf16."""
    ts = make_inputs(L=40, dtype=torch.float32)
    args = [ts[k].detach() for k in ("u", "delta", "A", "B", "C")]
    ref = selective_scan_torch(*args, delta_softplus=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = [a.bfloat16() if a.dim() == 3 else a for a in args]
        out = selective_scan_torch(*low, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_torch_scan_on_cuda_matches_reference():
    ts = make_inputs(b=2, d=8, n=16, L=100, dtype=torch.float32, device="cuda")
    assert_matches(selective_scan_torch, ts, (True, True, True, True), atol=1e-3, rtol=1e-3)


def test_default_chunk_is_about_sqrt_length():
    assert default_chunk(512) in (16, 32)
    assert default_chunk(1) == 1
    assert default_chunk(128) in (8, 16)


# ---------------------------------------------------------------------------------------------
# Backend choice and the dispatcher
# ---------------------------------------------------------------------------------------------


def test_resolve_backend_on_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("reference", "cpu") == "reference"
    with pytest.raises(ValueError, match="unknown mamba backend"):
        resolve_backend("cuda-magic", "cpu")


def test_fused_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(scan, "selective_scan_fused", None)
    for device in ("cpu", "cuda"):
        with pytest.raises(BackendUnavailable) as e:
            resolve_backend("fused", device)
        msg = str(e.value)
        assert "pip install 'ablate[cuda]'" in msg and "mamba_backend = 'torch'" in msg
    assert resolve_backend("auto", "cuda") == "torch"
    ts = make_inputs()
    with pytest.raises(BackendUnavailable):
        selective_scan(ts["u"], ts["delta"], ts["A"], ts["B"], ts["C"], backend="fused")


def test_fused_refuses_cpu_tensors(monkeypatch):
    monkeypatch.setattr(scan, "selective_scan_fused", lambda *a, **k: None)  # "imported"
    with pytest.raises(BackendUnavailable, match="CUDA devices only"):
        resolve_backend("fused", "cpu")


@pytest.mark.parametrize("backend", ["auto", "torch", "reference"])
def test_dispatcher_matches_reference(backend):
    ts = make_inputs(L=21)
    args = [ts[k] for k in ("u", "delta", "A", "B", "C")]
    kw = dict(D=ts["D"], z=ts["z"], delta_bias=ts["delta_bias"], delta_softplus=True)
    torch.testing.assert_close(
        selective_scan(*args, **kw, backend=backend), selective_scan_ref(*args, **kw)
    )


@pytest.mark.skipif(not HAS_FUSED, reason="mamba_ssm fused kernels or CUDA not available")
@pytest.mark.parametrize("L", [1, 33, 256])
@pytest.mark.parametrize("opts", OPTIONS)
def test_fused_matches_reference(L, opts):
    ts = make_inputs(b=2, d=8, n=16, L=L, dtype=torch.float32, device="cuda", seed=L)

    def fused(*args, **kw):
        return selective_scan(*args, backend="fused", **kw)

    assert_matches(fused, ts, opts, atol=2e-3, rtol=2e-3)
