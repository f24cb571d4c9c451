"""The selective scan of Mamba, three ways, behind one dispatcher.

For each batch b, channel d and state n (mamba_ssm's argument convention and names):

    a_t = exp(delta_t · A)            decay in (0, 1] when A < 0, delta ≥ 0
    h_t = a_t · h_{t-1} + delta_t · B_t · u_t          (h_{-1} = 0)
    y_t = Σ_n C_t · h_t  (+ D · u_t)  (· silu(z_t))

Shapes: u, delta, z (B, D, L); A (D, N); B, C (B, N, L); D, delta_bias (D,). ``delta_bias`` is
added to delta before the optional softplus (``delta_softplus``), as in mamba_ssm.

Backends (``selective_scan(..., backend=...)``):

- ``reference``: ``selective_scan_ref``, a plain loop over L (after mamba_ssm's
  ``selective_scan_ref``). Readable; the ground truth the tests compare against.
- ``torch``: ``selective_scan_torch``, a chunked pure-PyTorch scan with its own backward. The
  sequence is cut into c = L/T chunks of T steps (T ≈ √L, 32 at L = 512). Pass 1 scans every
  chunk from a zero state, all chunks at once (T loop steps on (B, c, N, D) states, D innermost);
  a loop over the c chunks carries the true state across chunk boundaries (a whole chunk decays
  by exp(A·Σ delta)); pass 2 reruns every chunk from its true initial state and reads y out:
  2T + c Python steps instead of L. The decays are recomputed where needed, never stored: on CPU
  filling fresh memory (page faults) costs more than exp(delta·A), computed as
  exp2(delta·A·log2 e), which runs ~4× faster than torch.exp on CPU (one more rounding, of
  A·log2 e, in the exponent). Every exponent is ≤ 0 (products of decays, never a division by one), so nothing
  overflows however large delta·|A| grows. Autograd keeps only the inputs (laid out by step) and
  the chunk-entry states (B, c, N, D). The backward reruns the states forward, keeping one every
  T1 ≈ √(T/2) steps and summing on the way what each chunk's own gy hands to the chunk before
  (Σ_t a_0⋯a_t·C_t·gy_t), carries that adjoint across chunks, then walks back over the
  sub-chunks of T1 steps, rerunning each from its kept state, to meet the true adjoints.
  Memory: no (B, D, L, N) tensor at all, only about 2√(2T) + 8 states of 1/T of one (0.6 of
  one at L = 512) plus (B, D, L)-sized vectors — never the log L copies of a Hillis–Steele
  scan, which ran out of 137 GiB at batch 64. (Mamba-2's segment-sum form needs a T×T decay
  matrix per (d, n) here, because A is per channel and state: T× the memory.) Computes in
  float32 (float64 for float64 inputs) and returns u's dtype.
- ``fused``: mamba_ssm's CUDA kernel ``selective_scan_fn`` (optional extra ``ablate[cuda]``;
  ``None`` here when it does not import).

``resolve_backend(name, device)`` turns ``auto`` into ``fused`` (CUDA and mamba_ssm importable)
or ``torch``, and refuses ``fused`` where it cannot run with ``BackendUnavailable``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

# Optional fused kernels. Importing mamba_ssm needs its compiled CUDA extension; any failure
# (not installed, built for another CUDA/torch, no driver) leaves the fused path off and keeps
# the reason for the error message.
try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as selective_scan_fused
except Exception as _exc:  # ImportError, OSError (CUDA libraries), RuntimeError, …
    selective_scan_fused = None
    _FUSED_IMPORT_ERROR = f"{type(_exc).__name__}: {_exc}"
else:
    _FUSED_IMPORT_ERROR = ""

BACKENDS = ("auto", "torch", "fused", "reference")


class BackendUnavailable(RuntimeError):
    """A selective-scan backend was asked for where it cannot run."""


# ---------------------------------------------------------------------------------------------
# Backend choice
# ---------------------------------------------------------------------------------------------


def fused_available() -> bool:
    """Whether mamba_ssm's fused kernel imported (it still needs a CUDA device to run)."""
    return selective_scan_fused is not None


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The concrete backend (`torch`, `fused` or `reference`) for `name` on `device`.

    `auto` is `fused` when mamba_ssm imports and the device is CUDA, else `torch` (the fused
    kernel is CUDA-only). `fused` where it cannot run raises BackendUnavailable.
    """
    device = torch.device(device)
    if name == "auto":
        return "fused" if fused_available() and device.type == "cuda" else "torch"
    if name == "fused":
        if not fused_available():
            raise BackendUnavailable(
                "mamba_backend = 'fused' needs mamba-ssm's CUDA kernels, which did not import "
                f"({_FUSED_IMPORT_ERROR}). Install them with `pip install 'ablate[cuda]'` "
                "(mamba-ssm; needs a CUDA GPU and nvcc to build), or use "
                "mamba_backend = 'torch' (or 'auto')."
            )
        if device.type != "cuda":
            raise BackendUnavailable(
                f"mamba_backend = 'fused' runs on CUDA devices only, not on {device}; "
                "use mamba_backend = 'torch' (or 'auto')."
            )
        return "fused"
    if name in ("torch", "reference"):
        return name
    raise ValueError(f"unknown mamba backend {name!r}; expected one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------
# Shared pre- and post-processing (everything but the recurrence)
# ---------------------------------------------------------------------------------------------


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scans compute in float32, or float64 for float64 inputs (bf16/fp16 are upcast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]  # (B, D, L)
    return F.softplus(delta) if delta_softplus else delta


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    out = y if D is None else y + u * D[..., None]  # (B, D, L)
    return out if z is None else out * F.silu(z)


# ---------------------------------------------------------------------------------------------
# The reference: one step per position
# ---------------------------------------------------------------------------------------------


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """Sequential selective scan, one loop step per position.

    u: (B, D, L)  delta: (B, D, L)  A: (D, N)  B: (B, N, L)  C: (B, N, L)
    D: (D,)  z: (B, D, L)  delta_bias: (D,)  ->  out: (B, D, L), in u's dtype
    """
    dtype = u.dtype
    u, delta, A, B, C = (t.to(_work_dtype(dtype)) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (B, D, L, N)
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # (B, D, L, N)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    ys = []
    # unbind, not deltaA[:, :, i]: indexing's backward writes a full-size zero tensor per step
    for dA_t, dBu_t, C_t in zip(deltaA.unbind(2), deltaB_u.unbind(2), C.unbind(2)):
        x = dA_t * x + dBu_t
        ys.append(torch.einsum("bdn,bn->bd", x, C_t))
    y = torch.stack(ys, dim=2)  # (B, D, L)
    return _finish(y, u, D, z).to(dtype)


# ---------------------------------------------------------------------------------------------
# The chunked pure-PyTorch scan
# ---------------------------------------------------------------------------------------------
# Inside, a sequence (B, K, L) is laid out step-major, (T, B, c, K): T steps of c chunks, so that
# step t of every chunk is one contiguous slice (B, c, K) (strided slices ran ~1.5× slower on
# CPU), and states are (B, c, N, D): D innermost, so that the broadcasts run along D and the
# contractions over N (C·h) and over D (∂B, ∂C) are fast vector-matrix products. Every loop step
# works in place on preallocated buffers (fresh memory is what costs most on CPU).


def default_chunk(length: int) -> int:
    """Chunk length T ≈ √L, rounded up to a power of two (32 at L = 512): it balances the
    Python steps (≈ 5T + 2L/T in all), and longer chunks mean smaller per-step tensors."""
    return 2 ** math.ceil(math.log2(max(length, 1)) / 2)


_LOG2E = 1 / math.log(2)


def _decay_(out: Tensor, delta: Tensor, A2: Tensor) -> Tensor:
    """exp(delta·A) = 2^(delta·A·log2 e) into out: delta (..., 1, D), A2 = A·log2 e as (N, D)
    -> out (..., N, D). exp2 runs ~4× faster than exp on CPU; the one extra rounding (of A·log2 e)
    moves the result by ≲ |delta·A|·2⁻²⁴ relative in float32 (2⁻⁵³ in float64)."""
    return torch.exp2(torch.mul(delta, A2, out=out), out=out)


def _rows(x: Tensor) -> tuple[Tensor, ...]:
    """(T, B, c, K) -> T × (B, c, 1, K) views."""
    return x.unsqueeze(-2).unbind(0)


def _cols(x: Tensor) -> tuple[Tensor, ...]:
    """(T, B, c, K) -> T × (B, c, K, 1) views."""
    return x.unsqueeze(-1).unbind(0)


def _swap_last(x: Tensor) -> Tensor:
    """(B, P, Q) -> (B, Q, P), contiguous. Free when `x` is already the transposed view of a
    contiguous (B, Q, P) tensor (delta, B and C as the mixer makes them: `x_proj`'s output read
    as (B, K, L)); otherwise on CPU one 2-D transpose per batch, which takes torch's
    blocked-transpose path (~2× faster than a copy from a permuted 3-D view)."""
    if x.mT.is_contiguous():
        return x.mT
    if x.device.type != "cpu":
        return x.mT.contiguous()
    out = x.new_empty(x.shape[0], x.shape[2], x.shape[1])
    for o, xb in zip(out, x):
        o.copy_(xb.t())
    return out


def _steps(x: Tensor, T: int) -> Tensor:
    """(B, K, L) -> (T, B, c, K), c = L/T chunks (zero-padded at the end to a multiple of T):
    step t of every chunk is the contiguous slice x[t], (B, c, K)."""
    if x.shape[-1] % T:
        x = F.pad(x, (0, -x.shape[-1] % T))
    x = _swap_last(x)  # (B, L, K)
    return rearrange(x, "b (c t) k -> t b c k", t=T).contiguous()


def _unsteps(x: Tensor, length: int) -> Tensor:
    """(T, B, c, K) -> (B, K, L): the transposed view of a contiguous (B, L, K) tensor (no
    second copy; the mixer reads y back as (B, L, K) for `out_proj`, where it is contiguous)."""
    x = rearrange(x, "t b c k -> b (c t) k").contiguous()
    return x.mT[..., :length]


class _ChunkedScan(torch.autograd.Function):
    """y = C·h with h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, chunked, own backward.

    u, delta: (B, D, L)  A: (D, N)  B, C: (B, N, L)  chunk: T  ->  y: (B, D, L)
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk):
        T, length = chunk, u.shape[-1]
        with torch.no_grad(), torch.autocast(u.device.type, enabled=False):
            At = A.t().contiguous()  # (N, D)
            A2 = At * _LOG2E
            dt, ut = _steps(delta, T), _steps(u, T)  # (T, B, c, D)
            dut = dt * ut
            Bt, Ct = _steps(B, T), _steps(C, T)  # (T, B, c, N)

            d_, du_, B_ = _rows(dt), _rows(dut), _cols(Bt)  # per step, shaped to broadcast

            # pass 1: every chunk from a zero state, all chunks at once
            a = torch.empty(dt.shape[1:-1] + At.shape, dtype=At.dtype, device=At.device)
            h = torch.zeros_like(a)  # (B, c, N, D)
            for t in range(T):
                h.mul_(_decay_(a, d_[t], A2)).addcmul_(B_[t], du_[t])

            # across chunks: the state entering chunk k; a whole chunk decays by exp(A·Σdelta)
            P = _decay_(torch.empty_like(h), dt.sum(0).unsqueeze(-2), A2)  # (B, c, N, D)
            h_in = torch.zeros_like(h)
            for k in range(1, h.shape[1]):
                torch.addcmul(h[:, k - 1], P[:, k - 1], h_in[:, k - 1], out=h_in[:, k])

            # pass 2: every chunk from its true initial state, reading y out
            h.copy_(h_in)
            y = torch.empty_like(dt)  # (T, B, c, D)
            C_, y_ = _rows(Ct), _rows(y)
            for t in range(T):
                h.mul_(_decay_(a, d_[t], A2)).addcmul_(B_[t], du_[t])
                torch.matmul(C_[t], h, out=y_[t])  # Σ_n C h
        ctx.save_for_backward(ut, dt, At, Bt, Ct, h_in)
        return _unsteps(y, length)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        ut, dt, At, Bt, Ct, h_in = ctx.saved_tensors
        A2 = At * _LOG2E
        T, length = dt.shape[0], gy.shape[-1]
        T1 = max(1, math.isqrt(T // 2))  # sub-chunk length: a state kept every T1 steps
        with torch.autocast(dt.device.type, enabled=False):
            dut = dt * ut
            gyt = _steps(gy.to(dt.dtype), T)  # (T, B, c, D)
            gC = torch.empty_like(Bt)  # (T, B, c, N)
            d_, du_, gy_ = _rows(dt), _rows(dut), _rows(gyt)
            Br, Bc, Cc, gCr = _rows(Bt), _cols(Bt), _cols(Ct), _rows(gC)
            new = lambda: torch.empty_like(h_in)  # noqa: E731  a (B, c, N, D) buffer

            # S: the states again, forward in time from the chunk-entry states (kept every T1
            # steps), meeting gy in ∂C_t = Σ_d gy_t h_t. Alongside, what each chunk's own gy
            # hands to the chunk before: the adjoint g_t = ∂loss/∂h_t runs backwards in time,
            #   g_t = C_t·gy_t + a_{t+1}·g_{t+1},
            # so a chunk started from a zero adjoint at its end passes on
            #   s = Σ_t Φ_t·C_t·gy_t  with  Φ_t = a_0⋯a_t  (a product of decays: ≤ 1).
            a, h, Phi, s, tmp = new(), h_in.clone(), new().fill_(1), new().zero_(), new()
            ck = [h_in.clone()]  # the state entering each sub-chunk (rewritten in R)
            for t in range(T):
                if t and t % T1 == 0:
                    ck.append(h.clone())
                h.mul_(_decay_(a, d_[t], A2)).addcmul_(Bc[t], du_[t])  # h_t
                torch.matmul(gy_[t], h.mT, out=gCr[t])
                s.addcmul_(torch.mul(Phi.mul_(a), Cc[t], out=tmp), gy_[t])
            # across chunks: the adjoint arriving at the end of chunk k from chunk k + 1;
            # Φ ends as the decay of a whole chunk
            g_in = torch.zeros_like(s)
            for k in reversed(range(s.shape[1] - 1)):
                torch.addcmul(s[:, k + 1], Phi[:, k + 1], g_in[:, k + 1], out=g_in[:, k])

            # R: backwards over the sub-chunks: rerun each from its checkpoint keeping its
            # decays a_t and states h_{t-1}, then walk it backwards with the true adjoints.
            # With X_t = g_t·a_t·h_{t-1} = ∂loss/∂(delta_t A):
            #   ∂delta_t = Σ_n X_t A + u_t Σ_n g_t B_t    ∂A = Σ_{b,c,t} X_t delta_t
            #   ∂u_t = delta_t Σ_n g_t B_t                 ∂B_t = Σ_d g_t delta_t u_t
            As = [a, Phi, tmp] + [new() for _ in range(T1 - 3)]  # reuse the freed buffers
            Hs = [None, h] + [new() for _ in range(T1 - 2)]
            del a, h, Phi, tmp
            gBg = torch.empty_like(dt)  # Σ_n g B, (T, B, c, D)
            gdA = torch.empty_like(dt)  # Σ_n X A, (T, B, c, D)
            gB = torch.empty_like(Bt)  # (T, B, c, N)
            gBgr, gBr = _rows(gBg), _rows(gB)
            gA = torch.zeros_like(s)  # (B, c, N, D), summed over (B, c) at the end
            g, sg = s, g_in  # sg: a_{t+1}·g_{t+1}, what step t + 1 hands to step t
            for j in reversed(range(len(ck))):
                t0 = j * T1
                n = min(T, t0 + T1) - t0
                Hs[0] = ck[j]
                for i in range(n):
                    _decay_(As[i], d_[t0 + i], A2)
                    if i + 1 < n:
                        torch.mul(As[i], Hs[i], out=Hs[i + 1]).addcmul_(Bc[t0 + i], du_[t0 + i])
                for i in reversed(range(n)):
                    t = t0 + i
                    torch.addcmul(sg, Cc[t], gy_[t], out=g)  # g_t
                    torch.matmul(Br[t], g, out=gBgr[t])
                    torch.matmul(du_[t], g.mT, out=gBr[t])
                    sg = As[i].mul_(g)  # a_t·g_t
                    X = Hs[i].mul_(sg)
                    gA.addcmul_(X, d_[t])
                    torch.sum(X.mul_(At), -2, out=gdA[t])
                sg = g_in.copy_(sg)  # As is rewritten by the next sub-chunk
                ck[j] = None
            g_delta = _unsteps(gdA.addcmul_(ut, gBg), length)
            g_u = _unsteps(gBg.mul_(dt), length)
            g_A = gA.sum((0, 1)).t()
            g_B = _unsteps(gB, length)
            g_C = _unsteps(gC, length)
        return g_u, g_delta, g_A, g_B, g_C, None


def selective_scan_torch(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int | None = None,
) -> Tensor:
    """Chunked selective scan in pure PyTorch (see the module docstring); same contract as
    `selective_scan_ref`. `chunk_size` T defaults to ≈ √L."""
    dtype = u.dtype
    u, delta, A, B, C = (t.to(_work_dtype(dtype)) for t in (u, delta, A, B, C))
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    T = chunk_size or default_chunk(u.shape[-1])
    y = _ChunkedScan.apply(u, delta, A, B, C, T)  # (B, D, L)
    return _finish(y, u, D, z).to(dtype)


# ---------------------------------------------------------------------------------------------
# The dispatcher
# ---------------------------------------------------------------------------------------------


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    backend: str = "auto",
) -> Tensor:
    """Selective scan on the named backend (`auto` resolved for u's device); shapes as in
    `selective_scan_ref`."""
    backend = resolve_backend(backend, u.device)
    if backend == "fused":
        return selective_scan_fused(
            u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
            D=None if D is None else D.float(),
            z=None if z is None else z.contiguous(),
            delta_bias=None if delta_bias is None else delta_bias.float(),
            delta_softplus=delta_softplus,
        )
    fn = selective_scan_torch if backend == "torch" else selective_scan_ref
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
