"""How much memory a trial needs at least, from its sizes alone: a size that cannot fit in any
machine is refused at validation (with the estimate) instead of failing every trial.

    need = footprint(data, model, train)      # [(key, bytes, what)], the biggest first
    too_big(data, model, train)               # the first entry above LIMIT, or None

The estimates are lower bounds of the allocations a trial cannot avoid (float32): the model's
parameters with their gradients and AdamW's two moments; a training batch of HR crops at every
resolution it may use; the held-out crops at every eval resolution (`test_samples` is an upper
bound of the crops: fewer when the photos do not have that many tiles). Each is blamed on the
key whose value is furthest above its default. Pure arithmetic on Python ints: no torch.
"""

from __future__ import annotations

import math

from ablate.spec import config as C

LIMIT = 2 ** 40  # 1 TiB: more than any single machine or GPU a trial runs on
F32 = 4


def liif_parameters(liif: C.LiifConfig) -> int:
    """LIIF's parameters, exactly: the EDSR-baseline encoder (head conv, 2 convs per residual
    block, body conv; 3×3, with bias) and the MLP (its input: the feature, ×9 unfolded, the
    relative coordinate and the cell)."""
    c = liif.encoder_channels
    conv = c * c * 9 + c
    encoder = 3 * c * 9 + c + 2 * liif.encoder_blocks * conv + conv
    widths = (c * (9 if liif.feature_unfold else 1) + 2 + (2 if liif.cell_decode else 0),
              *liif.mlp_widths, 3)
    return encoder + sum(a * b + b for a, b in zip(widths, widths[1:]))


def model_parameters(model: C.ModelConfig, input_size: int) -> int:
    """≈ parameters of the encoder (patch embedding, LP tokens, depth × (bidirectional Mamba +
    MLP)) and the decoder (query, cross-attention, a band per σ); LIIF's exactly."""
    if model.kind == "liif":
        return liif_parameters(model.liif or C.LiifConfig())
    d, inner = model.dim, model.expand * model.dim
    dt_rank = math.ceil(d / 16)
    mamba = (d * 2 * inner + inner * model.d_conv + inner * (dt_rank + 2 * model.d_state)
             + dt_rank * inner + inner * model.d_state + inner * d)
    block = 2 * mamba + 2 * d * model.mlp_dim + 4 * d
    encoder = 3 * model.patch_size ** 2 * d + model.num_latents * d + model.depth * block
    attn = model.heads * model.head_dim
    decoder = (model.feature_dim * d + d * attn + d * 2 * attn + attn * d
               + len(model.sigmas) * (model.feature_dim * d + 3 * d * d + 3 * d))
    return encoder + decoder


def _blame(section: str, obj, keys: tuple[str, ...]) -> str:
    default = type(obj)()
    ratio = {k: getattr(obj, k) / max(getattr(default, k), 1) for k in keys}
    return f"{section}.{max(ratio, key=ratio.get)}"


def footprint(data: C.DataConfig, model: C.ModelConfig, train: C.TrainConfig) -> list[tuple[str, int, str]]:
    params = model_parameters(model, data.input_size)
    evals = sum(r * r for r in data.eval_resolutions)
    train_res = set(train.multiscale.resolutions) | {data.input_size, data.hr_size}
    for stage in train.curriculum.stages:
        train_res |= set(stage.resolutions)
    blame = (_blame("model.liif", model.liif or C.LiifConfig(), ("encoder_channels",
                                                                  "encoder_blocks"))
             if model.kind == "liif" else
             _blame("model", model, ("dim", "depth", "num_latents", "mlp_dim", "expand",
                                      "d_state", "d_conv", "heads", "head_dim", "feature_dim",
                                      "patch_size")))
    out = [
        (blame, params * F32 * 4,
         f"≈ {params:.3g} model parameters, with gradients and AdamW state"),
        ("data.test_samples" if data.test_samples / 64 >= data.hr_size / 128 else "data.hr_size",
         data.test_samples * 3 * F32 * (data.hr_size ** 2 + data.input_size ** 2 + evals),
         f"up to {data.test_samples:.3g} held-out crops of {data.hr_size}² at every eval "
         "resolution"),
        ("train.batch_size" if train.batch_size / 16 >= data.hr_size / 128 else "data.hr_size",
         train.batch_size * 3 * F32 * sum(r * r for r in train_res),
         f"a batch of {train.batch_size} HR crops of {data.hr_size}² and its targets"),
    ]
    return sorted(out, key=lambda x: -x[1])


def too_big(data: C.DataConfig, model: C.ModelConfig, train: C.TrainConfig):
    """(key, message) for the largest need above LIMIT, or None."""
    key, need, what = footprint(data, model, train)[0]
    if need <= LIMIT:
        return None
    return key, (f"a trial would need ≈ {_bytes(need)} of memory for {what}, more than any "
                 f"machine has (limit {_bytes(LIMIT)}); lower it")


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.3g} EiB"


__all__ = ["LIMIT", "footprint", "too_big", "model_parameters", "liif_parameters"]
