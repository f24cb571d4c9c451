"""A curriculum's stages as written in a spec → the epochs a trial switches at.

A stage starts either at `from_epoch = N` or at `from_fraction = f` (the share of training
done before it starts). In a trial's config every stage has its from_epoch:

* `from_fraction = f` → epoch 1 + ⌊f · epochs⌋ (f = 0.25 of 40 epochs: epoch 11; of 8: 3);
* `from_epoch = N` is written for the epochs of the spec file (its `[train] epochs`, or the
  variant's own `train.epochs`). A trial that trains for that many epochs keeps N unchanged;
  one that trains for another number E (`--set train.epochs=2`, a grid axis) keeps each
  stage's share of training: N → 1 + ⌊(N − 1) · E / written⌋, and a note says so;
* stages that land on the same epoch (few epochs, many stages): the later one replaces the
  earlier one, i.e. training jumps ahead in the curriculum; the note lists the epochs.

So `from_epoch` specs keep their trial ids, and the same curriculum written with fractions
gets the same ids as its `from_epoch` form wherever they agree.
"""

from __future__ import annotations

import dataclasses
import math

from ablate.spec.config import CurriculumConfig, CurriculumStage


def stage_starts(cur: CurriculumConfig, epochs: int, written_epochs: int) -> list[int]:
    """The 1-based start epoch of each stage, in order, before stages sharing an epoch are
    merged (a stage without from_fraction and from_epoch starts at epoch 1)."""
    out = []
    for s in cur.stages:
        if s.from_fraction is not None:
            out.append(1 + math.floor(round(s.from_fraction * epochs, 9)))
        elif written_epochs and written_epochs != epochs:
            out.append(1 + (s.from_epoch - 1) * epochs // written_epochs)
        else:
            out.append(s.from_epoch)
    return out


def problems_of(cur: CurriculumConfig, epochs: int, written_epochs: int) -> list[tuple[str, str]]:
    """(key under train.curriculum, message) for every problem of the stages as written."""
    if not cur.stages:
        return []
    out = []
    fractions = [s.from_fraction is not None for s in cur.stages]
    if any(fractions) and not all(fractions):
        return [("stages", "stages mix from_fraction and from_epoch: give every stage the same "
                 "form (from_fraction = 0 for the first)")]
    if all(fractions):
        starts = [s.from_fraction for s in cur.stages]
        if starts[0] != 0:
            out.append(("stages[1].from_fraction",
                        f"the first stage must start at 0 (the start of training), got {starts[0]:g}"))
        late = [f for f in starts if f >= 1]
        if late:
            out.append(("stages", f"from_fraction must be < 1 (a stage starts before training "
                        f"ends), got {', '.join(f'{f:g}' for f in late)}"))
        what = "from_fraction"
    else:
        starts = [s.from_epoch for s in cur.stages]
        if starts[0] != 1:
            out.append(("stages[1].from_epoch",
                        f"the first stage must start at epoch 1, got {starts[0]}"))
        written = written_epochs or epochs
        late = [s for s in starts if s > written]
        if late:
            out.append(("stages", f"stages start at epochs {late}, past the last epoch "
                        f"(train.epochs = {written})"))
        what = "from_epoch"
    if any(b <= a for a, b in zip(starts, starts[1:])):
        out.append(("stages", f"{what} must increase strictly, got {list(starts)}"))
    return out


def resolve(cur: CurriculumConfig, epochs: int, written_epochs: int = 0
            ) -> tuple[CurriculumConfig, str]:
    """The trial's curriculum (every stage at its from_epoch, stages sharing an epoch merged)
    and a note when from_epoch stages were scaled or stages merged ("" otherwise)."""
    if not cur.stages:
        return cur, ""
    starts = stage_starts(cur, epochs, written_epochs)
    merged: dict[int, CurriculumStage] = {}
    for start, s in zip(starts, cur.stages):
        merged[start] = CurriculumStage(from_epoch=start, resolutions=s.resolutions)
    out = CurriculumConfig(stages=tuple(merged[k] for k in sorted(merged)))
    scaled = any(s.from_fraction is None for s in cur.stages) and written_epochs \
        and written_epochs != epochs
    if not scaled and len(merged) == len(starts):
        return out, ""
    if scaled:
        head = (f"curriculum stages written for {written_epochs} epochs (from_epoch "
                f"{', '.join(str(s.from_epoch) for s in cur.stages)}) scaled to train.epochs = "
                f"{epochs}: they start at epochs {', '.join(map(str, starts))}")
    else:
        head = (f"curriculum stages (from_fraction "
                f"{', '.join(f'{s.from_fraction:g}' for s in cur.stages)}) at train.epochs = "
                f"{epochs} start at epochs {', '.join(map(str, starts))}")
    if len(merged) != len(starts):
        head += ("; where stages share an epoch the later one is used, so training runs "
                 + ", ".join(f"{','.join(map(str, s.resolutions))} from epoch {s.from_epoch}"
                             for s in out.stages))
    if scaled:
        head += " (write from_fraction to give stages as shares of training)"
    return out, head


def with_epochs(train, written_epochs: int):
    """`train` (a TrainConfig) with its curriculum resolved; and the note ("" if none)."""
    cur, note = resolve(train.curriculum, train.epochs, written_epochs)
    return dataclasses.replace(train, curriculum=cur), note
