"""Does a trained model super-resolve the photos it trained on, and the held-out ones?

    python benchmarks/train_vs_heldout.py STUDY.toml --variant liif --seed 0 --checkpoint DIR

Loads a trial's checkpoint (a directory holding checkpoint.pt: an epoch checkpoint, or a Ray
trial's final one under RESULTS/<study>/ray/run-*/<trial_id>/checkpoint_*/), then prints the
model's PSNR and bicubic's at every eval resolution above the input on two sets of crops made
the same way: fresh random crops of the *training* photos (the trial's own sampler) and the
held-out crops the evaluation uses. A model well above bicubic on its training photos and not
on held-out ones has learnt those photos rather than super-resolution; one below bicubic on
both has learnt neither. (It once led this project to blame the test bed's 8 training photos
for LIIF's `resampling`; doubling LIIF's training crops made it `true_sr` on the same test
bed: README, "The flagship rows at CPU scale".) Torch only; no Ray.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

import torch  # noqa: E402

from ablate.imaging import bicubic_upsample, downsample  # noqa: E402
from ablate.metrics.image import psnr  # noqa: E402
from ablate.orchestrate.run import pick_trial  # noqa: E402
from ablate.spec import load_study  # noqa: E402
from ablate.train import checkpoint as ckpt  # noqa: E402
from ablate.train.trial import build  # noqa: E402


def figures(model, hr: torch.Tensor, input_size: int, resolutions) -> dict[int, tuple]:
    """r → (model PSNR, bicubic PSNR), means over the crops `hr` (N, 3, H, H)."""
    x = downsample(hr, input_size)
    out = {}
    with torch.no_grad():
        for r in resolutions:
            truth = downsample(hr, r)
            pred = torch.cat([model.render(x[i:i + 16], r).float().clamp(0, 1)
                              for i in range(0, len(x), 16)])
            out[r] = (float(psnr(pred, truth).mean()),
                      float(psnr(bicubic_upsample(x, r), truth).mean()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", required=True, help="a directory holding checkpoint.pt")
    ap.add_argument("--train-crops", type=int, default=64)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg = pick_trial(load_study(args.study, args.sets), args.variant, args.seed)
    setup = build(cfg, "cpu")
    state = ckpt.load(args.checkpoint)
    if state is None:
        sys.exit(f"no checkpoint.pt in {args.checkpoint}")
    setup.model.load_state_dict(state["model"])
    setup.model.eval()
    s = cfg.data.input_size
    above = [r for r in cfg.data.eval_resolutions if r > s]
    gen = torch.Generator().manual_seed(12345)  # not the trial's own draws
    train_hr = setup.train_data.epoch(gen, n=args.train_crops)
    held_hr = setup.test_data.hr
    print(f"{cfg.variant} seed {cfg.seed} ({cfg.trial_id}), epoch {state['epoch']}: "
          f"{len(setup.train_data)} training photos, {args.train_crops} fresh crops of them; "
          f"{len(held_hr)} held-out crops")
    print(f"{'crops':>10} {'r':>4} {'model':>8} {'bicubic':>8} {'Δ dB':>7}")
    for name, hr in (("training", train_hr), ("held-out", held_hr)):
        for r, (m, b) in figures(setup.model, hr, s, above).items():
            print(f"{name:>10} {r:>4} {m:8.2f} {b:8.2f} {m - b:+7.2f}")


if __name__ == "__main__":
    main()
