"""Bad input: one clear sentence naming what and where, exit code 2, and nothing written."""

from __future__ import annotations

import pytest

from layerdrift.concepts.vocabulary import load_vocabulary
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.cli import main


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("term\tcategory\nlove\tabstract\nlove\tabstract\n", r"vocab.tsv:3: term 'love' is a duplicate of line 2"),
        ("term\tcategory\nlove\tabstract\n\tfactual\n", r"vocab.tsv:3: the term is empty"),
        ("term\tcategory\tcolour\nlove\tabstract\tred\n", r"vocab.tsv:1: unknown column 'colour'"),
        ("term\nlove\n", r"vocab.tsv:1: the header has no 'category' column"),
        ("term\tcategory\nlove\n", r"vocab.tsv:2: the row has 1 fields"),
        ("term\tcategory\nlove\t\n", r"vocab.tsv:2: term 'love' has no category"),
    ],
)
def test_bad_vocabulary_rows_name_the_line(tmp_path, content, pattern):
    path = tmp_path / "vocab.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LayerdriftError, match=pattern):
        load_vocabulary(path)


def test_bad_encoding_names_the_line(tmp_path):
    path = tmp_path / "vocab.tsv"
    path.write_bytes("term\tcategory\nlove\tabstract\ncaf\xe9\tabstract\n".encode("latin-1"))
    with pytest.raises(LayerdriftError, match=r"vocab.tsv:3: the file is not UTF-8"):
        load_vocabulary(path)


def test_builtin_vocabulary_keeps_study_order():
    vocab = load_vocabulary("embeddingdrift-235")
    assert len(vocab) == 235
    assert vocab.terms[:3] == ("France", "Germany", "Japan")
    counts = {c: vocab.categories.count(c) for c in vocab.category_names}
    assert counts == {"factual": 60, "abstract": 65, "demographic": 60, "scientific": 50}


def write_config(tmp_path, variants: str, extra: str = "", vocab: str = "embeddingdrift-235") -> str:
    path = tmp_path / "exp.toml"
    path.write_text(
        f'name = "t"\nout = "{tmp_path / "out"}"\n{extra}\n{variants}\n'
        f'[[prompt_sets]]\nname = "c"\nvocabulary = "{vocab}"\n',
        encoding="utf-8",
    )
    return str(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


CASES = {
    "unknown alias": (
        '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruc"\n',
        "",
        r"unknown model 'smollm2-135m-instruc' for variant 'a'.*did you mean 'smollm2-135m-instruct'",
    ),
    "unknown hub id": (
        '[[variants]]\nname = "a"\nsource = "nobody-here/no-such-model"\n',
        "",
        r"model 'nobody-here/no-such-model' of variant 'a' could not be found",
    ),
    "missing gguf": (
        '[[variants]]\nname = "a"\nsource = "/nowhere/model.gguf"\n',
        "",
        r"GGUF file '/nowhere/model.gguf' of variant 'a' does not exist",
    ),
    "config typo": (
        '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruct"\nquantisation = "nf4"\n',
        "",
        r"unknown field 'variants\[0\].quantisation'; did you mean 'quantization'",
    ),
    "bad enum": (
        '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruct"\nquantization = "nf3"\n',
        "",
        r"field 'variants\[0\].quantization'",
    ),
    "bad position": (
        '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruct"\n',
        '[capture]\npositions = ["middle"]',
        r"unknown position 'middle'",
    ),
    "two references": (
        '[[variants]]\nname = "a"\nsource = "x/y"\nreference = true\n[[variants]]\nname '
        '= "b"\nsource = "x/y"\nreference = true\n',
        "",
        r"only one variant can be the reference",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_errors_are_one_sentence_and_write_nothing(tmp_path, capsys, case):
    variants, extra, pattern = CASES[case]
    code, err = run_cli(capsys, "extract", "--config", write_config(tmp_path, variants, extra), "--quiet")
    assert code == 2
    assert err.startswith("layerdrift: error: ") and "\n" not in err and "Traceback" not in err
    import re

    assert re.search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_bad_vocabulary_in_config_writes_nothing(tmp_path, capsys):
    vocab = tmp_path / "v.tsv"
    vocab.write_text("term\tcategory\nlove\tabstract\nlove\tabstract\n")
    cfg = write_config(tmp_path, '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruct"\n', vocab=str(vocab))
    code, err = run_cli(capsys, "extract", "--config", cfg)
    assert code == 2 and "v.tsv:3" in err and not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path, capsys):
    code, err = run_cli(capsys, "extract", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "does not exist" in err


def test_unknown_hook_point(tiny_model, vocab_file, tmp_path):
    from conftest import tiny_config

    from layerdrift.workbench.store.extract import extract

    with pytest.raises(
        LayerdriftError,
        match=r"hook point 'blocks.0.hook_resid_pots' \(closest: 'blocks.0.hook_resid_post'\) "
        r"does not exist in variant 'ref'",
    ):
        extract(tiny_config(tiny_model, vocab_file, tmp_path / "run", hooks=["blocks.0.hook_resid_pots"]), quiet=True)


def test_term_missing_from_match_position(tiny_model, vocab_file, tmp_path):
    from conftest import tiny_config

    from layerdrift.workbench.store.extract import extract

    with pytest.raises(
        LayerdriftError, match=r"looks for 'banana', which does not occur in prompt 0 \('The concept of love is'\)"
    ):
        extract(tiny_config(tiny_model, vocab_file, tmp_path / "run", positions=["match:banana"]), quiet=True)


EXPERIMENT_CASES = {
    "unknown behaviour set": (
        '[behaviour]\nsets = ["sycophancy", "nope"]',
        r"behaviour set 'nope' is neither a built-in \(corrigibility, .*\) nor an existing file",
    ),
    "too many held out": (
        '[behaviour]\nsets = ["sycophancy"]\nsteering_items = 45',
        r"behaviour set 'sycophancy' has 40 items, too few to hold out 45",
    ),
    "unknown patch set": (
        '[patching]\nprompts = "no-such-set"',
        r"patching prompt set 'no-such-set' is neither a built-in \(flip-probes\)",
    ),
    "nothing to patch": ('[patching]\ncompare = ["a"]', r"patching has no variant to compare with 'a'"),
    "patching variant typo": (
        '[patching]\ncompare = ["nf5"]',
        r"patching.compare names variant 'nf5', which is not one of \['a'\]",
    ),
}


@pytest.mark.parametrize("case", list(EXPERIMENT_CASES))
def test_experiment_errors_come_before_any_capture(tmp_path, capsys, case):
    extra, pattern = EXPERIMENT_CASES[case]
    code, err = run_cli(
        capsys,
        "run",
        "--config",
        write_config(tmp_path, '[[variants]]\nname = "a"\nsource = "smollm2-135m-instruct"\n', extra),
        "--quiet",
    )
    import re

    assert code == 2 and re.search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_the_command_ends_with_its_code_its_output_and_atexit_handlers(tmp_path):
    """``layerdrift`` ends the process without the interpreter's teardown: output flushed, exit code kept,
    ``atexit`` handlers run."""
    import subprocess
    import sys

    script = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran', flush=True)); "
        "sys.argv = ['layerdrift', *sys.argv[1:]]; from layerdrift.workbench.cli import entry; entry()"
    )
    missing = subprocess.run(
        [sys.executable, "-c", script, "run", "--config", str(tmp_path / "none.toml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "atexit ran" in missing.stdout
    listed = subprocess.run([sys.executable, "-c", script, "models"], capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.startswith("embedded models") and "atexit ran" in listed.stdout
