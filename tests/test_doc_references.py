"""Every cross-reference in the code and the docs points at something in the repository.

A path (`docs/model.md`, `scripts/convert_i3d.py`), a section (`docs/model.md §6`,
`README.md § Protocols`), a Markdown link with its anchor, and a dotted name
(`delcli.inference.nms_oracle`) must exist: the repository explains itself, with no
document left outside it. CHANGELOG.md is history and may name what is gone.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [ROOT / "README.md", ROOT / "pyproject.toml"]
    + [p for folder in ("docs", "zoo", "scripts") for p in (ROOT / folder).iterdir() if p.is_file()]
    + list((ROOT / "delcli").rglob("*.py"))
    + list((ROOT / "delcli" / "resources").rglob("*.md"))
    + list((ROOT / "tests").glob("*.py"))
)
PATH = re.compile(
    r"(?<![\w/.-])((?:delcli|docs|scripts|tests|zoo|examples)/[\w./-]*[\w-]"
    r"|[\w-]+\.(?:md|toml))(?![\w/-])"
)
SECTION = re.compile(r"([\w./-]+\.md)`?,? §\s*([^\n`]*(?:\n[^\n`]*)?)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w.])delcli(?:\.\w+)+")
PLACEHOLDER = re.compile(r"[{}<>*…]|NAME|ORG|FILE")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def markdown_file(name: str, source: Path) -> Path | None:
    """`docs/model.md`, or a bare `model.md` beside the citing file or under docs/."""
    for base in (ROOT, source.parent, ROOT / "docs"):
        if (base / name).is_file():
            return base / name
    return None


@cache
def headings(path: Path) -> list[str]:
    return [
        line.lstrip("#").strip().replace("`", "")
        for line in text(path).splitlines()
        if line.startswith("#")
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_repository_path_named_exists():
    missing = []
    for source in SOURCES:
        for match in PATH.finditer(text(source)):
            name = match.group(1).rstrip(".")
            if PLACEHOLDER.search(name) or name.startswith("tests/data"):
                continue
            found = (ROOT / name).exists() or (
                "/" not in name and markdown_file(name, source) is not None
            )
            if not found:
                missing.append(f"{source.relative_to(ROOT)}: {name}")
    assert not missing, "paths that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_every_cited_section_exists():
    """`docs/model.md §6` names a heading `§6 …`; `README.md § Protocols` a heading that
    the text after the § starts with (up to a parenthesis)."""
    missing = []
    for source in SOURCES:
        for match in SECTION.finditer(text(source)):
            target = markdown_file(match.group(1), source)
            cited = " ".join(match.group(2).split())
            if re.match(r"N\b", cited):  # the form itself, "docs/model.md §N"
                continue
            if target is None:
                missing.append(f"{source.relative_to(ROOT)}: {match.group(1)} (no such file)")
                continue
            number = re.match(r"\d+", cited)
            titles = headings(target)
            if number:
                found = any(t.split()[0] == f"§{number.group()}" for t in titles if t)
            else:
                found = any(cited.startswith(t.split(" (")[0]) for t in titles if t)
            if not found:
                missing.append(f"{source.relative_to(ROOT)}: {match.group(1)} § {cited[:40]}")
    assert not missing, "sections that do not exist:\n" + "\n".join(missing)


def test_every_markdown_link_and_anchor_resolves():
    broken = []
    for source in [s for s in SOURCES if s.suffix == ".md"]:
        for match in LINK.finditer(text(source)):
            target, _, anchor = match.group(1).partition("#")
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (source.parent / target) if target else source
            if not path.exists():
                broken.append(f"{source.relative_to(ROOT)}: {match.group(1)}")
            elif anchor and anchor not in {slug(h) for h in headings(path)}:
                broken.append(f"{source.relative_to(ROOT)}: {match.group(1)} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


@cache
def top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(text(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def module_file(dotted: str) -> Path | None:
    base = ROOT / Path(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_every_dotted_delcli_name_exists():
    """`delcli.inference.nms.soft_nms`: the longest prefix that is a module, then a name
    defined in it."""
    missing = []
    for source in SOURCES:
        for match in DOTTED.finditer(text(source)):
            parts = match.group().split(".")
            for end in range(len(parts), 0, -1):
                module = module_file(".".join(parts[:end]))
                if module is not None:
                    break
            rest = parts[end:]
            if rest and rest[0] not in top_level_names(module):
                missing.append(f"{source.relative_to(ROOT)}: {match.group()}")
    assert not missing, "names that do not exist:\n" + "\n".join(sorted(set(missing)))
