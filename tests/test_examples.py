"""The shipped examples stay valid: every example config validates, the KubeRay RayJob's manifests parse and its
embedded config validates with the Ray engine, and the SLURM script is valid bash that starts Ray and runs it."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from layerdrift.workbench.config import config_from_dict, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_validates(path):
    assert load_config(path).variants


def test_the_rayjob_runs_its_configmap_config_on_ray():
    docs = {d["kind"]: d for d in yaml.safe_load_all((EXAMPLES / "cluster" / "rayjob.yaml").read_text())}
    assert {"RayJob", "ConfigMap"} <= docs.keys()
    job = docs["RayJob"]
    assert job["apiVersion"].startswith("ray.io/") and "layerdrift run --config /configs/" in job["spec"]["entrypoint"]
    name = job["spec"]["entrypoint"].split("--config /configs/")[1].split()[0]
    config = config_from_dict(tomllib.loads(docs["ConfigMap"]["data"][name]), where=f"rayjob.yaml {name}")
    assert config.execution.engine == "ray" and config.execution.gpus_per_variant == 1
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    gpus = workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert int(gpus) >= config.execution.gpus_per_variant


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_slurm_script_is_valid_bash_that_starts_ray_and_runs_the_config():
    script = EXAMPLES / "cluster" / "slurm.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "ray start --head" in text and "ray start --address" in text
    assert 'layerdrift run --config "$config" --out "$out" --engine ray' in text
