"""The study spec: parsing, validation messages, expansion and trial ids."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.spec import SpecError, expand, load_study, trial_from_dict, trial_to_dict
from ablate.spec.parse import build_study

runner = CliRunner()
STUDIES = Path(__file__).resolve().parents[1] / "studies"

BASE = """
[study]
name = "t"
seeds = [0, 1]
baseline = "a"

[data]
hr_size = 64
eval_resolutions = [32, 64]

[train]
epochs = 4

[grid]
sigmas = [[128, 32], [64, 16]]

[[variant]]
name = "a"
label = "A"
jitter = { placement = "per_epoch", std = 0.01 }

[[variant]]
name = "b"
jitter = "per_batch"
multiscale = { mode = "random_res", resolutions = [32, 48] }
curriculum = { stages = [{ from_epoch = 1, resolutions = [32] },
                         { from_epoch = 3, resolutions = [32, 48] }] }
"""


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def problems_of(tmp_path, text, sets=()):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        load_study(path, sets)
    return [(p.key, p.message) for p in e.value.problems]


def test_expansion_order_and_axes(tmp_path):
    trials = expand(load_study(write(tmp_path, BASE)))
    # variants × grid × seeds, in spec order
    assert [(t.variant, t.grid_key(), t.seed) for t in trials] == [
        ("a", "sigmas=[128,32]", 0), ("a", "sigmas=[128,32]", 1),
        ("a", "sigmas=[64,16]", 0), ("a", "sigmas=[64,16]", 1),
        ("b", "sigmas=[128,32]", 0), ("b", "sigmas=[128,32]", 1),
        ("b", "sigmas=[64,16]", 0), ("b", "sigmas=[64,16]", 1),
    ]
    a, b = trials[0], trials[-1]
    assert a.train.jitter.placement == "per_epoch" and a.train.multiscale.mode == "off"
    assert b.train.jitter.placement == "per_batch" and b.train.jitter.std == 0.01
    assert b.model.sigmas == (64.0, 16.0)
    assert b.train.curriculum.resolutions_at(2) == (32,)
    assert b.train.curriculum.resolutions_at(4) == (32, 48)
    assert b.label == "b" and a.label == "A"
    # defaults come from the seed's configuration (README, "The model")
    assert a.model.dim == 256 and a.model.depth == 6 and a.model.d_state == 16
    assert a.train.batch_size == 16 and a.train.lr == 5e-4 and a.train.weight_decay == 1e-4
    assert len({t.trial_id for t in trials}) == 8


def test_implicit_base_variant(tmp_path):
    trials = expand(load_study(write(tmp_path, '[study]\nname = "x"\nseeds = [3]\n')))
    assert [(t.variant, t.seed) for t in trials] == [("base", 3)]


def test_ids_stable_across_key_order_and_formatting(tmp_path):
    one = expand(load_study(write(tmp_path, BASE, "one.toml")))
    reordered = """
    [[variant]]
    name="a"
    jitter={std=0.010, placement="per_epoch"}
    label="A"
    [[variant]]
    multiscale={resolutions=[32,48],mode="random_res"}
    name="b"
    curriculum={stages=[{resolutions=[32],from_epoch=1},{resolutions=[32,48],from_epoch=3}]}
    jitter={placement="per_batch"}
    [grid]
    sigmas=[[128.0,32.0],[64,16]]
    [train]
    epochs=4
    [data]
    eval_resolutions=[32,64]
    hr_size=64
    [study]
    baseline="a"
    seeds=[0,1]
    name="t"
    """
    two = expand(load_study(write(tmp_path, reordered, "two.toml")))
    assert [t.trial_id for t in one] == [t.trial_id for t in two]
    # stable across processes and machines: the default trial's id is pinned, so a change of
    # the id algorithm (which would re-run every finished study) cannot go unnoticed
    default = expand(build_study({"study": {"name": "d"}}, "<mem>"))[0]
    assert default.trial_id == "fa773121ff6e"  # decoder + raster default (issue 8); data.prescale,
    #   train_sampling, min_texture (issue 9)


@pytest.mark.parametrize("override", [
    "train.epochs=5", "train.lr=0.001", "data.hr_size=128", "model.dim=128",
    "variant.a.jitter.std=0.02", "data.test_samples=8", "study.seeds=[0,2]",
])
def test_ids_change_with_any_resolved_value(tmp_path, override):
    path = write(tmp_path, BASE)
    before = {(t.variant, t.grid_key(), t.seed): t.trial_id for t in expand(load_study(path))}
    after = {(t.variant, t.grid_key(), t.seed): t.trial_id for t in expand(load_study(path, [override]))}
    changed = [k for k in after if k in before and after[k] != before[k]]
    if override == "variant.a.jitter.std=0.02":
        assert changed and all(k[0] == "a" for k in changed)
    elif override == "study.seeds=[0,2]":
        assert not changed and set(after) != set(before)  # seed 2 is a new trial
    else:
        assert len(changed) == len(before)


def test_ids_ignore_names_labels_resources_and_backend(tmp_path):
    path = write(tmp_path, BASE)
    ids = [t.trial_id for t in expand(load_study(path))]
    for o in ["study.name=other", "resources.gpus_per_trial=0.5", 'model.mamba_backend="torch"',
              'variant.a.label="Renamed"']:
        assert [t.trial_id for t in expand(load_study(path, [o]))] == ids, o


def test_trial_dict_round_trip(tmp_path):
    for t in expand(load_study(write(tmp_path, BASE))):
        d = json.loads(json.dumps(trial_to_dict(t)))
        back = trial_from_dict(d)
        assert back == t


def test_set_is_read_as_toml_and_validated(tmp_path):
    path = write(tmp_path, BASE)
    s = load_study(path, ["train.epochs=7", "model.sigmas=[10, 5]", "study.name=demo"])
    assert s.train.epochs == 7 and s.model.sigmas == (10.0, 5.0) and s.name == "demo"
    probs = problems_of(tmp_path, BASE, ["train.epochs=-1", "train.epoks=3"])
    keys = dict(probs)
    assert "must be ≥ 1" in keys["train.epochs"] and "--set" in keys["train.epochs"]
    assert "did you mean 'epochs'" in keys["train.epoks"]


BAD_CASES = {
    # (spec text, key path, fragment of the message)
    "unknown key": ('[train]\nepoks = 3\n', "train.epoks", "did you mean 'epochs'"),
    "unknown section": ('[trian]\nepochs = 3\n', "trian", "did you mean 'train'"),
    "wrong type": ('[train]\nepochs = "ten"\n', "train.epochs", "expected an integer"),
    "bool as int": ('[train]\nbatch_size = true\n', "train.batch_size", "expected an integer"),
    "negative std": ('[[variant]]\nname = "v"\njitter = {placement = "per_batch", std = -1}\n',
                     'variant[1] "v".jitter.std', "≥ 0"),
    "odd resolution": ('[data]\neval_resolutions = [32, 63]\n', "data.eval_resolutions[1]", "even"),
    "eval above hr": ('[data]\nhr_size = 64\neval_resolutions = [32, 128]\n',
                      "data.eval_resolutions", "exceed data.hr_size"),
    "hr below input": ('[data]\nhr_size = 16\neval_resolutions = [16]\n', "data.hr_size",
                       "must be ≥ data.input_size"),
    "curriculum not increasing": (
        '[train]\nepochs = 9\n[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_epoch = 1, resolutions = [32]}, '
        '{from_epoch = 5, resolutions = [48]}, {from_epoch = 3, resolutions = [64]}]}\n',
        'variant[1] "v".curriculum.stages', "increase"),
    "curriculum past last epoch": (
        '[train]\nepochs = 4\n[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_epoch = 1, resolutions = [32]}, '
        '{from_epoch = 9, resolutions = [48]}]}\n',
        'variant[1] "v".curriculum.stages', "past the last epoch"),
    "curriculum fraction and epoch": (
        '[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_fraction = 0, from_epoch = 1, resolutions = [32]}]}\n',
        'variant[1] "v".curriculum.stages[0]', "not both"),
    "curriculum mixed forms": (
        '[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_fraction = 0, resolutions = [32]}, '
        '{from_epoch = 3, resolutions = [48]}]}\n',
        'variant[1] "v".curriculum.stages', "same form"),
    "curriculum fraction not below 1": (
        '[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_fraction = 0, resolutions = [32]}, '
        '{from_fraction = 1, resolutions = [48]}]}\n',
        'variant[1] "v".curriculum.stages', "must be < 1"),
    "curriculum fraction first": (
        '[[variant]]\nname = "v"\nmultiscale = "random_res"\n'
        'curriculum = {stages = [{from_fraction = 0.1, resolutions = [32]}]}\n',
        'variant[1] "v".curriculum.stages[1].from_fraction', "start at 0"),
    "empty axis": ('[grid]\nsigmas = []\n', "grid.sigmas", "non-empty"),
    "empty seeds": ('[study]\nseeds = []\n', "study.seeds", "must not be empty"),
    "non-integer seed": ('[study]\nseeds = [0, 1.5]\n', "study.seeds[1]", "expected an integer"),
    "non-positive sigma": ('[model]\nsigmas = [128, 0]\n', "model.sigmas[1]", "> 0"),
    "batch size": ('[train]\nbatch_size = 0\n', "train.batch_size", "≥ 1"),
    "duplicate variant": ('[[variant]]\nname = "v"\n[[variant]]\nname = "v"\njitter = "per_batch"\n',
                          'variant[2] "v".name', "duplicate"),
    "baseline": ('[study]\nbaseline = "orignal"\n[[variant]]\nname = "original"\n',
                 "study.baseline", "did you mean 'original'"),
    "bad mode": ('[[variant]]\nname = "v"\nmultiscale = "random"\n', 'variant[1] "v".multiscale.mode',
                 "did you mean 'random_res'"),
    "bad source": ('[data]\nsource = "imagenet"\n', "data.source", "folder:PATH"),
    "identical trials": ('[[variant]]\nname = "v"\n[[variant]]\nname = "w"\n', 'variant "w"',
                         'same resolved config as variant "v"'),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_the_key(tmp_path, case):
    text, key, fragment = BAD_CASES[case]
    probs = problems_of(tmp_path, text)
    matching = [m for k, m in probs if k == key]
    assert matching, f"no problem at {key}: {probs}"
    assert any(fragment in m for m in matching), probs


def test_all_problems_reported_at_once(tmp_path):
    text = '[train]\nepoks = 3\nbatch_size = 0\n[model]\nsigmas = [-1]\n[study]\nseeds = []\n'
    probs = problems_of(tmp_path, text)
    assert {k for k, _ in probs} >= {"train.epoks", "train.batch_size", "model.sigmas[0]", "study.seeds"}


def test_cli_validate_ok_and_plan_json(tmp_path):
    path = write(tmp_path, BASE)
    r = runner.invoke(app, ["validate", path])
    assert r.exit_code == 0, r.output
    assert "trials     8" in r.output and "variants   2" in r.output
    r = runner.invoke(app, ["plan", path, "--json"])
    assert r.exit_code == 0
    plan = json.loads(r.output)
    assert len(plan) == 8 and {"trial_id", "variant", "seed", "config"} <= set(plan[0])
    assert plan[0]["config"]["train"]["epochs"] == 4
    r2 = runner.invoke(app, ["plan", path, "--json"])
    assert r2.output == r.output  # deterministic
    r3 = runner.invoke(app, ["plan", path, "--json", "--set", "train.epochs=3"])
    assert json.loads(r3.stdout)[0]["trial_id"] != plan[0]["trial_id"]  # JSON on stdout,
    assert "note: " in r3.stderr and "scaled to train.epochs = 3" in r3.stderr  # notes apart
    r4 = runner.invoke(app, ["plan", path])
    assert r4.exit_code == 0 and plan[0]["trial_id"] in r4.output


@pytest.mark.parametrize("content,fragment", [
    (None, "file not found"),
    ("[study\nname = 1\n", "line 1, column"),
    ('[train]\nepochs = "x"\n', "train.epochs"),
])
def test_cli_bad_input_exit_2_without_traceback(tmp_path, content, fragment):
    path = tmp_path / "s.toml"
    if content is not None:
        path.write_text(content)
    for cmd in ("validate", "plan"):
        r = runner.invoke(app, [cmd, str(path)])
        assert r.exit_code == 2, r.output
        assert fragment in r.output and str(path) in r.output
        assert "Traceback" not in r.output


def test_shipped_studies_are_valid():
    q = load_study(STUDIES / "quickstart.toml")
    j = load_study(STUDIES / "jitter_vs_multiscale.toml")
    load_study(STUDIES / "sigma_sweep.toml")
    loc = load_study(STUDIES / "locality.toml")
    # the quickstart keeps the contrast under study: no jitter, jitter, multi-scale from HR,
    # multi-scale from the upsampled input (a subset of the flagship's rows)
    assert {v.name for v in q.variants} <= {v.name for v in j.variants}
    assert {v.multiscale.mode for v in q.variants} == {"off", "random_res", "upsampled_input"}
    assert {v.jitter.placement for v in q.variants} == {"none", "per_batch"}
    assert len(expand(j)) == 18 and len(expand(q)) == 4
    assert [t.model.locality for t in expand(loc)] == ["raster", "none", "2d", "2d", "2d"]
    assert j.train.epochs == 40 and j.train.batch_size == 16 and j.study.seeds == (0, 1, 2)
    labels = [v.label for v in j.variants]
    for needed in ("Original (bug)", "Corrected jittering", "Multi-scale", "Progressive multi-scale",
                   "No jitter", "Multi-scale, upsampled targets"):
        assert needed in labels
    prog = next(v for v in j.variants if v.name == "progressive")
    assert [s.resolutions for s in prog.curriculum.stages] == [(32,), (32, 48), (32, 48, 64), (32, 48, 64, 96)]
    assert [s.from_epoch for s in prog.curriculum.stages] == [1, 11, 21, 31]


def test_build_study_from_dict():
    s = build_study({"study": {"name": "d"}}, "<mem>")
    assert s.name == "d" and len(expand(s)) == 1


def test_unreadable_inputs_exit_2(tmp_path):
    d = tmp_path / "adir.toml"
    d.mkdir()
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    for path, fragment in ((d, "is a directory"), (binary, "cannot be read")):
        r = runner.invoke(app, ["validate", str(path)])
        assert r.exit_code == 2 and fragment in r.output and "Traceback" not in r.output


# -- values that parse but cannot run (issue 13 §4, §10) ----------------------------------------


@pytest.mark.parametrize("key", ["resources.cpus_per_trial", "train.lr",
                                 "variant.a.jitter.std", "model.query_sigma",
                                 "data.prescale", "resources.gpus_per_trial"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_refused_at_validation_with_the_key_path(tmp_path, key, value):
    path = write(tmp_path, BASE)
    r = runner.invoke(app, ["validate", path, "--set", f"{key}={value}"])
    assert r.exit_code == 2, r.output
    shown = key if not key.startswith("variant.a.") else "jitter.std"
    assert shown in r.output and "finite" in r.output, r.output


def test_seeds_must_fit_32_bits(tmp_path):
    found = problems_of(tmp_path, BASE, ["study.seeds=[0, 18446744073709551615]"])
    assert found[0][0] == "study.seeds[1]" and "4294967295" in found[0][1]
    found = problems_of(tmp_path, BASE, ["study.seeds=[4294967296]"])
    assert found[0][0] == "study.seeds[0]"
    assert load_study(write(tmp_path, BASE), ["study.seeds=[4294967295]"]).study.seeds == (2 ** 32 - 1,)


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    found = problems_of(tmp_path, BASE.replace('name = "t"', 'name = "t\\n"'))
    assert found[0][0] == "study.name"
    found = problems_of(tmp_path, BASE.replace('name = "a"', 'name = "a\\n"'))
    assert any(k.endswith(".name") and k.startswith("variant[1]") for k, _ in found), found


@pytest.mark.parametrize("key,value", [("model.dim", 10 ** 9), ("data.test_samples", 10 ** 11),
                                       ("train.batch_size", 10 ** 9)])
def test_sizes_that_cannot_fit_in_memory_are_refused_with_an_estimate(tmp_path, key, value):
    path = write(tmp_path, BASE)
    r = runner.invoke(app, ["validate", path, "--set", f"{key}={value}"])
    assert r.exit_code == 2, r.output
    assert f"{key}: a trial would need ≈ " in r.output and "more than any machine" in r.output
    # the shipped studies are far below the limit
    for study in STUDIES.glob("*.toml"):
        assert runner.invoke(app, ["validate", str(study)]).exit_code == 0, study


def test_empty_spec_is_refused_and_a_bom_is_accepted(tmp_path):
    for text in ("", "\n  \n# only a comment\n"):
        (tmp_path / "e.toml").write_text(text)
        r = runner.invoke(app, ["validate", str(tmp_path / "e.toml")])
        assert r.exit_code == 2 and "holds no keys" in r.output, r.output
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + textwrap.dedent(BASE).encode())
    r = runner.invoke(app, ["validate", str(tmp_path / "bom.toml")])
    assert r.exit_code == 0, r.output


def test_deeply_nested_toml_is_invalid_input_not_a_traceback(tmp_path):
    (tmp_path / "deep.toml").write_text("[study]\nname = " + "[" * 5000 + "]" * 5000 + "\n")
    r = runner.invoke(app, ["validate", str(tmp_path / "deep.toml")])
    assert r.exit_code == 2 and "nested too deeply" in r.output, r.output
    r = runner.invoke(app, ["validate", write(tmp_path, BASE), "--set",
                            "train.lr=" + "[" * 5000 + "]" * 5000])
    assert r.exit_code == 2 and "nested too deeply" in r.output, r.output


# -- curriculum stages as fractions, and from_epoch stages under other epoch counts ---------------

FRACTIONS = """
[study]
name = "f"
[data]
hr_size = 64
eval_resolutions = [32, 64]
[train]
epochs = 8
[[variant]]
name = "epochs"
multiscale = { mode = "random_res", resolutions = [32, 48, 64] }
curriculum = { stages = [{ from_epoch = 1, resolutions = [32] },
                         { from_epoch = 3, resolutions = [32, 48] },
                         { from_epoch = 7, resolutions = [32, 48, 64] }] }
