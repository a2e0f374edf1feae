"""The one command that regenerates the README's measured tables and the guide, at a small
size, into a scratch folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_measured_block_has_a_section():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import regenerate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    for doc, path in regenerate.DOCUMENTS.items():
        names = re.findall(r"<!-- measured:([\w-]+):start -->", (ROOT / path).read_text())
        assert names and set(names) == {n for n, (d, _) in regenerate.SECTIONS.items()
                                        if d == doc}, doc


@pytest.mark.slow
def test_regenerate_at_a_small_size_fills_every_block(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "regenerate.py"), "--small",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "regenerated 11 sections" in done.stderr
    for path in ("README.md", "docs/guide.md"):
        text = (tmp_path / path).read_text()
        blocks = re.findall(r"<!-- measured:([\w-]+):start -->\n(.*?)<!-- measured:\1:end -->",
                            text, re.S)
        assert blocks, path
        for name, body in blocks:
            assert body.strip(), (path, name)
            for link in re.findall(r"\]\(((?:docs/)?img/[^)]+)\)", body):
                base = tmp_path if path == "README.md" else tmp_path / "docs"
                assert (base / link).stat().st_size > 5_000, (name, link)
    guide = (tmp_path / "docs/guide.md").read_text()
    assert "descend paths --surface parabola" in guide and "--regime full,sgd,minibatch" in guide
    assert "bias_correction=false" in guide and "plateau:patience=2" in guide
    readme = (tmp_path / "README.md").read_text()
    assert "descend compare --suite test" in readme and "mnist1d-cnn" in readme
    # the repository's own documents are left alone
    assert (ROOT / "README.md").read_text() != readme
