"""LIIF, the positive control (`model.kind = "liif"`, ablate/model/liif.py): the module against
the paper's equations written out here in float64, its parameter count, the coordinate
convention, the spec (options, trial ids that stay put for the seed's model), training through
the real trial core, and the model kind in `ablate plan` and `ablate table`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from study_checks import trained_whole_and_resumed
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.data.coords import make_coord
from ablate.model import LIIF, build_model
from ablate.schema import TRIAL_COLUMNS
from ablate.spec import SpecError, expand, load_study, trial_from_dict
from ablate.spec.config import LiifConfig, ModelConfig
from ablate.spec.footprint import liif_parameters
from ablate.table.build import load_tables
from ablate.table.format import header, render
from synthetic_results import Variant, make_study

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

SMALL = LiifConfig(encoder_blocks=2, encoder_channels=5, mlp_widths=(12, 7))
TINY_SETS = ["model.kind=liif", "model.liif.encoder_blocks=1", "model.liif.encoder_channels=8",
             "model.liif.mlp_widths=[16]"]


def liif(opts: LiifConfig = SMALL, seed: int = 0) -> LIIF:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(kind="liif", liif=opts), input_size=6, device="cpu")
    return model.double()


# ---------------------------------------------------------------------------------------------
# The reference: LIIF's equations, one query at a time, in float64
# ---------------------------------------------------------------------------------------------


def ref_features(model: LIIF, img: torch.Tensor, unfold: bool) -> torch.Tensor:
    """EDSR-baseline without upsampler on 2·img − 1, then the 3×3 neighbourhood of every
    feature (zero outside the image), channel-major: (B, C or 9C, s, s)."""
    enc = model.encoder
    x = F.conv2d(img * 2 - 1, enc.head[0].weight, enc.head[0].bias, padding=1)
    h = x
    for block in list(enc.body)[:-1]:
        a, b = block.body[0], block.body[2]
        h = h + F.conv2d(F.relu(F.conv2d(h, a.weight, a.bias, padding=1)), b.weight, b.bias,
                         padding=1)
    feat = x + F.conv2d(h, enc.body[-1].weight, enc.body[-1].bias, padding=1)
    if not unfold:
        return feat
    bsz, c, s, _ = feat.shape
    padded = F.pad(feat, (1, 1, 1, 1))
    out = torch.empty(bsz, c, 9, s, s, dtype=feat.dtype)
    for k, (dy, dx) in enumerate((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
        out[:, :, k] = padded[:, :, 1 + dy:1 + dy + s, 1 + dx:1 + dx + s]  # z at (i+dy, j+dx)
    return out.reshape(bsz, c * 9, s, s)


def ref_mlp(model: LIIF, x: torch.Tensor) -> torch.Tensor:
    linears = [m for m in model.imnet.layers if isinstance(m, torch.nn.Linear)]
    for k, lin in enumerate(linears):
        x = lin.weight @ x + lin.bias
        if k < len(linears) - 1:
            x = torch.relu(x)
    return x


def ref_decode(model: LIIF, feat: torch.Tensor, coords: torch.Tensor, r: int,
               opts: LiifConfig) -> torch.Tensor:
    """RGB per query: LIIF's coordinates u = 2c − 1 ∈ [−1, 1], feature (i, j) at
    u_ij = −1 + (2i+1)/s; the feature nearest to u + v/s + 1e-6 for v ∈ {−1, 1}² (the one
    nearest to u without the ensemble); MLP input [z, s·(u − u_z), s·2/r per axis]; weights:
    the area |Δy·Δx| of the diagonally opposite neighbour over the sum of the four."""
    bsz, _, s, _ = feat.shape
    centres = -1 + (2 * torch.arange(s, dtype=torch.float64) + 1) / s
    out = torch.empty(bsz, coords.shape[1], 3, dtype=torch.float64)
    shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)] if opts.local_ensemble else [(0, 0)]
    eps = 1e-6 if opts.local_ensemble else 0.0
    for b in range(bsz):
        for q in range(coords.shape[1]):
            u = coords[b, q] * 2 - 1
            terms = {}
            for v in shifts:
                p = (u + torch.tensor(v, dtype=torch.float64) / s + eps).clamp(-1 + 1e-6,
                                                                            1 - 1e-6)
                i, j = int((centres - p[0]).abs().argmin()), int((centres - p[1]).abs().argmin())
                rel = s * (u - torch.stack([centres[i], centres[j]]))
                parts = [feat[b, :, i, j], rel]
                if opts.cell_decode:
                    parts.append(torch.full((2,), s * 2.0 / r, dtype=torch.float64))
                terms[v] = (ref_mlp(model, torch.cat(parts)), abs(float(rel[0] * rel[1])) + 1e-9)
            total = sum(area for _, area in terms.values())
            rgb = sum(pred * terms[(-v[0], -v[1])][1] / total for v, (pred, _) in terms.items())
            out[b, q] = rgb * 0.5 + 0.5
    return out


OPTIONS = {
    "all on": SMALL,
    "no unfold": dataclasses.replace(SMALL, feature_unfold=False),
    "no ensemble": dataclasses.replace(SMALL, local_ensemble=False),
    "no cell": dataclasses.replace(SMALL, cell_decode=False),
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_module_matches_the_equations_in_float64(name):
    opts = OPTIONS[name]
    model = liif(opts)
    gen = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    feat = model.encode(img)
    assert torch.allclose(feat, ref_features(model, img, opts.feature_unfold), atol=1e-12)
    for r in (6, 12, 20):
        # pixel centres at r, jittered, plus the corners (the clamp, the zero padding)
        coords = make_coord(r, dtype=torch.float64)[::7].expand(2, -1, -1)
        coords = (coords + 0.2 / r * torch.randn(coords.shape, generator=gen,
                                                 dtype=torch.float64)).clamp(0, 1)
        coords = torch.cat([coords, torch.tensor([[[0.0, 0.0], [1.0, 1.0]]] * 2,
                                                 dtype=torch.float64)], dim=1)
        got = model.decode(feat, coords, r)
        want = ref_decode(model, feat, coords, r, opts)
        assert torch.allclose(got, want, atol=1e-12), (r, (got - want).abs().max())
    # forward = decode(encode); render decodes make_coord(r) row-major, in chunks
    coords = make_coord(12, dtype=torch.float64).expand(2, -1, -1)
    assert torch.allclose(model(img, coords, 12), model.decode(feat, coords, 12))
    big = model.render(img, 12, chunk=50)
    assert big.shape == (2, 3, 12, 12)
    assert torch.allclose(big.flatten(2).transpose(1, 2), model.decode(feat, coords, 12))


def test_a_pixel_centre_of_the_input_is_its_feature_centre():
    """ablate's pixel centre (i + ½)/s is LIIF's feature centre −1 + (2i + 1)/s: decoded at the
    input's own grid with the local ensemble, each pixel is the MLP of its own feature alone,
    at relative coordinate 0 and cell 2 (the other three neighbours get weight 0). Not on the
    last row and column, where the clamp makes every area 0 (+1e-9) and the neighbours are
    averaged (the original's behaviour; the float64 reference test covers them)."""
    model = liif()
    img = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    feat = model.encode(img)
    got = model.render(img, 6)  # (1, 3, 6, 6)
    for i in range(5):
        for j in range(5):
            x = torch.cat([feat[0, :, i, j], torch.tensor([0.0, 0.0, 2.0, 2.0],
                                                          dtype=torch.float64)])
            want = ref_mlp(model, x) * 0.5 + 0.5
            assert torch.allclose(got[0, :, i, j], want, atol=1e-8), (i, j)


def test_interior_weights_are_bilinear():
    """Inside the image the four area weights are bilinear: blending the neighbours' own
    relative coordinates gives 0 (Σ w_k·s·(u − u_k) = s·(u − Σ w_k u_k) = 0). An MLP that
    returns Δy + 2 on a zero feature map shows it."""
    opts = LiifConfig(encoder_blocks=0, encoder_channels=1, mlp_widths=(2,),
                      feature_unfold=False, cell_decode=False)
    model = liif(opts)
    with torch.no_grad():  # MLP(z, Δy, Δx) = relu(Δy + 2), i.e. Δy + 2 inside (−2, 2)
        model.imnet.layers[0].weight.zero_()
        model.imnet.layers[0].weight[0, 1] = 1.0
        model.imnet.layers[0].bias.fill_(2.0)
        model.imnet.layers[2].weight.zero_()
        model.imnet.layers[2].weight[:, 0] = 1.0
        model.imnet.layers[2].bias.zero_()
    feat = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    c = torch.tensor([[[0.3, 0.55], [0.41, 0.2], [0.77, 0.6]]], dtype=torch.float64)
    out = model.decode(feat, c, 24)  # (1, 3, 3): 0.5 · Σ w_k (Δy_k + 2) + 0.5, Σ w_k = 1
    assert torch.allclose(out, torch.full_like(out, 1.5), atol=1e-7)


def test_cell_decode_needs_the_resolution():
    model = liif()
    feat = model.encode(torch.rand(1, 3, 6, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="resolution"):
        model.decode(feat, torch.rand(1, 4, 2, dtype=torch.float64))
    model = liif(dataclasses.replace(SMALL, cell_decode=False))
    assert model.decode(model.encode(torch.rand(1, 3, 6, 6, dtype=torch.float64)),
                        torch.rand(1, 4, 2, dtype=torch.float64)).shape == (1, 4, 3)


@pytest.mark.parametrize("opts", [LiifConfig(), SMALL, OPTIONS["no unfold"], OPTIONS["no cell"],
                                  LiifConfig(encoder_blocks=4, encoder_channels=32,
                                             mlp_widths=(128, 128))])
def test_parameter_count(opts):
    model = build_model(ModelConfig(kind="liif", liif=opts), input_size=16, device="cpu")
    count = sum(p.numel() for p in model.parameters())
    assert count == liif_parameters(opts)
    if opts == LiifConfig():  # EDSR-baseline-LIIF: 1,220,416 encoder + 346,883 MLP
        assert count == 1_567_299
        assert sum(p.numel() for p in model.encoder.parameters()) == 1_220_416
    assert model.scan_backend == "none"


# ---------------------------------------------------------------------------------------------
# The spec: options, resolution, ids
# ---------------------------------------------------------------------------------------------

QUICKSTART_IDS = {  # ablate plan studies/quickstart.toml --json, before LIIF existed
    "no_jitter": "6418f8a608e0", "corrected_jitter": "587a54efb4d5",
    "multiscale": "f0532f90840f", "multiscale_upsampled": "2b2d5cc7874a",
}


QUICKSTART_BEFORE = ("model.patch_size=2", "model.num_latents=64", "train.lr=0.002",
                     "train.epochs=5")


def plan_ids(path, *sets) -> list[tuple[str, str]]:
    """(variant, trial_id) of every trial `ablate plan --json` lists."""
    args = ["plan", str(path), "--json"] + [a for s in sets for a in ("--set", s)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return [(t["variant"], t["trial_id"]) for t in json.loads(r.output)]


def test_the_seed_models_trials_keep_their_ids():
    """`model.decoder` became `model.kind` and `model.liif` was added: every earlier trial id
    stays (ablate/spec/ids.py RENAMED), so finished trials are still found."""
    # the quickstart as it was then (docs/fit.md changed its patch size, lr and epochs since)
    ids = dict(plan_ids(ROOT / "studies" / "quickstart.toml", *QUICKSTART_BEFORE))  # one seed
    assert {v: ids.get(v) for v in QUICKSTART_IDS} == QUICKSTART_IDS
    old_form = 0
    for manifest in sorted((ROOT / "docs" / "results").glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        ids = [tid for _, tid in plan_ids(manifest.parent / "study.toml", *m["overrides"])]
        assert sorted(ids) == sorted(t["trial_id"] for t in m["trials"]), manifest
        # a config written with `decoder` reads back to the same trial id
        tid = m["trials"][0]["trial_id"]
        row = pd.read_parquet(manifest.parent / "trials" / f"{tid}.parquet").iloc[0]
        config = json.loads(row["config_json"])
        # files written before LIIF say `decoder`, later ones `kind`: both read back
        old_form += "decoder" in config["model"]
        assert config["model"].get("decoder", config["model"].get("kind")) == "lainr"
        back = trial_from_dict(config)
        assert back.trial_id == tid and back.model.kind == "lainr" and back.model.liif is None
    if not old_form:  # no shipped file holds the old name any more: write one as they were
        config = json.loads(row["config_json"])
        config["model"]["decoder"] = config["model"].pop("kind")
        config["model"].pop("liif", None)
        back = trial_from_dict(config)
        assert back.trial_id == tid and back.model.kind == "lainr" and back.model.liif is None


def test_results_frame_has_model_kind_for_older_files():
    """Shipped results wrote `model.decoder`; `ablate.load_results` names it model.kind."""
    import ablate

    df = ablate.load_results(ROOT / "docs" / "results", study="locality")
    assert set(df["model.kind"]) == {"lainr"} and "model.decoder" not in df.columns


def test_liif_options_resolve_into_the_trial(tiny_study):
    [plain] = [t for t in expand(load_study(tiny_study, ["model.kind=liif"])) if t.seed == 0
               and t.variant == "plain"]
    assert plain.model.liif == LiifConfig()  # defaults filled: the id holds them
    tiny = [t for t in expand(load_study(tiny_study, TINY_SETS)) if t.variant == "plain"]
    assert tiny[0].model.liif == LiifConfig(encoder_blocks=1, encoder_channels=8,
                                            mlp_widths=(16,))
    assert tiny[0].trial_id != plain.trial_id
    # the id of a LIIF trial hashes its own keys only: the seed model's sizes do not matter
    same = expand(load_study(tiny_study, TINY_SETS + ["model.dim=32", "model.sigmas=[16,4]"]))
    assert [t.trial_id for t in same] == [t.trial_id for t in expand(load_study(tiny_study,
                                                                                TINY_SETS))]
    # LIIF's options in [model] do not touch the seed model's trials (dropped, not hashed)
    base = [t.trial_id for t in expand(load_study(tiny_study))]
    with_opts = expand(load_study(tiny_study, ["model.liif.encoder_blocks=3"]))
    assert [t.trial_id for t in with_opts] == base
    assert all(t.model.kind == "lainr" and t.model.liif is None for t in with_opts)


def test_liif_option_errors_name_the_key(tiny_study):
    with pytest.raises(SpecError) as e:
        load_study(tiny_study, ["model.kind=liif", "model.liif.encoder_block=3",
                                "model.liif.mlp_widths=[0]", "model.kind=lif"])
    text = str(e.value)
    assert "model.liif.encoder_block: unknown key (did you mean 'encoder_blocks'?)" in text
    assert "model.liif.mlp_widths[0]: must be ≥ 1" in text
    assert "model.kind: expected one of 'lainr', 'liif'" in text


# ---------------------------------------------------------------------------------------------
# Training through the trial core; plan and table
# ---------------------------------------------------------------------------------------------


def test_tiny_liif_trains_through_the_trial_core(tiny_study, tmp_path):
    """`ablate trial` of the multi-scale variant (random resolution per batch, per-batch
    jitter) as LIIF: completed rows with every result column, the history, the files."""
    out = tmp_path / "res"
    args = ["trial", str(tiny_study), "--variant", "multiscale", "--seed", "0", "--results",
            str(out), "--device", "cpu"] + [a for s in TINY_SETS for a in ("--set", s)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    [cfg] = [t for t in expand(load_study(tiny_study, TINY_SETS))
             if t.variant == "multiscale" and t.seed == 0]
    rows = pd.read_parquet(out / "tiny" / "trials" / f"{cfg.trial_id}.parquet")
    assert list(rows.columns) == list(TRIAL_COLUMNS)
    assert list(rows["resolution"]) == [16, 32] and set(rows["status"]) == {"completed"}
    assert set(rows["mamba_backend"]) == {"none"}
    assert json.loads(rows["config_json"][0])["model"]["kind"] == "liif"
    assert rows["psnr"].notna().all() and rows["verdict"][1] in (
        "unfit", "true_sr", "resampling", "hallucination")
    hist = pd.read_parquet(out / "tiny" / "history" / f"{cfg.trial_id}.parquet")
    assert list(hist["epoch"]) == [1, 2] and all(math.isfinite(x) for x in hist["loss"])


def test_liif_resumes_from_its_checkpoint_exactly(tiny_study, tmp_path):
    sets = TINY_SETS + ["train.epochs=3", 'variant.multiscale.multiscale.mode="hr_sample"',
                        "variant.multiscale.multiscale.samples=64"]
    [cfg] = [t for t in expand(load_study(tiny_study, sets))
             if t.variant == "multiscale" and t.seed == 0]
    full, resumed = trained_whole_and_resumed(cfg, tmp_path / "ck")
    assert [h["resumed"] for h in resumed.history] == [False, False, True]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert [r["psnr"] for r in resumed.rows] == [r["psnr"] for r in full.rows]


def test_plan_shows_the_model_kind_where_trials_differ(tiny_study):
    r = runner.invoke(app, ["plan", str(tiny_study)])
    assert r.exit_code == 0 and "model.kind" not in r.output, r.output  # shared: not shown
    r = runner.invoke(app, ["plan", str(tiny_study), "--set", "variant.multiscale.model.kind=liif"])
    assert r.exit_code == 0, r.output
    blocks = {b.splitlines()[0].split()[0]: b for b in r.output.split("\n\n")[1:]}
    assert "model.kind = liif" in blocks["multiscale"], r.output
    assert "model.kind = lainr" in blocks["plain"], r.output
    assert "model.sigmas" not in blocks["multiscale"], r.output  # the same in every row


def test_plan_fits_80_columns_and_shows_what_differs_between_rows():
    """Every shipped study's plan fits 80 columns, and the rows of the locality study (which
    differ in model.locality and locality_alpha only) say so (issue 28 §5)."""
    from pathlib import Path

    studies = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.toml"))
    assert len(studies) >= 6
    for s in studies:
        r = runner.invoke(app, ["plan", str(s)])
        assert r.exit_code == 0, (s, r.output)
        wide = [line for line in r.output.splitlines() if len(line) > 80]
        assert not wide, (s, wide)
    r = runner.invoke(app, ["plan", str(studies[0].parent / "locality.toml")])
    blocks = [b for b in r.output.split("\n\n")[1:]]
    assert len(blocks) == 5
    assert all("model.locality = " in b and "model.locality_alpha = " in b for b in blocks)
    assert "model.locality = none" in r.output and "model.locality_alpha = 3" in r.output


def test_table_shows_the_model_kind_where_rows_differ(tmp_path):
    def config(variant, grid, seed, r):
        kind = "liif" if variant == "liif" else "lainr"
        return {"config_json": json.dumps({"model": {"kind": kind}})}

    make_study(tmp_path, "pc", (Variant("seed", "Seed model"), Variant("liif", "LIIF", 1.0)),
               seeds=(0, 1), resolutions=(32, 64), values=config, history=False,
               artifacts=False)
    [t] = load_tables(tmp_path, "pc")
    assert t.shows_model and header(t)[:2] == ["Variant", "Model"]
    assert [(row.label, row.model) for row in t.rows] == [
        ("Bicubic", ""), ("Seed model", "lainr"), ("LIIF", "liif")]
    md = render([t], "markdown")
    assert "| Variant | Model | PSNR@32 (input)" in md and "| LIIF | liif | " in md
    assert "Model" in render([t], "text") and "liif" in render([t], "latex")
    assert {r["model"] for r in json.loads(render([t], "json"))["studies"][0]["rows"]} == {
        "", "lainr", "liif"}
    # one kind (here: configs without model.kind, as the seed's model wrote them): no column
    make_study(tmp_path, "one", (Variant("a", "A"), Variant("b", "B", 0.5)), seeds=(0,),
               resolutions=(32, 64), history=False, artifacts=False)
    [one] = load_tables(tmp_path, "one")
    assert not one.shows_model and header(one)[0] == "Variant" and "Model" not in header(one)
    assert [row.model for row in one.rows if row.kind == "variant"] == ["lainr", "lainr"]
