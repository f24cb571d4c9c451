"""What a name may be: of a study, a variant — anything that may end up in a path.

    valid_name("jitter_vs_multiscale")  # True
    valid_name("../..")                 # False: a name never leaves its folder
    valid_name("demo\n")                # False: the whole string must match

Names in a spec are checked with it at validation (spec/parse.py), and so are names read back
from result files (results/read.py) before they reach a path.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RULE = "letters, digits, '-', '_' or '.', starting with a letter or digit"


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None and ".." not in name
