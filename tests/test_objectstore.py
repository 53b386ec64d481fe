"""Run folders on object storage: a run written to ``s3://`` on a local S3 server (moto's server mode, reached by
the real s3fs client) holds the same arrays and tables as a local run, opens with ``open_run``, renders its report
and serves its dashboard; a missing bucket, denied access and a busy run folder are each one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import CHROMIUM, free_port, launch_chromium, served_dashboard

from layerdrift.core.objectstore import LEASE_ENV
from layerdrift.errors import LayerdriftError

BUCKET = "layerdrift-test"
KILL_AT = "capture tuned/concepts batch 1 last/blocks.1.hook_resid_post"


def start_s3_server(**env: str) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1 and a free port; returns the process and its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            import urllib.request

            urllib.request.urlopen(url, timeout=1)
            return proc, url
        except OSError as err:
            if getattr(err, "code", None):  # an HTTP answer of any kind: the server is up
                return proc, url
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto's S3 server did not start")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server with one bucket; this process and its children reach it through the AWS_* variables."""
    proc, url = start_s3_server()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    yield fs
    proc.kill()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    fsspec.filesystem("s3").clear_instance_cache()


def s3_config(root_url: str, models: dict, vocab, **sections):
    from conftest import make_config

    return make_config(root_url, models, vocab, name="remote", **sections)


@pytest.fixture(scope="module")
def runs(s3, tiny_model, tiny_model_b, tmp_path_factory):
    """The same config run into a local folder and into ``s3://BUCKET/runs/a``: (local run, remote run, config)."""
    from conftest import VOCAB_TEXT, floor_of

    from layerdrift import run

    folder = tmp_path_factory.mktemp("remote")
    vocab = folder / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT, encoding="utf-8")
    models = {"base": tiny_model, "tuned": tiny_model_b, "floor": floor_of(tiny_model)}
    manifold = {"sets": ["birthday"], "n_prompts": 20, "folds": 4}
    local = run(s3_config(str(folder / "local"), models, vocab, manifold=manifold), quiet=True)
    remote = run(s3_config(f"s3://{BUCKET}/runs/a", models, vocab, manifold=manifold), quiet=True)
    return local, remote, (models, vocab, manifold)


def test_a_run_on_s3_equals_the_same_run_on_disk(runs, s3):
    """Every array byte-identical and every table equal; the report is published beside it and no lock is left."""
    from conftest import assert_same_run

    from layerdrift import open_run

    local, remote, _ = runs
    assert str(remote.store.root) == f"s3://{BUCKET}/runs/a"
    assert_same_run(local, remote)
    assert_same_run(local, open_run(f"s3://{BUCKET}/runs/a"))
    assert "manifold_scores" in remote.tables and len(remote.tables["drift"]) > 0
    keys = set(s3.ls(f"{BUCKET}/runs/a"))
    assert {f"{BUCKET}/runs/a/{k}" for k in ("manifest.json", "captures", "results", "manifold", "report")} == keys
    index = s3.cat_file(f"{BUCKET}/runs/a/report/index.html").decode()
    assert "Findings" in index or "findings" in index
    assert s3.exists(f"{BUCKET}/runs/a/report/tables/drift.parquet")


def test_a_second_run_on_s3_reuses_every_result(runs, s3):
    from layerdrift import run

    _, remote, (models, vocab, manifold) = runs
    pointers = {p: s3.cat_file(p) for p in s3.glob(f"{BUCKET}/runs/a/results/*.json")}
    batches = s3.glob(f"{BUCKET}/runs/a/captures/*/*/batches/*.json")
    again = run(s3_config(f"s3://{BUCKET}/runs/a", models, vocab, manifold=manifold), quiet=True)
    assert {p: s3.cat_file(p) for p in s3.glob(f"{BUCKET}/runs/a/results/*.json")} == pointers  # same generations
    assert s3.glob(f"{BUCKET}/runs/a/captures/*/*/batches/*.json") == batches and len(batches) >= 9
    pd.testing.assert_frame_equal(again.tables["drift"], remote.tables["drift"])


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "layerdrift.workbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_the_report_of_an_s3_run_is_written_to_a_local_folder(runs, tmp_path):
    _, remote, _ = runs
    done = cli("report", f"s3://{BUCKET}/runs/a", "--out", str(tmp_path / "report"), "--no-png")
    assert done.returncode == 0, done.stderr
    assert f"report: {tmp_path / 'report' / 'index.html'}" in done.stdout
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "manifold" in page.lower() and (tmp_path / "report" / "figures").is_dir()
    local_table = pd.read_parquet(tmp_path / "report" / "tables" / "drift.parquet")
    pd.testing.assert_frame_equal(local_table, remote.tables["drift"])


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs Debian's chromium)")
def test_the_dashboard_serves_an_s3_run(runs):
    from playwright.sync_api import sync_playwright

    _, remote, _ = runs
    last = len(remote.store.residual_points("base", "concepts")) - 1
    with served_dashboard(f"s3://{BUCKET}/runs/a") as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{url}/?layer=2")
        page.get_by_text(f"residual point 2 of {last}").wait_for(timeout=60000)
        page.locator("button.previous").click()
        page.get_by_text(f"residual point 1 of {last}").wait_for(timeout=20000)
        assert "Traceback" not in page.inner_text("body")
        browser.close()


