"""Fault injection: kill -9 at random points of capture, analyses, experiments and report, and two
runs racing on one folder; after recovery every array and table equals an undisturbed run.

Every write of a run passes fault points (``layerdrift.core.files.fault_point``): each array of
each batch, each finished-batch record, each table of a result set, each rename. A run with
``LAYERDRIFT_FAULT_LOG`` lists them; one with ``LAYERDRIFT_FAULT_AT=LABEL`` SIGKILLs itself there.
Each seed draws one point per phase and kills a chain of runs there in turn: the first run in
capture, the run that resumes it in the analyses, the next in the experiments, the next in the
report; one more run then finishes, and must end exactly where an undisturbed run ends.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import VOCAB_TEXT, config_dict
from test_hardening import assert_same_run

from layerdrift.core import files

PHASES = ("capture", "analyses", "experiments", "report")
SEEDS = (0, 1)
# A zygote imports layerdrift once and forks children on request, so a killed run costs its own
# work only, not 10 s of imports. It runs no tensor code itself before forking. A child runs the
# CLI (`layerdrift run`), so its exit code and stderr are the user's.
ZYGOTE = """
import json, os, sys
import layerdrift.workbench.api
from layerdrift.workbench.cli import main
for line in sys.stdin:
    request = json.loads(line)
    pids = []
    for i in range(request["copies"]):
        pid = os.fork()
        if pid == 0:
            os.environ.update(request["env"])
            err = os.open(f"{request['stderr']}.{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(err, 2)
            os._exit(main(["run", "--config", request["config"], "--quiet"]))
        pids.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    print(json.dumps([-os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s) for s in statuses]), flush=True)
"""


class Zygote:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.requests = 0

    def run(self, config: Path, copies: int = 1, **env: str) -> list[tuple[int, str]]:
        """`layerdrift run --config CONFIG` in ``copies`` forked children at once; (exit code or -signal, stderr) of
        each."""
        self.requests += 1
        stderr = self.folder / f"stderr-{self.requests}"
        self.proc.stdin.write(
            json.dumps({"config": str(config), "env": env, "copies": copies, "stderr": str(stderr)}) + "\n"
        )
        self.proc.stdin.flush()
        codes = json.loads(self.proc.stdout.readline())
        return [(code, Path(f"{stderr}.{i}").read_text(encoding="utf-8")) for i, code in enumerate(codes)]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def phase_of(label: str) -> str | None:
    """Which part of a run a fault point belongs to (by the path or result set it writes)."""
    if "/report" in label:
        return "report"
    if "patch" in label:  # the experiment's own captures (captures/VARIANT/patch-A--B), caches and result set
        return "experiments"
    if label.startswith("capture ") or "/captures/" in label or label.endswith("manifest.json"):
        return "capture"
    if "result set analysis" in label or "/results/analysis" in label:
        return "analyses"
    return None


def fault_config(root: Path, model: Path, other: Path, out: Path) -> Path:
    """A run with two variants and a small patching experiment, as a YAML file."""
    vocab = root / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT, encoding="utf-8")
    patch = root / "patch.jsonl"
    terms = [line.split("\t")[0] for line in VOCAB_TEXT.splitlines()[1:]]
    patch.write_text(
        "".join(json.dumps({"prompt": f"The concept of {t} is", "target": " love"}) + "\n" for t in terms[:2])
    )
    config = config_dict(
        out,
        {"base": model, "tuned": other},
        vocab,
        name="faults",
        analysis={"top_n": 5, "umap_layers": []},
        patching={"prompts": str(patch), "select": "all", "positions": 1, "max_prompts": 2, "batch_size": 2},
    )
    path = root / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def undisturbed(zygote, tiny_model, tiny_model_b, tmp_path_factory):
    """The reference run, and the labels of its fault points in order."""
    root = tmp_path_factory.mktemp("faults")
    out = root / "reference"
    log = root / "faults.log"
    [(code, err)] = zygote.run(fault_config(root, tiny_model, tiny_model_b, out), **{files.FAULT_LOG_ENV: str(log)})
    assert code == 0, err
    labels = [line.split("\t", 1)[1] for line in log.read_text(encoding="utf-8").splitlines()]
    return out, labels


def test_every_phase_has_fault_points(undisturbed):
    _, labels = undisturbed
    counts = {p: sum(phase_of(label) == p for label in labels) for p in PHASES}
    assert all(counts[p] >= 2 for p in PHASES), counts


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_minus_nine_in_every_phase_then_resume(zygote, undisturbed, tiny_model, tiny_model_b, tmp_path, seed):
    reference, labels = undisturbed
    once = {label for label in labels if labels.count(label) == 1}  # a label the resuming run is sure to pass
    config = fault_config(tmp_path, tiny_model, tiny_model_b, tmp_path / "run")
    rng = random.Random(seed)
    for phase in PHASES:
        label = rng.choice([label for label in labels if phase_of(label) == phase and label in once])
        [(code, err)] = zygote.run(config, **{files.FAULT_AT_ENV: label.replace(str(reference), str(tmp_path / "run"))})
        assert code == -signal.SIGKILL, f"not killed at {label!r}: {err[-2000:]}"
    [(code, err)] = zygote.run(config)  # the next run recovers
    assert code == 0, err
    assert_same_run(reference, tmp_path / "run")
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp-" in p.name]  # no temp file outlives a finished run


def test_two_runs_racing_on_one_folder(zygote, undisturbed, tiny_model, tiny_model_b, tmp_path):
    """Both start at once: one does the work, the other is refused in one sentence (or finds it done); the result is the
    undisturbed one."""
    reference, _ = undisturbed
    results = zygote.run(fault_config(tmp_path, tiny_model, tiny_model_b, tmp_path / "run"), copies=2)
    assert 0 in [code for code, _ in results], results
    for code, err in results:
        assert code in (0, 2), err
        if code == 2:
            assert err.count("\n") == 1 and "is in use by another layerdrift process" in err, err
    assert_same_run(reference, tmp_path / "run")
