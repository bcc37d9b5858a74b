"""Citations point into the shipped reference (issue 14): no citation of the unshipped specification, and every
"reference.md §N.M" (also chains such as "§1.2-§1.5", "§2.2/§2.4", "§9 Q3") names a heading of
docs/reference.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "demo_runs"}
TEXT_SUFFIXES = {".py", ".md", ".tsv", ".toml", ".txt", ".json", ".yaml", ".cfg"}
# every section of the reference, numbered as the project's specification numbers them
SECTIONS = (
    [str(n) for n in range(11)]
    + [f"0.{i}" for i in range(1, 7)]
    + [f"1.{i}" for i in range(1, 13)]
    + [f"2.{i}" for i in range(1, 9)]
    + [f"3.{i}" for i in range(1, 8)]
    + [f"4.{i}" for i in range(1, 4)]
    + [f"5.{i}" for i in range(1, 9)]
    + [f"6.{i}" for i in range(1, 8)]
    + [f"7.{i}" for i in range(1, 8)]
)
OLD_CITATION = "SPEC" + " §"  # split so the one-line replacement command leaves this test alone
CITATION = re.compile(r"reference\.md (§\d+(?:\.\d+)?(?:(?: ?[-–/,] ?| and )§\d+(?:\.\d+)?)*(?: Q\d+)?)")


def shipped_text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name.endswith("_yaml")):
            files.append(path)
    return files


def headings() -> set[str]:
    found = set()
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{1,3} (\d+(?:\.\d+)?) \S", line)
        if match:
            found.add(match.group(1))
    return found


def test_reference_has_every_section_heading_once() -> None:
    numbers = [
        m.group(1)
        for line in REFERENCE.read_text(encoding="utf-8").splitlines()
        if (m := re.match(r"#{1,3} (\d+(?:\.\d+)?) \S", line))
    ]
    assert sorted(numbers) == sorted(SECTIONS)


def test_no_spec_citations_in_shipped_files() -> None:
    offenders = []
    for path in shipped_text_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OLD_CITATION in line:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert not offenders, "cite docs/reference.md §N.M instead of SPEC: " + ", ".join(offenders[:20])


def test_every_reference_citation_names_a_heading() -> None:
    known = headings()
    questions = set(re.findall(r"\*\*(Q\d+) ", REFERENCE.read_text(encoding="utf-8")))
    cited = 0
    missing = []
    for path in shipped_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            chain = match.group(1)
            for number in re.findall(r"§(\d+(?:\.\d+)?)", chain):
                cited += 1
                if number not in known:
                    missing.append(f"{path.relative_to(ROOT)}: §{number}")
            question = re.search(r" (Q\d+)$", chain)
            if question and question.group(1) not in questions:
                missing.append(f"{path.relative_to(ROOT)}: §9 {question.group(1)}")
    assert cited > 0
    assert not missing, "citations of sections docs/reference.md does not have: " + ", ".join(missing)


def test_citation_pattern_reads_chains() -> None:
    text = "see docs/reference.md §1.2-§1.5 and docs/reference.md §2.2/§2.4, docs/reference.md §9 Q3."
    chains = [m.group(1) for m in CITATION.finditer(text)]
    assert chains == ["§1.2-§1.5", "§2.2/§2.4", "§9 Q3"]


def test_readme_module_map_names_modules_that_exist() -> None:
    # README "Where a thing lives": every `package/module.py` named there exists (a later module in one cell,
    # written as `module.py`, lives in the first one's package).
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("Where a thing lives:", 1)[1].strip().split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line.rsplit("|", 2)[1]]
    assert len(rows) >= 10
    for row in rows:
        package = None
        for name in re.findall(r"`([\w/]+\.py)`", row.rsplit("|", 2)[1]):
            if "/" in name:
                package = name.rsplit("/", 1)[0]
            assert package is not None and (ROOT / package / name.rsplit("/", 1)[-1]).is_file(), (row, name)