def test_a_capture_killed_on_s3_is_refused_while_its_lease_lasts_then_resumes_to_the_same_arrays(runs, tmp_path, s3):
    """kill -9 mid-capture: the dead writer's lease turns a second run away in one sentence until it lapses; the
    capture after that ends with arrays byte-identical to the undisturbed run's."""
    from conftest import config_dict, zarr_arrays

    from layerdrift.workbench.store.extract import extract

    local, _, (models, vocab, manifold) = runs
    url = f"s3://{BUCKET}/runs/killed"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(config_dict(url, models, vocab, name="remote", manifold=manifold)))
    killed = cli("extract", "--config", str(config), "--quiet", LAYERDRIFT_FAULT_AT=KILL_AT)
    assert killed.returncode == -9, killed.stderr
    assert s3.exists(f"{BUCKET}/runs/killed/.lock")
    busy = cli("extract", "--config", str(config), "--quiet")
    assert busy.returncode == 2
    assert busy.stderr.count("\n") == 1 and "is in use by another layerdrift process" in busy.stderr
    assert "lease lapses 60 s after its last renewal" in busy.stderr
    os.environ[LEASE_ENV] = "1"
    try:
        time.sleep(1.5)
        store = extract(s3_config(url, models, vocab, manifold=manifold), quiet=True)
    finally:
        del os.environ[LEASE_ENV]
    want = {k: v for k, v in zarr_arrays(local.store.root).items() if "/concepts/" in k}
    assert zarr_arrays(store.root) == want and len(want) >= 15
    assert not s3.exists(f"{BUCKET}/runs/killed/.lock")


def test_a_missing_bucket_and_denied_access_are_one_sentence_each(s3):
    missing = cli("run", "--out", "s3://no-such-bucket/runs/x", "--quiet")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "the bucket 's3://no-such-bucket' does not exist; create it or choose another --out" in missing.stderr
    absent = cli("report", f"s3://{BUCKET}/runs/never")
    assert absent.returncode == 2 and f"run folder 's3://{BUCKET}/runs/never' does not exist" in absent.stderr
    proc, url = start_s3_server(INITIAL_NO_AUTH_ACTION_COUNT="0")  # a server that checks credentials: ours are unknown
    try:
        attempts = [(("run", "--out", f"s3://{BUCKET}/x"), "write"), (("report", f"s3://{BUCKET}/a"), "read")]
        for args, doing in attempts:
            denied = cli(*args, AWS_ENDPOINT_URL=url)
            assert denied.returncode == 2 and denied.stderr.count("\n") == 1, denied.stderr
            assert f"could not {doing} 's3://{BUCKET}/" in denied.stderr and "access is denied" in denied.stderr
    finally:
        proc.kill()


def test_locations_are_local_paths_or_remote_upaths(tmp_path):
    from pathlib import Path

    from upath import UPath

    from layerdrift.core.objectstore import is_remote, run_location

    assert run_location(f"file://{tmp_path}") == tmp_path and type(run_location(f"file://{tmp_path}")) is type(tmp_path)
    assert run_location("runs/x") == Path("runs/x") and not is_remote(run_location(UPath(tmp_path)))
    remote = run_location("s3://bucket/runs/x")
    assert is_remote(remote) and str(remote / "manifest.json") == "s3://bucket/runs/x/manifest.json"


def test_an_unknown_storage_protocol_is_one_sentence():
    from layerdrift import open_run

    with pytest.raises(LayerdriftError, match="uses storage protocol 'nosuch', which fsspec does not know"):
        open_run("nosuch://bucket/run")


def test_capture_tasks_on_ray_write_their_chunks_straight_into_the_bucket(runs, s3):
    """A local 2-CPU Ray cluster, one task per batch: the workers write into s3:// themselves, the driver alone
    writes the manifest, and the arrays equal the local run's byte for byte."""
    from conftest import zarr_arrays

    from layerdrift.workbench.config import config_from_dict
    from layerdrift.workbench.store.extract import extract

    local, _, (models, vocab, manifold) = runs
    data = s3_config(f"s3://{BUCKET}/runs/ray", models, vocab, manifold=manifold).model_dump(mode="json")
    ray_config = config_from_dict({**data, "execution": {"engine": "ray", "num_cpus": 2, "batches_per_task": 1}})
    store = extract(ray_config, quiet=True)
    assert store.manifest["config"]["execution"]["engine"] == "ray"
    want = {k: v for k, v in zarr_arrays(local.store.root).items() if "/concepts/" in k}
    assert zarr_arrays(store.root) == want and len(want) >= 15
