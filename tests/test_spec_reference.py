"""docs/spec.md is generated from ablate/spec/config.py (ablate/spec/reference.py): it must be
current, and every key must say what it means."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ablate.spec import reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


def test_docs_spec_md_is_current():
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        "docs/spec.md is stale: run `python -m ablate.spec.reference > docs/spec.md`")


def test_every_key_of_every_table_has_a_meaning():
    comments = reference.field_comments()
    missing = [f"{cls.__name__}.{f.name}" for _, cls, _ in reference._TABLES
               for f in dataclasses.fields(cls) if not comments.get((cls.__name__, f.name))]
    assert not missing, f"fields without a comment in ablate/spec/config.py: {missing}"


def test_comments_are_read_with_their_continuation_lines():
    src = ("class A:\n"
           "    x: int = 1  # first line\n"
           "    #   second line\n"
           "    y: int = 2\n")
    assert reference.field_comments(src) == {("A", "x"): "first line second line", ("A", "y"): ""}
