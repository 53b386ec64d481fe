"""Regression tests of the hardening issue: each fails on the code before its fix.

Damaged captures, manifests and result sets; a second process on one run folder; neighbourhood
size against the vocabulary; CSV formulas; a full or read-only disk; checks made before work.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import VOCAB_TEXT, make_config, tiny_config

from layerdrift import open_run, run
from layerdrift.core.files import RunLock
from layerdrift.core.spreadsheet import spreadsheet_safe, to_csv
from layerdrift.errors import LayerdriftError, LayerdriftWarning
from layerdrift.workbench.cli import COMMANDS, main
from layerdrift.workbench.store.extract import extract
from layerdrift.workbench.store.results import ResultSet, cached_result_set, read_result_set, save_result_set
from layerdrift.workbench.store.runstore import CaptureJob, RunStore


def run_config(model, other, vocab, out, capture=None, **analysis):
    """Base and tuned, top 5 neighbours listed."""
    return make_config(
        out,
        {"base": model, "tuned": other},
        vocab,
        name="hard",
        capture={"batch_size": 4, **(capture or {})},
        analysis={"top_n": 5, **analysis},
    )


def all_arrays(root: Path) -> dict[str, np.ndarray]:
    store = RunStore.open(root)
    return {
        f"{key}/{hook}": store.activations(*key.split("/"), hook, pos)
        for key, entry in store.manifest["captures"].items()
        for pos in entry["positions"]
        for hook in entry["hooks"]
    }


def assert_same_run(a: Path, b: Path) -> None:
    """Every captured array and every result table of two run folders are equal."""
    arrays_a, arrays_b = all_arrays(a), all_arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    tables_a, tables_b = open_run(a).tables, open_run(b).tables
    assert tables_a.keys() == tables_b.keys()
    for name in tables_a:
        pd.testing.assert_frame_equal(tables_a[name], tables_b[name], obj=name)


@pytest.fixture(scope="module")
def reference_run(tiny_model, tiny_model_b, tmp_path_factory):
    """An undisturbed run that the recovered ones are compared with."""
    folder = tmp_path_factory.mktemp("hard")
    vocab = folder / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT, encoding="utf-8")
    out = folder / "reference"
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)
    return out, vocab


# ---- 3. missing data is never read as zeros ---------------------------------------------------
def test_deleted_chunk_is_named_then_recaptured(tiny_model, tiny_model_b, reference_run, tmp_path):
    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "captures/tuned/concepts/last/blocks.1.hook_resid_post/c/1/0").unlink()  # batch 1 of one array
    with pytest.raises(
        LayerdriftError,
        match=r"capture 'tuned/concepts'.*missing batch 1 of 'last/blocks.1.hook_resid_post'.*checksum.*layerdrift run",
    ):
        RunStore.open(out).activations("tuned", "concepts", "blocks.1.hook_resid_post")
    untouched = (out / "captures/tuned/concepts/last/hook_embed/c/0/0").stat().st_mtime_ns
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)  # recaptures the missing batch by itself
    assert (
        out / "captures/tuned/concepts/last/hook_embed/c/0/0"
    ).stat().st_mtime_ns == untouched  # only the damaged batch was redone
    assert_same_run(ref, out)


def test_record_claiming_an_unwritten_batch_is_caught(tiny_model, tiny_model_b, reference_run, tmp_path):
    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    for chunk in (out / "captures/base/concepts/last").glob("*/c/2/0"):  # every array's batch 2 gone, its record kept
        chunk.unlink()
    with pytest.raises(LayerdriftError, match="missing batch 2"):
        open_run(out).store.layer("base", "concepts", 0)
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)
    assert_same_run(ref, out)


def test_batch_equal_to_the_fill_value_reads_back(tmp_path):
    """zarr does not store a chunk equal to the fill value; its record still proves the batch was written."""
    job = CaptureJob(tmp_path / "captures/v/ps", "fp", n_prompts=5, batch_size=2)
    job.prepare()
    values = [np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32), np.full((1, 3), 2.0, np.float32)]
    for b, v in enumerate(values):
        job.write_batch(b, {("last", "h"): v})
    assert not (tmp_path / "captures/v/ps/last/h/c/0/0").exists()
    np.testing.assert_array_equal(job.read("last/h"), np.concatenate(values))
    assert job.damaged_batches() == {}


# ---- 2. a results set becomes visible all at once ---------------------------------------------
def test_result_set_is_switched_whole(tmp_path):
    old = ResultSet("analysis", "fp-old", {"t": pd.DataFrame({"k": [5]}), "u": pd.DataFrame({"x": [1.0]})}, {"k": 5})
    save_result_set(tmp_path, old)
    # a writer killed after the first table of a new set: its generation folder is never pointed to
    partial = tmp_path / "results/analysis/partial-generation"
    partial.mkdir()
    pd.DataFrame({"k": [10]}).to_parquet(partial / "t.parquet")
    read = read_result_set(tmp_path, "analysis")
    assert read.meta == {"k": 5} and read.tables["t"]["k"].tolist() == [5] and read.tables["u"]["x"].tolist() == [1.0]
    assert cached_result_set(tmp_path, "analysis", "fp-new") is None  # another config: recompute
    save_result_set(tmp_path, ResultSet("analysis", "fp-new", {"t": pd.DataFrame({"k": [10]})}, {"k": 10}))
    assert [p.name for p in (tmp_path / "results/analysis").iterdir()] == [
        json.loads((tmp_path / "results/analysis.json").read_text())["generation"]
    ]
    # a damaged table is named, and a cache lookup recomputes instead of reading it
    generation = json.loads((tmp_path / "results/analysis.json").read_text())["generation"]
    (tmp_path / f"results/analysis/{generation}/t.parquet").write_bytes(b"PAR1 damaged")
    with pytest.raises(LayerdriftError, match="t.parquet.*damaged.*layerdrift run"):
        read_result_set(tmp_path, "analysis")
    assert cached_result_set(tmp_path, "analysis", "fp-new") is None


def test_kill_while_saving_another_config_never_mixes_tables(tiny_model, tiny_model_b, reference_run, tmp_path):
    """The reported failure: a run with k = 2 killed mid-save left its first tables beside the k = 3 record,
    and the next k = 3 run reused the mix. Now the k = 3 set stays whole until the k = 2 set replaces it all."""
    import yaml

    from layerdrift.core.files import FAULT_AT_ENV

    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    cfg = tmp_path / "k2.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_model, tiny_model_b, vocab, out, k=2).model_dump(mode="json")))
    proc = subprocess.run(
        [sys.executable, "-m", "layerdrift.workbench.cli", "run", "--config", str(cfg), "--quiet"],
        env={**os.environ, FAULT_AT_ENV: "result set analysis table layers"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[
        -1000:
    ]  # killed after pairs, categories, top drifters and drift were written
    again = run(
        run_config(tiny_model, tiny_model_b, vocab, out), quiet=True
    )  # k = 3 again: the cached set is reused whole
    assert again.meta["spec"]["k"] == 3
    assert_same_run(ref, out)


# ---- 4. a damaged or deleted manifest is rebuilt ---------------------------------------------
@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_damaged_manifest_is_rebuilt_from_capture_records(
    tiny_model, tiny_model_b, reference_run, tmp_path, monkeypatch, damage
):
    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    if damage == "corrupt":
        (out / "manifest.json").write_text('{"format": "layerdrift-run/2", "captures": {')
        with pytest.raises(LayerdriftError, match="corrupt.*`layerdrift run`.*rebuild"):
            RunStore.open(out)
    else:
        (out / "manifest.json").unlink()
    from layerdrift.workbench.store import extract as extraction

    monkeypatch.setattr(
        extraction, "load_variant", lambda *a, **k: pytest.fail("finished captures must be reused, not recaptured")
    )
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)
    rebuilt = RunStore.open(out).manifest
    assert rebuilt["variants"]["tuned"]["n_layers"] == 3 and set(rebuilt["captures"]) == {
        "base/concepts",
        "tuned/concepts",
    }
    assert_same_run(ref, out)


# ---- 5. one process at a time on a run folder ------------------------------------------------
HOLD = """
import sys, time
from layerdrift.core.files import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_process_on_a_run_folder_is_refused(tiny_model, tiny_model_b, reference_run, tmp_path, capsys):
    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        config = run_config(tiny_model, tiny_model_b, vocab, out).model_dump(mode="json")
        cfg = tmp_path / "cfg.yaml"
        import yaml

        cfg.write_text(yaml.safe_dump(config))
        assert main(["run", "--config", str(cfg), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.fullmatch(
            rf"layerdrift: error: run folder '{re.escape(str(out))}' is in use by another "
            rf"layerdrift process \(pid {holder.pid} on host .+, since .+\); wait for it to "
            r"finish, or choose another --out folder\.",
            err,
        )
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing touched
    finally:
        holder.kill()
        holder.wait()
    # the holder died by kill -9: its lock went with it, and the next run goes ahead
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)
    assert_same_run(ref, out)


def test_lock_is_reentrant_and_leaves_no_empty_folder(tmp_path):
    with RunLock(tmp_path / "new"), RunLock(tmp_path / "new"):
        assert (tmp_path / "new/.lock").is_file()
    assert not (tmp_path / "new").exists()  # nothing was written: nothing is left


# ---- 6. neighbourhood size and vocabulary size, before capture ----------------------------
@pytest.mark.parametrize(
    "k, rows, pattern",
    [
        (
            10,
            10,
            r"analysis.k = 10 neighbours needs more than 10 concepts, but prompt set "
            r"'concepts' has 10 \(set k to at most 9\)",
        ),
        (12, 10, r"analysis.k = 12 neighbours needs more than 12 concepts"),
        (1, 3, r"prompt set 'concepts' has 3 concepts, but the analyses need at least 4"),
    ],
)
def test_k_and_vocabulary_size_are_checked_before_capture(tiny_model, tmp_path, capsys, k, rows, pattern):
    vocab = tmp_path / "vocab.tsv"
    vocab.write_text("\n".join(VOCAB_TEXT.splitlines()[: rows + 1]) + "\n", encoding="utf-8")
    with pytest.raises(LayerdriftError, match=pattern + ".*nothing was written"):
        run(run_config(tiny_model, tiny_model, vocab, tmp_path / "run", k=k), quiet=True)
    assert not (tmp_path / "run").exists()


# ---- 7. CSV formula injection ---------------------------------------------------------------
def test_csv_cells_that_look_like_formulas_are_neutralised(tmp_path):
    df = pd.DataFrame(
        {
            "term": ["=1+2", "+A1", "-cmd", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"],
            "drift": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        }
    )
    safe = spreadsheet_safe(df)
    assert safe["term"].tolist() == ["'=1+2", "'+A1", "'-cmd", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b"]
    assert safe["drift"].tolist() == df["drift"].tolist()  # numbers stay numbers, negative ones too
    to_csv(df, tmp_path / "t.csv")
    assert pd.read_csv(tmp_path / "t.csv", keep_default_na=False)["term"].iloc[0] == "'=1+2"


def test_report_csv_is_inert_and_parquet_exact(tiny_run):
    from conftest import HOSTILE_ROWS

    formula = HOSTILE_ROWS[2][0]
    tables = tiny_run.store.root / "report/tables"
    text = (tables / "drift.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK(" in text and re.search(r'(^|,)"?=HYPERLINK\(', text, re.M) is None
    assert formula in set(pd.read_parquet(tables / "drift.parquet")["term"])


def test_terminal_summary_prints_markup_in_user_data_literally(capsys):
    from types import SimpleNamespace

    from conftest import HOSTILE_ROWS

    from layerdrift.workbench.api import print_headline

    bold = HOSTILE_ROWS[3][0]  # "**bold** [link](javascript:alert(4))": rich would take [link] for a style tag
    result = SimpleNamespace(
        findings=lambda: [f"[red]{bold}[/red] drifts most"],
        summaries=lambda top_n: {"[b]title[/b]": pd.DataFrame({"term": [bold], "[x]": [0.5]})},
        notes=[f"variant [bold]v[/bold]: {bold}"],
        report="report/index.html",
    )
    print_headline(result)
    out = capsys.readouterr().out
    assert f"[red]{bold}[/red] drifts most" in out and f"variant [bold]v[/bold]: {bold}" in out
    assert "[link](javascript:alert(4))" in out and "[x]" in out


# ---- 8. a full or read-only disk ------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path):
    """A real 3 MB file system (tmpfs), so writes fail with the operating system's own ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_one_sentence_and_a_rerun_on_more_space_matches(
    tiny_model, tiny_model_b, reference_run, small_disk, capsys
):
    ref, vocab = reference_run
    out = small_disk / "run"
    config = run_config(tiny_model, tiny_model_b, vocab, out).model_dump(mode="json")
    cfg = small_disk.parent / "cfg.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(cfg), "--quiet"]) == 2
    err = (
        capsys.readouterr().err.strip().splitlines()[-1]
    )  # (earlier lines: weight-loading bars of libraries imported before the CLI quieted them)
    assert re.fullmatch(
        rf"layerdrift: error: could not write '{re.escape(str(out))}/.+': the disk is full "
        r"\([\d.]+ (B|KB|MB) free there\); free some space or choose another --out "
        r"folder, then run again \(finished work is kept and reused\)\.",
        err,
    ), err
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # no temp file left behind
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert main(["run", "--config", str(cfg), "--quiet"]) == 0
    assert_same_run(ref, out)


def test_read_only_folder_is_one_sentence(tiny_model, tiny_model_b, reference_run, small_disk, capsys):
    _, vocab = reference_run
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    config = run_config(tiny_model, tiny_model_b, vocab, small_disk / "run").model_dump(mode="json")
    cfg = small_disk.parent / "cfg.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(cfg), "--quiet"]) == 2
    assert "the file system is read-only" in capsys.readouterr().err


# ---- 9 and 10. checked before work, errors that can be followed ------------------------------
def test_capture_without_what_the_analyses_read_is_refused_at_once(tiny_model, vocab_file, tmp_path):
    with pytest.raises(LayerdriftError) as err:
        run(
            run_config(
                tiny_model,
                tiny_model,
                vocab_file,
                tmp_path / "run",
                capture={"hooks": ["ln_final.hook_out"], "positions": ["index:0"]},
            ),
            quiet=True,
        )
    message = str(err.value)
    for missing in ("'hook_embed'", "'blocks.{layer}.hook_resid_post'", "capture.positions lacks 'last'"):
        assert missing in message
    assert "'ln_final.hook_out'" not in message and not (tmp_path / "run").exists()


def test_unknown_hooks_write_nothing_and_are_named_together(tiny_model, vocab_file, tmp_path):
    cfg = tiny_config(
        tiny_model, vocab_file, tmp_path / "run", hooks=["residual", "blocks.0.hook_resid_pots", "hook_nope"]
    )
    with pytest.raises(
        LayerdriftError,
        match=r"hook points 'blocks.0.hook_resid_pots' \(closest: 'blocks.0.hook_resid_post'\), "
        r"'hook_nope'.* do not exist",
    ):
        extract(cfg, quiet=True)
    assert not (tmp_path / "run").exists()


def test_error_messages_only_name_commands_that_exist():
    """Every `layerdrift X` a message or docstring suggests is a real subcommand (one once suggested `layerdrift
    analyze`)."""
    package = Path(__file__).parent.parent / "layerdrift"
    suggested = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                suggested |= {(m, path.name) for m in re.findall(r"`layerdrift ([\w-]+)", node.value)}
    assert suggested and {m for m, _ in suggested} <= set(COMMANDS), sorted(
        s for s in suggested if s[0] not in COMMANDS
    )


def test_probe_capture_tokenization_says_what_is_stored(tiny_run):
    key = next(k for k, e in tiny_run.store.manifest["captures"].items() if e.get("kind") == "manifold")
    with pytest.raises(LayerdriftError, match="is a manifold capture of token sequences, which stores no tokenization"):
        tiny_run.store.tokenization(*key.split("/"))


def test_unreachable_hub_fails_fast_and_says_so(monkeypatch):
    import huggingface_hub.constants as hf

    from layerdrift.workbench.config import VariantSpec
    from layerdrift.workbench.models import loading as variants

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(variants, "_hub_state", {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    start = time.perf_counter()
    with (
        warnings.catch_warnings(record=True) as caught,
        pytest.raises(
            LayerdriftError, match="not-a-real/model.*local Hugging Face cache, and the hub is offline or unreachable"
        ),
    ):
        warnings.simplefilter("always")
        variants.resolve_source(VariantSpec(name="x", source="not-a-real/model"))
    assert time.perf_counter() - start < 10
    assert any(issubclass(w.category, LayerdriftWarning) and "cannot be reached" in str(w.message) for w in caught)


def test_absurdly_long_terms_are_refused_and_long_ones_warned(tmp_path):
    from layerdrift.concepts.vocabulary import load_vocabulary

    path = tmp_path / "v.tsv"
    path.write_text("term\tcategory\nlove\ta\n" + "x" * 5000 + "\tb\n", encoding="utf-8")
    with pytest.raises(LayerdriftError, match=r"v.tsv:3: the term is 5000 characters long \(at most 1000\)"):
        load_vocabulary(path)
    path.write_text("term\tcategory\nlove\ta\n" + "word " * 30 + "\tb\n", encoding="utf-8")
    with pytest.warns(LayerdriftWarning, match=r"1 term\(s\) are over 100 characters \(line 3\)"):
        assert len(load_vocabulary(path)) == 2


def test_cli_prints_layerdrift_warnings_as_one_line(tmp_path, capsys):
    long = tmp_path / "v.tsv"
    long.write_text("term\tcategory\n" + "word " * 30 + "\tb\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'name = "w"\nout = "{tmp_path / "run"}"\n[[variants]]\nname = "a"\nsource = '
        f'"{tmp_path / "missing"}"\n[[prompt_sets]]\nname = "p"\nvocabulary = "{long}"\n'
    )
    assert main(["extract", "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("layerdrift: warning: ") and "over 100 characters" in err[0]
    assert os.path.exists(tmp_path / "run") is False


def test_a_format_1_run_is_upgraded_in_place(tiny_model, tiny_model_b, reference_run, tmp_path):
    """Format 1 had no batch records (a progress.json instead) and flat result files: its captures cannot be
    verified, so they are recaptured; its leftovers are removed; the numbers end as a fresh run's."""
    ref, vocab = reference_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format": "layerdrift-run/1"}))
    for batches in out.glob("captures/*/*/batches"):
        shutil.rmtree(batches)
        (batches.parent / "progress.json").write_text('{"done": [0, 1, 2]}')
    (out / "results/meta.json").write_text("{}")
    with pytest.raises(LayerdriftError, match="format 'layerdrift-run/1'.*`layerdrift run`.*to upgrade it"):
        RunStore.open(out)
    run(run_config(tiny_model, tiny_model_b, vocab, out), quiet=True)
    assert not list(out.glob("captures/*/*/progress.json")) and not (out / "results/meta.json").exists()
    assert_same_run(ref, out)
