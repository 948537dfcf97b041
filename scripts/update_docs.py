"""Refresh the generated parts of the docs (the config reference in docs/configuration.md):

    python -m scripts.update_docs
"""

from __future__ import annotations

import re
from pathlib import Path

from config.reference import markdown

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def render(text: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"{CONFIGURATION} lost its {START} / {END} markers")
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{markdown()}\n{END}", text,
                  flags=re.S)


if __name__ == "__main__":
    CONFIGURATION.write_text(render(CONFIGURATION.read_text()))
