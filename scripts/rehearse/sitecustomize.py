"""Rehearsal only (`scripts/gpu_study.sh --rehearse`): this machine's Python made to look like
the bare GPU image, which lacks scikit-learn, Ray's dashboard packages, Optuna and MLflow.

On PYTHONPATH, this module is imported at start-up by every Python process of the rehearsal
(Ray's workers included). Each top-level package named in GPU_STUDY_BLOCK (comma-separated)
does not import from the interpreter's own site-packages, as if it were not installed there;
found anywhere else (what the GPU call carries, e.g. .carry/sklearn-photos; the copies Ray
vendors inside its own package, e.g. aiohttp for its runtime-env agent) it imports as usual.
Limit: `importlib.util.find_spec` of a blocked name raises instead of returning None, so a
package probed that way (pydantic_core, by yarl) cannot be blocked."""

import os
import sys

_BLOCKED = {n.strip() for n in os.environ.get("GPU_STUDY_BLOCK", "").split(",") if n.strip()}

if _BLOCKED:
    import importlib.abc
    import importlib.machinery
    import site

    _SITE = tuple(os.path.realpath(p) + os.sep for p in site.getsitepackages())
    _VENDORED = tuple(p + "ray" + os.sep for p in _SITE)  # Ray's thirdparty folders

    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if "." in name or name not in _BLOCKED:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            where = spec and (spec.origin if spec.origin not in (None, "namespace")
                              else next(iter(spec.submodule_search_locations or []), None))
            real = where and os.path.realpath(where)
            vendored = real and real.startswith(_VENDORED) and "thirdparty" in real
            if real and real.startswith(_SITE) and not vendored:
                raise ModuleNotFoundError(f"No module named {name!r} (GPU_STUDY_BLOCK: not on "
                                          "the GPU image)", name=name)
            return spec

    sys.meta_path.insert(0, _NotInstalled())
