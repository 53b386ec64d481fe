"""Run store: round trip, reuse of finished captures, kill -9 and resume, corrupt caches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config

from layerdrift.core import files
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.store import extract as extraction
from layerdrift.workbench.store.extract import extract
from layerdrift.workbench.store.runstore import RunStore


def test_round_trip_and_manifest(tiny_model, vocab_file, tmp_path):
    store = extract(tiny_config(tiny_model, vocab_file, tmp_path / "run"), quiet=True)
    again = RunStore.open(tmp_path / "run")
    assert again.variants == ["ref", "copy"] and again.reference == "ref" and again.prompt_sets == ["concepts"]
    m = again.manifest
    assert m["config_hash"] == store.manifest["config_hash"] and len(m["config_hash"]) == 64
    for key in ("torch", "transformers", "transformer-lens", "zarr", "python"):
        assert m["packages"][key]
    info = m["variants"]["ref"]
    assert (
        info["n_layers"] == 3
        and info["d_model"] == 32
        and info["dtype"] == "float32"
        and info["quantization"] == "none"
    )
    assert set(info["weight_sha256"]) == {"model.safetensors"}
    assert m["prompt_sets"]["concepts"]["template"] == "The concept of {term} is"
    assert m["prompt_sets"]["concepts"]["terms"][8] == "South Korea"
    toks = again.tokenization("ref", "concepts")
    assert toks["texts"][0] == "The concept of love is" and len(toks["ids"]) == 10
    # identical weights -> identical arrays; layer() indexes the residual points
    for layer in range(5):
        np.testing.assert_array_equal(again.layer("ref", "concepts", layer), again.layer("copy", "concepts", layer))
    np.testing.assert_array_equal(
        again.layer("ref", "concepts", -1), again.activations("ref", "concepts", "ln_final.hook_out")
    )
    with pytest.raises(LayerdriftError, match="out of range"):
        again.layer("ref", "concepts", 9)
    with pytest.raises(LayerdriftError, match="no finished capture"):
        again.layer("nope", "concepts", 0)


def test_second_run_reuses_finished_captures(tiny_model, vocab_file, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_model, vocab_file, tmp_path / "run")
    extract(cfg, quiet=True)
    before = (tmp_path / "run/captures/ref/concepts/last/hook_embed/c/0/0").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("a finished capture must not load its model again")

    monkeypatch.setattr(extraction, "load_variant", boom)
    extract(cfg, quiet=True)
    assert (tmp_path / "run/captures/ref/concepts/last/hook_embed/c/0/0").stat().st_mtime_ns == before


def test_changed_capture_settings_recapture(tiny_model, vocab_file, tmp_path):
    extract(tiny_config(tiny_model, vocab_file, tmp_path / "run"), quiet=True)
    store = extract(tiny_config(tiny_model, vocab_file, tmp_path / "run", positions=["last", "index:1"]), quiet=True)
    assert store.positions("ref", "concepts") == ["last", "index:1"]
    assert store.activations("ref", "concepts", "hook_embed", "index:1").shape == (10, 32)


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import tiny_config
from pathlib import Path
from layerdrift.workbench.store.extract import extract
extract(tiny_config(Path({model!r}), Path({vocab!r}), Path({out!r}), batch_size=1), quiet=True)
"""


def run_extract_subprocess(tiny_model, vocab_file, out, kill_at=None):
    env = {**os.environ, files.FAULT_AT_ENV: kill_at} if kill_at else dict(os.environ)
    code = SCRIPT.format(
        tests=os.path.dirname(os.path.dirname(__file__)), model=str(tiny_model), vocab=str(vocab_file), out=str(out)
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_kill_minus_nine_then_resume_gives_identical_arrays(tiny_model, vocab_file, tmp_path):
    full, broken = tmp_path / "full", tmp_path / "broken"
    extract(tiny_config(tiny_model, vocab_file, full, batch_size=1), quiet=True)
    proc = run_extract_subprocess(
        tiny_model, vocab_file, broken, kill_at=f"after rename {broken}/captures/ref/concepts/batches/000003.json"
    )
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (broken / "captures/ref/concepts/batches").iterdir()) == [
        f"{b:06d}.json" for b in range(4)
    ]
    with pytest.raises(LayerdriftError):
        RunStore.open(broken).layer("ref", "concepts", 0)  # not finished: refused, not half-read
    extract(tiny_config(tiny_model, vocab_file, broken, batch_size=1), quiet=True)
    a, b = RunStore.open(full), RunStore.open(broken)
    for variant in ("ref", "copy"):
        for hook in a.hook_points(variant, "concepts"):
            np.testing.assert_array_equal(
                a.activations(variant, "concepts", hook), b.activations(variant, "concepts", hook)
            )


def test_corrupt_chunk_gives_clear_error(tiny_model, vocab_file, tmp_path):
    store = extract(tiny_config(tiny_model, vocab_file, tmp_path / "run"), quiet=True)
    chunk = tmp_path / "run/captures/ref/concepts/last/hook_embed/c/0/0"
    chunk.write_bytes(b"garbage")
    with pytest.raises(LayerdriftError, match="capture 'ref/concepts'.* batch 0 of 'last/hook_embed'.*layerdrift run"):
        store.activations("ref", "concepts", "hook_embed")


def test_corrupt_manifest_and_missing_run(tmp_path):
    with pytest.raises(LayerdriftError, match="does not exist"):
        RunStore.open(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/manifest.json").write_text("{not json")
    with pytest.raises(LayerdriftError, match="corrupt"):
        RunStore.open(tmp_path / "bad")
    (tmp_path / "old").mkdir()
    (tmp_path / "old/manifest.json").write_text('{"format": "layerdrift-run/0"}')
    with pytest.raises(LayerdriftError, match="format"):
        RunStore.open(tmp_path / "old")