[[variant]]
name = "fractions"
jitter = "per_batch"
multiscale = { mode = "random_res", resolutions = [32, 48, 64] }
curriculum = { stages = [{ from_fraction = 0, resolutions = [32] },
                         { from_fraction = 0.25, resolutions = [32, 48] },
                         { from_fraction = 0.75, resolutions = [32, 48, 64] }] }
"""


def _starts(trial):
    return [(s.from_epoch, s.resolutions) for s in trial.train.curriculum.stages]


def test_curriculum_fractions_resolve_to_epochs(tmp_path):
    path = write(tmp_path, FRACTIONS)
    ep, fr = expand(load_study(path))
    want = [(1, (32,)), (3, (32, 48)), (7, (32, 48, 64))]
    assert _starts(ep) == want and _starts(fr) == want  # 1 + ⌊f · 8⌋
    assert fr.train.curriculum.stages[1].from_fraction is None  # resolved: epochs only
    # same resolved curriculum → same trial id whichever form it was written in
    one = FRACTIONS.split("[[variant]]")[0] + "[[variant]]" + FRACTIONS.split("[[variant]]")[2]
    other = one.replace("from_fraction = 0.25", "from_epoch = 3").replace(
        "from_fraction = 0.75", "from_epoch = 7").replace("from_fraction = 0", "from_epoch = 1")
    assert "from_fraction" not in other
    assert expand(load_study(write(tmp_path, one, "one.toml")))[0].trial_id == \
        expand(load_study(write(tmp_path, other, "other.toml")))[0].trial_id == fr.trial_id
    # fractions work at any epoch count, with no note when no stage merges
    s = load_study(path, ["train.epochs=20"])
    assert _starts(expand(s)[1]) == [(1, (32,)), (6, (32, 48)), (16, (32, 48, 64))]
    # a round trip through the trial dict (Ray's config) keeps the id
    t = expand(s)[1]
    assert trial_from_dict(json.loads(json.dumps(trial_to_dict(t)))).trial_id == t.trial_id


def test_from_epoch_stages_scale_with_overridden_epochs(tmp_path):
    path = write(tmp_path, FRACTIONS)
    base = expand(load_study(path))[0]
    s = load_study(path, ["train.epochs=16"])
    ep, fr = expand(s)
    # from_epoch 1, 3, 7 of 8 epochs keep their share of 16: 1 + (N − 1) · 16 // 8
    assert _starts(ep) == [(1, (32,)), (5, (32, 48)), (13, (32, 48, 64))]
    assert _starts(fr) == [(1, (32,)), (5, (32, 48)), (13, (32, 48, 64))]
    assert ep.trial_id != base.trial_id
    assert len(s.notes) == 1 and 'variant "epochs"' in s.notes[0]
    assert "written for 8 epochs" in s.notes[0] and "1, 5, 13" in s.notes[0]
    # 2 epochs: the stages that land on one epoch merge, the later one used; a note says so
    s2 = load_study(path, ["train.epochs=2"])
    ep2, fr2 = expand(s2)
    assert _starts(ep2) == [(1, (32, 48)), (2, (32, 48, 64))]  # starts 1, 1, 2
    assert _starts(fr2) == [(1, (32, 48)), (2, (32, 48, 64))]
    assert any("later one is used" in n for n in s2.notes)


def test_shipped_studies_take_any_epoch_count_and_keep_their_ids():
    for name in ("quickstart", "jitter_vs_multiscale", "jitter_vs_multiscale_cpu", "sigma_sweep",
                 "locality"):
        for epochs in (1, 2, 3):
            study = load_study(STUDIES / f"{name}.toml", [f"train.epochs={epochs}"])
            own = {v.name: dict(v.overrides).get("train.epochs") for v in study.variants}
            for t in expand(study):
                # a variant that sets its own epochs (the CPU flagship's LIIF row) keeps them:
                # its own key is applied over the [train] section, --set included
                assert t.train.epochs == (own[t.variant] or epochs), (name, t.variant)
    # no override: the from_epoch stages as written (ids unchanged from before fractions)
    j = expand(load_study(STUDIES / "jitter_vs_multiscale.toml"))
    prog = next(t for t in j if t.variant == "progressive")
    assert [s.from_epoch for s in prog.train.curriculum.stages] == [1, 11, 21, 31]
    assert prog.train.curriculum.describe() == "1:32 11:32,48 21:32,48,64 31:32,48,64,96"
    assert not load_study(STUDIES / "jitter_vs_multiscale.toml").notes


def test_cli_prints_the_scaling_note(tmp_path):
    r = runner.invoke(app, ["validate", str(STUDIES / "jitter_vs_multiscale.toml"),
                            "--set", "train.epochs=2"])
    assert r.exit_code == 0, r.output
    assert 'note: variant "progressive"' in r.output and "written for 40 epochs" in r.output
