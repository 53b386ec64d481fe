"""The Ray engine against the local one: the same arrays to the byte and the same tables, a killed worker retried
with identical results, and every way a cluster can refuse said in one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import VOCAB_TEXT, assert_same_run, config_dict, floor_of, zarr_arrays

from layerdrift.errors import LayerdriftError
from layerdrift.workbench.config import config_from_dict

KILL_AT = "capture copy/concepts batch 2 last/blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A 2-CPU Ray cluster on this machine; its workers SIGKILL themselves at ``KILL_AT`` while the file ``once``
    exists (deleting it, so the retried task lives)."""
    import ray

    once = tmp_path_factory.mktemp("fault") / "once"
    env = {"LAYERDRIFT_FAULT_AT": KILL_AT, "LAYERDRIFT_FAULT_ONCE": str(once)}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield once
    ray.shutdown()


def on_engine(config_json: dict, out: Path, **execution):
    """The same config, written to ``out``, with the given execution settings."""
    return config_from_dict({**config_json, "out": str(out), "execution": execution})


def test_every_experiment_on_ray_equals_the_local_engine(tiny_run, ray_cluster, tmp_path):
    """Drift, patching, behaviour and manifold on a 2-CPU Ray cluster: the local run's numbers exactly."""
    from layerdrift import run

    config = tiny_run.store.manifest["config"]
    assert {"patching", "behaviour", "manifold"} <= {k for k, v in config.items() if v}
    on_ray = run(on_engine(config, tmp_path / "ray", engine="ray", batches_per_task=2), quiet=True)
    assert on_ray.store.manifest["config"]["execution"]["engine"] == "ray"
    assert_same_run(tiny_run, on_ray)


def capture_config(model: Path, vocab: Path, out: Path, **execution):
    rows = {"ref": model, "copy": floor_of(model)}
    return config_from_dict(config_dict(out, rows, vocab, capture={"batch_size": 2}, execution=execution))


@pytest.fixture()
def ten_terms(tmp_path) -> Path:
    path = tmp_path / "vocab.tsv"
    path.write_text(VOCAB_TEXT, encoding="utf-8")
    return path


def test_a_worker_killed_mid_capture_is_retried_with_identical_arrays(tiny_model, ten_terms, ray_cluster, tmp_path):
    from layerdrift.workbench.store.extract import extract

    local = extract(capture_config(tiny_model, ten_terms, tmp_path / "local"), quiet=True)
    ray_cluster.write_text("kill the worker once")
    on_ray = extract(capture_config(tiny_model, ten_terms, tmp_path / "ray", engine="ray"), quiet=True)
    assert not ray_cluster.exists(), "the worker was never killed"
    za, zb = zarr_arrays(local.root), zarr_arrays(on_ray.root)
    assert za.keys() == zb.keys() and all(za[k] == zb[k] for k in za)
    assert on_ray.manifest["captures"].keys() == local.manifest["captures"].keys()


def test_a_worker_that_keeps_dying_is_one_sentence_and_the_next_run_finishes(
    tiny_model, ten_terms, ray_cluster, tmp_path
):
    from layerdrift.workbench.store.extract import extract

    ray_cluster.write_text("kill the worker once")
    with pytest.raises(LayerdriftError, match=r"capture of variant 'copy' .* worker died 1 time"):
        extract(capture_config(tiny_model, ten_terms, tmp_path / "run", engine="ray", max_retries=0), quiet=True)
    store = extract(capture_config(tiny_model, ten_terms, tmp_path / "run", engine="ray"), quiet=True)
    local = extract(capture_config(tiny_model, ten_terms, tmp_path / "local"), quiet=True)
    za, zb = zarr_arrays(local.root), zarr_arrays(store.root)
    assert za.keys() == zb.keys() and all(za[k] == zb[k] for k in za)


def test_a_cluster_without_the_gpus_asked_for_is_refused(tiny_model, ten_terms, ray_cluster, tmp_path):
    from layerdrift.workbench.store.extract import extract

    config = capture_config(tiny_model, ten_terms, tmp_path / "run", engine="ray", gpus_per_variant=1)
    with pytest.raises(LayerdriftError, match=r"capture asks for 1 GPU\(s\), but no node .* has that many"):
        extract(config, quiet=True)
    captures = tmp_path / "run" / "captures"
    assert not any(captures.rglob("batches/*.json")) if captures.exists() else True


@pytest.mark.parametrize(
    ("address", "said"),
    [("127.0.0.1:{port}", "nothing answers at the Ray address"), ("not an address", "is not 'auto', 'host:port'")],
)
def test_a_bad_ray_address_is_one_sentence(tiny_model, ten_terms, tmp_path, address, said):
    """From the command line, in a fresh process (no cluster): a clear error at once, no traceback."""
    import yaml
    from conftest import free_port

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "out", {"ref": tiny_model}, ten_terms)), encoding="utf-8")
    cmd = [sys.executable, "-m", "layerdrift.workbench.cli", "extract", "--config", str(path), "--engine", "ray"]
    done = subprocess.run(
        [*cmd, "--address", address.format(port=free_port())], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_fine_tuning_and_trajectories_on_ray_equal_the_local_engine(series_run, ray_cluster, tmp_path):
    """The series' fine-tune is a Ray task (into a fresh checkpoint folder), the persistent homology runs one task
    per (variant, point): the checkpoints' trajectories and topology equal the local run's."""
    from layerdrift import run

    config = dict(series_run.store.manifest["config"])
    series = [dict(s, finetune=dict(s["finetune"], out=str(tmp_path / "ft"))) for s in config["series"]]
    variants = [v for v in config["variants"] if not v["name"].startswith("memo.step")]
    on_ray = run(
        on_engine({**config, "series": series, "variants": variants}, tmp_path / "ray", engine="ray"), quiet=True
    )
    assert (tmp_path / "ft").is_dir()
    assert on_ray.store.variants == series_run.store.variants
    for name in ("trajectory", "topology", "topology_distances", "concentration", "velocity_band", "pairs"):
        pd.testing.assert_frame_equal(series_run.tables[name], on_ray.tables[name], check_exact=True, obj=name)


def fail_or_write_later(item: tuple[str, str]) -> None:
    """A task body: ``fail`` raises at once, ``write`` writes its file after a pause."""
    import time

    kind, path = item
    if kind == "fail":
        raise LayerdriftError("this task fails on purpose.")
    time.sleep(4)
    Path(path).write_text("written after the driver gave up", encoding="utf-8")


def test_when_one_task_fails_the_others_are_cancelled(ray_cluster, tmp_path):
    """Nothing of a failed map goes on writing after the driver has given up (a later run would race with it)."""
    import time

    import ray

    from layerdrift.core.engine import RayEngine, Resources

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task body lives in this test module
    late = tmp_path / "late.txt"
    engine = RayEngine(Resources(), Resources(), max_retries=0, address=None)
    with pytest.raises(LayerdriftError, match="fails on purpose"):
        engine.map(fail_or_write_later, [("fail", ""), ("write", str(late))])
    time.sleep(6)
    assert not late.exists()
