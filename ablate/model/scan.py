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
  sequence is cut into c = L/T chunks of T steps (T ≈ √L). Pass 1 scans every chunk from a zero
  state, all chunks at once (T loop steps on (B, c, D, N) states); a loop over the c chunks
  carries the true state across chunk boundaries (a whole chunk decays by exp(A·Σ delta));
  pass 2 reruns every chunk from its true initial state and reads y out: 2T + c Python steps
  instead of L. Every exponent is ≤ 0 (products of decays, never a division by one), so nothing
  overflows however large delta·|A| grows. Autograd keeps only the inputs and the chunk-entry
  states (B, c, D, N); the backward recomputes the decays and runs the same two-level scan in
  reverse for the adjoint state. Memory: at most one (B, D, L, N) tensor at a time (the decays,
  then the adjoints) plus (B, D, L)-sized vectors — never the log L copies of a Hillis–Steele
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
# CPU), and states are (B, c, D, N).


def default_chunk(length: int) -> int:
    """Chunk length T ≈ √L (a power of two), which balances the 2T + L/T loop steps."""
    return max(1, 2 ** round(math.log2(math.sqrt(max(length, 1)))))


def _decay(delta_t: Tensor, A: Tensor) -> Tensor:
    """exp(delta·A): (B, c, D) × (D, N) -> (B, c, D, N), a fresh tensor."""
    return (delta_t.unsqueeze(-1) * A).exp_()


def _add_drive_(h: Tensor, du_t: Tensor, B_t: Tensor) -> Tensor:
    """h += delta·u·B in place: h (B, c, D, N), du_t (B, c, D), B_t (B, c, N)."""
    return h.addcmul_(du_t.unsqueeze(-1), B_t.unsqueeze(-2))


def _steps(x: Tensor, T: int) -> Tensor:
    """(B, K, L) -> (T, B, c, K), c = L/T chunks (zero-padded at the end to a multiple of T):
    step t of every chunk is the contiguous slice x[t], (B, c, K)."""
    x = F.pad(x, (0, -x.shape[-1] % T))
    return rearrange(x, "b k (c t) -> t b c k", t=T).contiguous()


def _unsteps(steps: list[Tensor], length: int) -> Tensor:
    """T × (B, c, K) -> (B, K, L), dropping the padding."""
    return rearrange(torch.stack(steps), "t b c k -> b k (c t)")[..., :length]


