"""The import graph's floors (README "Layout"): no cycle between ablate's packages, every import
counted, the ones inside functions included (an import moved into a function to dodge a cycle
still makes one); the spec imports no other package; the trial core never imports Ray; the
driver and `ablate --help` never import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ablate"


def _unit(module: str) -> str:
    """The package (or top-level module) an ablate module belongs to: ablate.spec.parse →
    spec, ablate.schema → schema."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = _unit(module) if len(rel.parts) > 1 else ""
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names] \
                    if node.module == "ablate" else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                unit = _unit(t) if t.startswith("ablate.") else ""
                known = (ROOT / unit).is_dir() or (ROOT / f"{unit}.py").is_file()
                if unit and known and src and unit != src:
                    edges[src].add(unit)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_cycle_between_packages():
    edges = package_graph()
    assert edges["spec"], "the graph is empty: the walker finds no imports"
    assert _cycle(edges) is None, " → ".join(_cycle(edges))


def test_the_walker_sees_a_cycle_hidden_in_a_function():
    edges = {"spec": {"schema"}, "results": {"spec"}}
    assert _cycle(edges) is None
    edges["spec"].add("results")  # e.g. `def f(): from ablate.results import x` in spec
    assert _cycle(edges) == ["results", "spec", "results"]


def test_floors():
    edges = package_graph()
    assert edges["spec"] <= {"schema"}, edges["spec"]
    for low in ("schema", "imaging", "version"):
        assert not edges.get(low), (low, edges.get(low))
    for pkg, above in {"results": {"metrics", "train", "orchestrate", "table", "report", "cli"},
                       "train": {"orchestrate", "table", "report", "cli"},
                       "table": {"orchestrate", "train", "report", "cli"}}.items():
        assert not edges[pkg] & above, (pkg, edges[pkg] & above)
    assert not [p for p, e in edges.items() if "cli" in e and p != "cli"]


def _imports(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


def test_trial_core_is_ray_free_and_driver_and_cli_torch_free():
    assert "ray" not in _imports("import ablate.train.trial, ablate.orchestrate.local")
    assert "torch" not in _imports("import ablate.orchestrate.driver")
    # `ablate run`'s first line comes before anything imports torch (~1 s): issue 28 §2
    assert "torch" not in _imports("import ablate.orchestrate.run, ablate.cli.run_cmds")
    assert not {"torch", "ray", "pandas", "matplotlib"} & _imports("import ablate.cli.app")
