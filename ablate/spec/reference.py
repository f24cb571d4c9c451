"""The spec reference (docs/spec.md), generated from ``config.py``: every key of a study file,
its type, default, bounds and meaning. The meaning is the comment beside the field in
config.py (its first line and the ``#   `` lines that continue it), so the reference cannot say
anything the code does not; ``tests/test_spec_reference.py`` fails when docs/spec.md is stale.

    python -m ablate.spec.reference > docs/spec.md
"""

from __future__ import annotations

import ast
import dataclasses
import io
import sys
import tokenize
import typing
from pathlib import Path

from ablate.spec import config as C

_SOURCE = Path(C.__file__)

# (heading, the dataclass, the TOML path a key is written under)
_TABLES = (
    ("[study]", C.StudySection, "study"),
    ("[data]", C.DataConfig, "data"),
    ("[model]", C.ModelConfig, "model"),
    ("[model.liif] (or `liif = { … }` in [model])", C.LiifConfig, "model.liif"),
    ("[train]", C.TrainConfig, "train"),
    ("jitter (in [train] or a variant)", C.JitterConfig, "train.jitter"),
    ("multiscale (in [train] or a variant)", C.MultiscaleConfig, "train.multiscale"),
    ("curriculum stages (in [train] or a variant: `curriculum = [{ … }, …]`)",
     C.CurriculumStage, "train.curriculum[]"),
    ("[resources]", C.ResourcesConfig, "resources"),
)
_NESTED = {C.JitterConfig, C.MultiscaleConfig, C.CurriculumConfig, C.LiifConfig}


def field_comments(source: str = "") -> dict[tuple[str, str], str]:
    """(class name, field name) → the comment beside the field, continuation lines joined."""
    source = source or _SOURCE.read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    out = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            line = item.end_lineno
            text = comments.get(line, "")
            parts = [text.lstrip("#").strip()] if text else []
            nxt = line + 1
            while comments.get(nxt, "").startswith("#   "):
                parts.append(comments[nxt][1:].strip())
                nxt += 1
            out[(node.name, item.target.id)] = " ".join(p for p in parts if p)
    return out


def _type(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(f'"{a}"' if isinstance(a, str) else repr(a)
                            for a in typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp)]
        return " or ".join("none (left out)" if a is type(None) else _type(a) for a in args)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return f"list of {_type(inner)}"
    if tp in _NESTED:
        return "table (below)"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING:
        return "required"
    v = f.default
    if dataclasses.is_dataclass(v):
        return "(below)"
    if v is None:
        return "—"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, tuple):
        return "`[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]`"
    return f"`{v:g}`" if isinstance(v, float) else f"`{v}`"


def _bounds(f: dataclasses.Field) -> str:
    m = f.metadata
    out = []
    for key, sign in (("min", "≥"), ("gt", ">"), ("max", "≤")):
        if key in m:
            v = m[key]
            out.append(f"{sign} {v:,}" if isinstance(v, int) else f"{sign} {v:g}")
    if m.get("even"):
        out.append("even")
    if m.get("nonempty"):
        out.append("not empty")
    return ", ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    comments = field_comments()
    hints = {cls: typing.get_type_hints(cls, vars(C)) for _, cls, _ in _TABLES}
    lines = [
        "# Study spec reference",
        "",
        "Generated from [`ablate/spec/config.py`](../ablate/spec/config.py) by",
        "`python -m ablate.spec.reference > docs/spec.md`; `tests/test_spec_reference.py` fails",
        "when this file is stale. Every key is optional (its default is used); `ablate validate",
        "STUDY.toml` lists every problem of a study at once, with the key path. A variant",
        "(`[[variant]]`: `name`, `label`) sets the axes `jitter`, `multiscale`, `curriculum`,",
        "`sigmas` and any `data`, `model` or `train` key as a table (`train = { epochs = 32 }`);",
        "`[grid]` crosses axes (`\"model.dim\" = [64, 128]`); `--set KEY=VALUE` overrides any",
        "key by its dotted path. The `[search]` table is described in the README (\"Searching\").",
        "",
    ]
    for heading, cls, path in _TABLES:
        lines += [f"## {heading}", ""]
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(cls.__name__ + "("):
            lines += [" ".join(doc.split()), ""]
        lines += ["| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            meaning = comments.get((cls.__name__, f.name), "")
            lines.append(f"| `{f.name}` | {_type(hints[cls][f.name])} | {_default(f)} | "
                         f"{_bounds(f)} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