class _ChunkedScan(torch.autograd.Function):
    """y = C·h with h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, chunked, own backward.

    u, delta: (B, D, L)  A: (D, N)  B, C: (B, N, L)  chunk: T  ->  y: (B, D, L)
    States are updated in place, so each loop step allocates about one (B, c, D, N) tensor.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk):
        T, length = chunk, u.shape[-1]
        with torch.no_grad(), torch.autocast(u.device.type, enabled=False):
            dt, dut = _steps(delta, T), _steps(delta * u, T)  # (T, B, c, D)
            Bt, Ct = _steps(B, T), _steps(C, T)  # (T, B, c, N)

            # pass 1: every chunk from a zero state, all chunks at once (decays kept for pass 2)
            a = [_decay(dt[t], A) for t in range(T)]  # T × (B, c, D, N)
            h = torch.zeros_like(a[0])  # (B, c, D, N)
            for t in range(T):
                _add_drive_(h.mul_(a[t]), dut[t], Bt[t])

            # across chunks: the state entering chunk k; a whole chunk decays by exp(A·Σdelta)
            P = _decay(dt.sum(0), A)  # (B, c, D, N)
            h_in = torch.zeros_like(h)
            for k in range(1, h.shape[1]):
                torch.addcmul(h[:, k - 1], P[:, k - 1], h_in[:, k - 1], out=h_in[:, k])

            # pass 2: every chunk from its true initial state, reading y out
            h, ys = h_in.clone(), []
            for t in range(T):
                _add_drive_(h.mul_(a[t]), dut[t], Bt[t])
                a[t] = None  # free as we go: one (B, D, L, N) of decays at most
                ys.append(torch.matmul(h, Ct[t].unsqueeze(-1)).squeeze(-1))  # (B, c, D)
            y = _unsteps(ys, length)  # (B, D, L)
        ctx.save_for_backward(u, delta, A, B, C, h_in)
        ctx.chunk = T
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        u, delta, A, B, C, h_in = ctx.saved_tensors
        T, length = ctx.chunk, u.shape[-1]
        with torch.autocast(u.device.type, enabled=False):
            dt, dut = _steps(delta, T), _steps(delta * u, T)  # (T, B, c, D)
            Bt, Ct = _steps(B, T), _steps(C, T)  # (T, B, c, N)
            gyt = _steps(gy.to(u.dtype), T)  # (T, B, c, D)

            # The adjoint state g_t = ∂loss/∂h_t runs backwards in time:
            #   g_t = C_t·gy_t + a_{t+1}·g_{t+1},
            # chunked like the forward. R1: every chunk from a zero adjoint at its end; s ends
            # as a_first·g_first, what a chunk hands to the previous one.
            a = [_decay(dt[t], A) for t in range(T)]  # T × (B, c, D, N)
            s = torch.zeros_like(h_in)  # (B, c, D, N)
            for t in reversed(range(T)):
                s.addcmul_(gyt[t].unsqueeze(-1), Ct[t].unsqueeze(-2)).mul_(a[t])
            P = _decay(dt.sum(0), A)
            g_in = torch.zeros_like(s)  # adjoint entering chunk k from chunk k + 1
            for k in reversed(range(s.shape[1] - 1)):
                torch.addcmul(s[:, k + 1], P[:, k + 1], g_in[:, k + 1], out=g_in[:, k])

            # R2: the true adjoints g_t, stored (T × (B, c, D, N), taking the decays' place)
            g = [None] * T
            s = g_in
            for t in reversed(range(T)):
                g[t] = torch.addcmul(s, gyt[t].unsqueeze(-1), Ct[t].unsqueeze(-2))
                s = a[t].mul_(g[t])
                a[t] = None

            # F: the states again, from the saved chunk-entry states, meeting the adjoints.
            # With X_t = g_t·a_t·h_{t-1} = ∂loss/∂(delta_t A):
            #   ∂delta_t = Σ_n X_t A + u_t Σ_n g_t B_t    ∂A = Σ_{b,t} X_t delta_t
            #   ∂u_t = delta_t Σ_n g_t B_t                 ∂B_t = Σ_d g_t delta_t u_t
            #   ∂C_t = Σ_d gy_t h_t
            h = h_in
            gA = torch.zeros_like(h_in)  # (B, c, D, N), summed over (B, c) at the end
            gdA, gB_u, gB, gC = [], [], [], []
            for t in range(T):
                gB_u.append(torch.matmul(g[t], Bt[t].unsqueeze(-1)).squeeze(-1))  # Σ_n g B
                gB.append(torch.matmul(dut[t].unsqueeze(-2), g[t]).squeeze(-2))  # (B, c, N)
                ah = _decay(dt[t], A).mul_(h)  # a_t·h_{t-1}
                X = g[t].mul_(ah)  # g_t is not needed any more
                g[t] = None
                gA.addcmul_(X, dt[t].unsqueeze(-1))
                gdA.append(X.mul_(A).sum(-1))  # (B, c, D)
                h = _add_drive_(ah, dut[t], Bt[t])  # h_t
                gC.append(torch.matmul(gyt[t].unsqueeze(-2), h).squeeze(-2))  # (B, c, N)
            gB_u = _unsteps(gB_u, length)  # (B, D, L)
            g_delta = _unsteps(gdA, length) + u * gB_u
            g_u = delta * gB_u
            g_A = gA.sum((0, 1))
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
