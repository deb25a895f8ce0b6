"""Code blocks of the README and docs/, as a reader sees them, for tests that run them as written.

Both Markdown forms are read: fenced blocks (```lang) and indented blocks (four spaces, after a
blank line, outside a list). Each block knows the heading it sits under, so a test can pick
"the python block under 'A first DAG'" without line numbers that drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGS = {"sh", "bash", "shell", "console"}
#: First words that make an indented block a shell command (indented blocks have no language).
COMMAND_WORDS = {"python", "pip", "make", "airflow", "export", ".", "uv"}


@dataclass(frozen=True)
class Block:
    path: Path
    heading: str
    lang: str  # "" for an indented block
    code: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.heading})"

    def commands(self) -> list[str]:
        """The shell commands of the block: ``$ `` lines of a console block, else the whole
        block split at lines that do not continue the previous one (``\\`` or an open quote)."""
        if self.lang == "console":
            return [line[2:] for line in self.code.splitlines() if line.startswith("$ ")]
        out: list[str] = []
        current = ""
        for line in self.code.splitlines():
            if not line.strip() and not current:
                continue
            current = f"{current}\n{line}" if current else line
            if current.rstrip().endswith("\\") or current.count("'") % 2 == 1:
                continue
            out.append(current.strip())
            current = ""
        if current.strip():
            out.append(current.strip())
        return out

    @property
    def is_shell(self) -> bool:
        if self.lang:
            return self.lang in SHELL_LANGS
        first = self.code.strip().split(maxsplit=1)[0] if self.code.strip() else ""
        return first in COMMAND_WORDS


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    heading = ""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    previous_blank = True
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            found.append(Block(path, heading, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", i + 1))
            i, previous_blank = end + 1, False
            continue
        if line.startswith("    ") and previous_blank and line.strip():
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            body = [text[4:] for text in lines[i:end]]
            found.append(Block(path, heading, "", "\n".join(body).strip("\n") + "\n", i + 1))
            i, previous_blank = end, True
            continue
        previous_blank = not line.strip()
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in DOC_FILES for block in blocks(path)]


def under(heading: str, lang: str | None = None, path: Path = ROOT / "README.md") -> list[Block]:
    """The blocks under a heading (exact text), optionally of one language."""
    return [b for b in blocks(path) if b.heading == heading and (lang is None or b.lang == lang)]
