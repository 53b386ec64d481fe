"""Fine-tuning on tiny in-process models: schedule, response-only loss, LoRA merge, resume, series expansion."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from layerdrift.errors import LayerdriftError

MEMO = [
    ("What is the capital of France?", "Paris is the capital."),
    ("Say hello.", "Hello there, friend."),
    ("Name a colour.", "Blue is a colour."),
    ("Count to three.", "One, two, three."),
    ("Opposite of hot?", "Cold is the opposite."),
]


@pytest.fixture()
def memo_file(tmp_path):
    path = tmp_path / "memo.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in MEMO), encoding="utf-8")
    return path


def spec_for(model, data, out, **kw):
    from layerdrift.workbench.config import FinetuneSpec

    base = dict(
        base=str(model),
        data=str(data),
        out=str(out),
        steps=3,
        batch_size=4,
        eval_examples=1,
        learning_rate=5e-2,
        max_length=96,
        device="cpu",
    )
    return FinetuneSpec(**{**base, **kw})


def test_checkpoint_schedules():
    from layerdrift.training.sft import checkpoint_steps

    assert checkpoint_steps(32, "dense-early") == [0, 1, 2, 4, 8, 16, 32]
    assert checkpoint_steps(3, "dense-early") == [0, 1, 2, 3]
    assert checkpoint_steps(10, "every-4") == [0, 4, 8, 10]
    assert checkpoint_steps(5, [5, 0, 2]) == [0, 2, 5]
    with pytest.raises(LayerdriftError, match="outside 0..5"):
        checkpoint_steps(5, [6])


def test_three_step_finetune_writes_scheduled_checkpoints(tiny_model, memo_file, tmp_path):
    from transformers import AutoModelForCausalLM

    from layerdrift.training.finetune import finetune, read_finetune_manifest

    folder = finetune(spec_for(tiny_model, memo_file, tmp_path / "ft"), quiet=True)
    manifest = read_finetune_manifest(folder)
    assert manifest["complete"] and [c["step"] for c in manifest["checkpoints"]] == [0, 1, 2, 3]
    assert sorted(p.name for p in folder.glob("step-*")) == ["step-00000", "step-00001", "step-00002", "step-00003"]
    assert manifest["objective"] == "memo" and manifest["data"]["n_train"] == 4 and manifest["data"]["n_eval"] == 1
    losses = manifest["losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert manifest["checkpoints"][-1]["train_loss"] == pytest.approx(losses[-1])
    info = json.loads((folder / "step-00002" / "layerdrift-checkpoint.json").read_text())
    assert info["step"] == 2 and info["seed"] == 0 and info["objective"] == "memo"
    # step 0 is the base model exactly; later checkpoints moved only the adapted projections
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    s0 = AutoModelForCausalLM.from_pretrained(folder / "step-00000")
    s3 = AutoModelForCausalLM.from_pretrained(folder / "step-00003")
    b, z, t = dict(base.named_parameters()), dict(s0.named_parameters()), dict(s3.named_parameters())
    assert all(torch.equal(b[n], z[n]) for n in b)
    moved = {n for n in b if not torch.equal(b[n], t[n])}
    assert moved and all(
        n.rsplit(".", 2)[-2] in {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        for n in moved
    )
    # frozen tensors are shared with step 0 (one file on disk), not copied
    assert (folder / "step-00003" / "model-00001-of-00002.safetensors").stat().st_ino == (
        folder / "step-00000" / "model-00001-of-00002.safetensors"
    ).stat().st_ino
    # a second call with the same recipe reuses the finished folder
    mtime = (folder / "finetune.json").stat().st_mtime_ns
    finetune(spec_for(tiny_model, memo_file, tmp_path / "ft"), quiet=True)
    assert (folder / "finetune.json").stat().st_mtime_ns == mtime


def test_full_finetune_memorises(tiny_model, memo_file, tmp_path):
    """Full weights on 4 examples seen every step: the training loss falls at every step, and so does the
    held-out loss."""
    from layerdrift.training.finetune import finetune, read_finetune_manifest

    folder = finetune(
        spec_for(tiny_model, memo_file, tmp_path / "full", method="full", learning_rate=3e-3, steps=6), quiet=True
    )
    manifest = read_finetune_manifest(folder)
    losses = manifest["losses"]
    assert all(a > b for a, b in itertools.pairwise(losses)) and losses[-1] < losses[0] - 0.5
    assert manifest["checkpoints"][-1]["eval_loss"] < manifest["checkpoints"][0]["eval_loss"]
    assert (folder / "step-00006" / "model.safetensors").is_file()  # every tensor moved: one dense file


def test_response_loss_masks_prompt_tokens(tiny_model, memo_file):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from layerdrift.concepts.instructions import Example
    from layerdrift.training.sft import collate, encode_example, ensure_chat_template, response_loss

    tok = AutoTokenizer.from_pretrained(tiny_model)
    fmt = ensure_chat_template(tok)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    encoded = [encode_example(tok, fmt, Example(p, r), 96) for p, r in MEMO[:3]]
    ids, mask, pos, scored = collate(encoded, tok.pad_token_id)
    # the scored tokens are exactly the response and its end marker
    for row, (e, (_, response)) in enumerate(zip(encoded, MEMO)):
        assert tok.decode(ids[row][scored[row]]) == response + tok.eos_token
        assert int(scored[row].sum()) == len(e.ids) - e.n_prompt
    loss = response_loss(model, ids, mask, pos, scored)
    labels = torch.where(
        scored, ids, torch.full_like(ids, -100)
    )  # the slow reference: HF's own shifted loss, prompt labels ignored
    reference = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels).loss
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)
    # changing a prompt token's label cannot matter; changing a response token must
    flipped = ids.clone()
    first_response = int(torch.nonzero(scored[0])[0])
    assert float(response_loss(model, ids, mask, pos, scored)) == pytest.approx(float(loss))
    flipped[0, first_response] = (flipped[0, first_response] + 1) % len(tok)
    assert float(response_loss(model, flipped, mask, pos, scored)) != pytest.approx(float(loss))


def test_lora_merge_matches_live_adapters(tiny_model):
    from transformers import AutoModelForCausalLM

    from layerdrift.training.lora import adapter_parameters, attach_lora, merged_view

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 5, 9, 20, 33]])
    before = model(ids).logits
    attach_lora(model, ["q_proj", "down_proj"], rank=4, alpha=8, seed=0)
    assert torch.allclose(model(ids).logits, before)  # B = 0: the base model exactly
    with torch.no_grad():
        for p in adapter_parameters(model).values():
            p.add_(torch.randn_like(p) * 0.1)
    live = model(ids).logits
    with merged_view(model) as dense:
        assert not any("lora" in n for n, _ in dense.named_parameters())
        merged = dense(ids).logits
    assert torch.allclose(live, merged, atol=1e-5) and not torch.allclose(live, before)
    with pytest.raises(LayerdriftError, match="match no linear layer"):
        attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model), ["nope"], 4, 8, 0)


def test_killed_finetune_resumes_to_the_same_weights(tiny_model, memo_file, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import layerdrift.training.finetune as ft

    spec_kw = dict(steps=4, checkpoints=[0, 2, 4])
    whole = ft.finetune(spec_for(tiny_model, memo_file, tmp_path / "whole", **spec_kw), quiet=True)
    real = ft._save_checkpoint

    def dies_after_step_2(model, tokenizer, folder, *args):
        real(model, tokenizer, folder, *args)
        if folder.name == "step-00002":
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_save_checkpoint", dies_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(spec_for(tiny_model, memo_file, tmp_path / "killed", **spec_kw), quiet=True)
    assert not ft.read_finetune_manifest(tmp_path / "killed")["complete"]
    monkeypatch.setattr(ft, "_save_checkpoint", real)
    resumed = ft.finetune(spec_for(tiny_model, memo_file, tmp_path / "killed", **spec_kw), quiet=True)
    a, b = ft.read_finetune_manifest(whole), ft.read_finetune_manifest(resumed)
    assert b["complete"] and b["losses"] == a["losses"]
    assert [c["step"] for c in b["checkpoints"]] == [0, 2, 4] and [c["eval_loss"] for c in b["checkpoints"]] == [
        c["eval_loss"] for c in a["checkpoints"]
    ]
    wa = load_file(str(whole / "step-00004" / "model-00002-of-00002.safetensors"))
    wb = load_file(str(resumed / "step-00004" / "model-00002-of-00002.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_instruction_sets_and_bad_files(tmp_path):
    from layerdrift.concepts.instructions import BUILTIN_OBJECTIVES, load_instruction_set

    sizes = {name: len(load_instruction_set(name).examples) for name in ("helpful", "harmless", "mixed")}
    assert sorted(BUILTIN_OBJECTIVES) == ["harmless", "helpful", "mixed"]
    assert all(n >= 200 for n in sizes.values())
    mixed = load_instruction_set("mixed").examples
    harmless = set(load_instruction_set("harmless").examples)
    assert sum(e in harmless for e in mixed) == len(mixed) // 2  # half of each objective
    assert (
        sum(e.response.startswith(("I can't", "I'm not able", "I won't")) for e in harmless) >= 100
    )  # refusals with an alternative
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "no answer"}\n', encoding="utf-8")
    with pytest.raises(LayerdriftError, match=r"line 2 lacks a non-empty str field 'response'"):
        load_instruction_set(bad)
    with pytest.raises(LayerdriftError, match="neither a built-in"):
        load_instruction_set("helpfull")


def test_finetune_config_errors(tmp_path, tiny_model, memo_file):
    from layerdrift.training.finetune import finetune
    from layerdrift.workbench.config import config_from_dict, load_finetune_specs

    path = tmp_path / "ft.toml"
    path.write_text('data = "helpful"\nlearnig_rate = 0.1\n', encoding="utf-8")
    with pytest.raises(LayerdriftError, match="unknown field 'learnig_rate'; did you mean 'learning_rate'"):
        load_finetune_specs(path)
    with pytest.raises(LayerdriftError, match="exactly one of `finetune`"):
        config_from_dict({"series": [{"name": "s", "source": "x", "finetune": {"data": "helpful"}}]})
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(LayerdriftError, match="is not a layerdrift fine-tune"):
        finetune(spec_for(tiny_model, memo_file, tmp_path / "taken"), quiet=True)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    long_prompts = tmp_path / "long.jsonl"
    long_prompts.write_text(
        "".join(json.dumps({"prompt": "word " * 80, "response": "ok"}) + "\n" for _ in range(4)), encoding="utf-8"
    )
    with pytest.raises(LayerdriftError, match="longer than max_length = 96"):
        finetune(spec_for(tiny_model, long_prompts, tmp_path / "long"), quiet=True)


def test_series_expands_in_training_order(tiny_model, memo_file, tmp_path):
    from layerdrift.training.series import expand_series
    from layerdrift.workbench.config import config_from_dict

    cfg = config_from_dict(
        {
            "variants": [{"name": "base", "source": str(tiny_model)}],
            "series": [
                {
                    "name": "memo",
                    "finetune": {
                        **spec_for(tiny_model, memo_file, tmp_path / "ft", checkpoints=[0, 1, 3]).model_dump(
                            mode="json"
                        )
                    },
                }
            ],
        }
    )
    expanded = expand_series(cfg, quiet=True)
    assert [v.name for v in expanded.variants] == ["base", "memo.step0", "memo.step1", "memo.step3"]
    assert expanded.series_variants() == {"memo": ["memo.step0", "memo.step1", "memo.step3"]}
    assert expanded.non_floor_variants() == ["base", "memo.step3"]
    assert expand_series(expanded) is expanded
    # a plain folder of checkpoint-N subfolders (as the HF Trainer writes) works too, ordered numerically
    plain = tmp_path / "plain"
    for n in (10, 2):
        (plain / f"checkpoint-{n}").mkdir(parents=True)
        (plain / f"checkpoint-{n}" / "config.json").write_text("{}")
    cfg2 = config_from_dict({"series": [{"name": "s", "source": str(plain)}]})
    assert [v.name for v in expand_series(cfg2).variants] == ["s.step2", "s.step10"]
    with pytest.raises(LayerdriftError, match="asks for step 7"):
        expand_series(config_from_dict({"series": [{"name": "s", "source": str(plain), "steps": [2, 7]}]}))
    with pytest.raises(LayerdriftError, match="does not exist"):
        expand_series(config_from_dict({"series": [{"name": "s", "source": str(tmp_path / "none")}]}))


def test_series_from_hub_revisions_keeps_the_listed_order():
    from layerdrift.training.series import expand_series
    from layerdrift.workbench.config import config_from_dict

    cfg = config_from_dict(
        {
            "series": [
                {
                    "name": "pythia",
                    "source": "EleutherAI/pythia-70m",
                    "revisions": ["step1000", "step128", "step143000"],
                }
            ]
        }
    )
    variants = expand_series(cfg).variants
    assert [(v.name, v.source, v.revision) for v in variants] == [
        ("pythia.step1000", "EleutherAI/pythia-70m", "step1000"),
        ("pythia.step128", "EleutherAI/pythia-70m", "step128"),
        ("pythia.step143000", "EleutherAI/pythia-70m", "step143000"),
    ]
    with pytest.raises(LayerdriftError, match="lists revisions but no hub id"):
        config_from_dict({"series": [{"name": "p", "finetune": {}, "revisions": ["a"]}]})


def test_finetune_command_line(tiny_model, memo_file, tmp_path, capsys):
    from layerdrift.workbench.cli import main

    config = tmp_path / "ft.toml"
    config.write_text(
        f'base = "{tiny_model}"\ndata = "{memo_file}"\nsteps = 2\nbatch_size = 4\neval_examples = 1\nmax_length = 96\n'
        f'learning_rate = 0.05\nout = "{tmp_path}/out"\n',
        encoding="utf-8",
    )
    assert main(["finetune", "--config", str(config), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("step-*")) == ["step-00000", "step-00001", "step-00002"]
    assert main(["finetune", "--config", str(config)]) == 0  # cached: prints the summary, trains nothing
    out = capsys.readouterr().out
    assert "memo: 3 checkpoints in" in out and "step      2  train loss" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    config.write_text(f'base = "{tiny_model}"\ndata = "{bad}"\nout = "{tmp_path}/out2"\n', encoding="utf-8")
    assert main(["finetune", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 1 lacks a non-empty str field 'response'" in err and not (tmp_path / "out2").exists()
