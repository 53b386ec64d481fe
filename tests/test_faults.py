"""Fault injection: kill -9 at random points of capture, analyses, experiments and report, and two
runs racing on one folder; after recovery every array and table equals an undisturbed run.

Every write of a run passes fault points (``layerdrift.workbench.files.fault_point``): each array of
each batch, each finished-batch record, each table of a result set, each rename. A run with
``LAYERDRIFT_FAULT_LOG`` lists them; one with ``LAYERDRIFT_FAULT_AT=N`` SIGKILLs itself at the N-th.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import VOCAB_TEXT
from layerdrift import run
from layerdrift.workbench import files
from layerdrift.workbench.config import config_from_dict
from test_hardening import assert_same_run

PHASES = ("capture", "analyses", "experiments", "report")
SEEDS = (0, 1)
SCRIPT = "import json, sys\nfrom layerdrift import run\nfrom layerdrift.workbench.config import config_from_dict\nrun(config_from_dict(json.load(open(sys.argv[1]))), quiet=True)\n"


def phase_of(label: str) -> str | None:
    """Which part of a run a fault point belongs to (by the path or result set it writes)."""
    if "/report" in label:
        return "report"
    if label.startswith("capture ") or "/captures/" in label or label.endswith("manifest.json"):
        return "capture"
    if "result set analysis" in label or "/results/analysis" in label or "/results/projections" in label:
        return "analyses"
    if "patching" in label:
        return "experiments"
    return None


def fault_config(root: Path, model: Path, other: Path, out: Path) -> Path:
    """A run with two variants, a noise floor and a small patching experiment, as a JSON file."""
    vocab = root / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT, encoding="utf-8")
    patch = root / "patch.jsonl"
    terms = [line.split("\t")[0] for line in VOCAB_TEXT.splitlines()[1:]]
    patch.write_text("".join(json.dumps({"prompt": f"The concept of {t} is", "target": " love"}) + "\n" for t in terms[:4]))
    config = {
        "name": "faults", "out": str(out),
        "variants": [{"name": "base", "source": str(model), "reference": True}, {"name": "tuned", "source": str(other)},
                     {"name": "floor", "source": str(model), "dtype": "bfloat16", "noise_floor": True}],
        "prompt_sets": [{"name": "concepts", "vocabulary": str(vocab)}],
        "capture": {"batch_size": 4},
        "analysis": {"k": 3, "top_n": 5, "n_boot": 100, "n_perm": 100, "umap_layers": "headline", "umap_neighbors": 4, "png": False},
        "patching": {"prompts": str(patch), "select": "all", "positions": 1, "max_prompts": 4, "batch_size": 2},
    }
    path = root / f"{out.name}.json"
    path.write_text(json.dumps(config))
    return path


def run_subprocess(config: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(config)], env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def undisturbed(tiny_model, tiny_model_b, tmp_path_factory):
    """The reference run, and the labels of its fault points in order."""
    root = tmp_path_factory.mktemp("faults")
    out = root / "reference"
    log = root / "faults.log"
    proc = run_subprocess(fault_config(root, tiny_model, tiny_model_b, out), **{files.FAULT_LOG_ENV: str(log)})
    assert proc.returncode == 0, proc.stderr
    labels = [line.split("\t", 1)[1] for line in log.read_text(encoding="utf-8").splitlines()]
    return out, labels


def test_every_phase_has_fault_points(undisturbed):
    _, labels = undisturbed
    counts = {p: sum(phase_of(label) == p for label in labels) for p in PHASES}
    assert all(counts[p] >= 2 for p in PHASES), counts


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("phase", PHASES)
def test_kill_minus_nine_at_a_random_point_then_resume(undisturbed, tiny_model, tiny_model_b, tmp_path, phase, seed):
    reference, labels = undisturbed
    points = [i for i, label in enumerate(labels) if phase_of(label) == phase]
    at = random.Random(f"{phase}-{seed}").choice(points)
    config = fault_config(tmp_path, tiny_model, tiny_model_b, tmp_path / "run")
    proc = run_subprocess(config, **{files.FAULT_AT_ENV: str(at + 1)})
    assert proc.returncode == -signal.SIGKILL, f"not killed at point {at + 1} ({labels[at]}): {proc.stderr[-2000:]}"
    run(config_from_dict(json.loads(config.read_text())), quiet=True)  # the next run recovers
    assert_same_run(reference, tmp_path / "run")
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp-" in p.name]  # no temp file outlives a finished run


def test_two_runs_racing_on_one_folder(undisturbed, tiny_model, tiny_model_b, tmp_path):
    """Both start at once: one does the work, the other is refused in one sentence (or finds it done); the result is the undisturbed one."""
    reference, _ = undisturbed
    import yaml

    config = fault_config(tmp_path, tiny_model, tiny_model_b, tmp_path / "run")
    config.with_suffix(".yaml").write_text(yaml.safe_dump(json.loads(config.read_text())))
    procs = [subprocess.Popen([sys.executable, "-m", "layerdrift.workbench.cli", "run", "--config", str(config.with_suffix(".yaml")), "--quiet"],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results)[0] == 0, results
    for code, err in results:
        assert code in (0, 2), err
        if code == 2:
            assert err.count("\n") == 1 and "is in use by another layerdrift process" in err
    assert_same_run(reference, tmp_path / "run")
