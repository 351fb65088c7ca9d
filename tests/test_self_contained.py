"""The repository stands alone: no file points outside it (a sibling folder of our machines, an
absolute home or machine path), and the data the ready scenarios read ships with it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, mnist_root

# Built from pieces so that this file does not hold the patterns it looks for.
SLASH, BACKSLASH = "/", "\\"
FORBIDDEN = (".." + SLASH + "shared", SLASH + "work" + SLASH, SLASH + "home" + SLASH,
             SLASH + "Users" + SLASH, "C:" + BACKSLASH)
FIXTURES = ("tests/fixtures/", "tests/data/")  # test inputs, may hold anything
SKIPPED_DIRS = {".git", ".venv", "results", "__pycache__", ".pytest_cache", ".ruff_cache",
                "build"}


def repository_files() -> list[str]:
    """The files of the repository (tracked, plus new ones git does not ignore); a walk of the
    tree when git or its metadata is missing (an unpacked archive)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        files = [f for f in out.stdout.splitlines() if f]
        if files:
            return files
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        files += [str((Path(root) / n).relative_to(REPO)).replace(os.sep, "/") for n in names]
    return files


def offending_lines(files: list[str]) -> list[str]:
    """``path:line: pattern`` for every forbidden pattern in a text file outside fixtures."""
    found = []
    for rel in files:
        if rel.startswith(FIXTURES):
            continue
        path = REPO / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):  # binary (the .gz data files), or deleted
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in FORBIDDEN:
                if pattern in line:
                    found.append(f"{rel}:{number}: {pattern}")
    return found


def test_no_file_points_outside_the_repository() -> None:
    files = repository_files()
    assert "README.md" in files and "tests/conftest.py" in files
    found = offending_lines(files)
    assert not found, "paths outside the repository:\n" + "\n".join(found)


def test_the_scan_finds_each_pattern(tmp_path: Path, monkeypatch) -> None:
    """The scan is not vacuous: a file holding any one pattern is reported, a fixture is not."""
    monkeypatch.setattr("tests.test_self_contained.REPO", tmp_path)
    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    names = []
    for i, pattern in enumerate(FORBIDDEN):
        (tmp_path / f"f{i}.md").write_text(f"ok\nsee {pattern}x\n")
        names.append(f"f{i}.md")
    (tmp_path / "tests" / "fixtures" / "a.txt").write_text(FORBIDDEN[0])
    (tmp_path / "clean.py").write_text("root = 'data/mnist-test'\n")
    found = offending_lines([*names, "tests/fixtures/a.txt", "clean.py"])
    assert found == [f"f{i}.md:2: {p}" for i, p in enumerate(FORBIDDEN)]


@pytest.mark.parametrize("name, md5", [
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
])
def test_mnist_test_set_ships_intact(name: str, md5: str) -> None:
    """The shipped files are the official ones (the md5 sums torchvision checks) and git does
    not ignore them."""
    path = mnist_root() / name
    assert path.is_relative_to(REPO)
    assert hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() == md5
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, timeout=60)
    assert ignored.returncode != 0, f"{path} is ignored by .gitignore"
    assert (mnist_root() / "README.md").is_file()
