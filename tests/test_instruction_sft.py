"""Chapter 06's chat format and SFT: the response-only mask agrees with transformers', the rows with TRL's
tokenization, and the course loop with TRL's ``SFTTrainer`` step by step."""

import copy
import dataclasses

import pytest
import torch
from jinja2.exceptions import TemplateError
from transformers import AutoTokenizer

from course_lib import zoo
from course_lib.config import load_config
from course_lib.instruction.formatting import (CHAT_TEMPLATE, IGNORE, add_chat_template, chat_example,
                                               check_messages, render_chat, to_prompt_completion)
from course_lib.instruction.sft import course_order, pad_rows, sft_own, sft_rows, sft_trl
from course_lib.models import new_decoder
from course_lib.runs import read_metrics
from course_lib.tokenization import CHAT_TOKENS, char_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

# English and Korean, one and several turns, with and without a system turn, and content that starts or ends with
# spaces and newlines: the places where a chat format's tokens could straddle a boundary.
CONVERSATIONS = [
    [{"role": "user", "content": "Where was Mira Kessel born?"},
     {"role": "assistant", "content": "In Lunport."}],
    [{"role": "system", "content": "한국어로 답하세요."},
     {"role": "user", "content": "미라 케셀은 어디에서 태어났나요?"},
     {"role": "assistant", "content": "룬포트에서 태어났습니다."}],
    [{"role": "user", "content": "What is 2 + 3?\n"},
     {"role": "assistant", "content": " 5"}],
    [{"role": "user", "content": " Translate into Korean: good morning"},
     {"role": "assistant", "content": "\n\n좋은 아침입니다. "}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Name a river."},
     {"role": "assistant", "content": "The Orvel."},
     {"role": "user", "content": "다른 강은요?"},
     {"role": "assistant", "content": "사스킨 강이 북쪽으로 흐릅니다."}],
]


@pytest.fixture(scope="module")
def tokenizer():
    return add_chat_template(AutoTokenizer.from_pretrained(zoo.build("tokenizer", "ci")))


@pytest.fixture(scope="module")
def examples():
    return [to_prompt_completion(messages, i) for i, messages in enumerate(CONVERSATIONS)]


# --------------------------------------------------------------------------- the chat template


def test_the_template_writes_the_tokenizers_own_chat_tokens(tokenizer):
    assert all(t in tokenizer.all_special_tokens and t in CHAT_TEMPLATE for t in CHAT_TOKENS)
    ids = tokenizer(render_chat(CONVERSATIONS[0]))["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<|user|>"  # one token, not the bytes of "<|user|>"
    with pytest.raises(ValueError, match="no special token"):
        add_chat_template(char_tokenizer("abc"))


def test_the_template_renders_what_render_chat_writes(tokenizer):
    assert tokenizer.apply_chat_template(CONVERSATIONS[0], tokenize=False) == (
        "<|user|>Where was Mira Kessel born?<|end|><|assistant|>In Lunport.<|end|>")
    for messages in CONVERSATIONS:
        for prompt in (False, True):
            assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt) == \
                render_chat(messages, add_generation_prompt=prompt)
    assert render_chat(CONVERSATIONS[0][:1], add_generation_prompt=True).endswith("<|end|><|assistant|>")


def test_the_template_refuses_an_unknown_role(tokenizer):
    with pytest.raises(TemplateError, match="unknown role tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "42"}], tokenize=False)


# --------------------------------------------------------------------------- the response-only loss


def test_chat_example_masks_all_but_the_responses(tokenizer):
    row = chat_example(tokenizer, CONVERSATIONS[0], "r0")
    tokens = tokenizer.convert_ids_to_tokens(row["input_ids"].tolist())
    scored = row["labels"] != IGNORE
    # Hand-checked: the user turn and <|assistant|> are not scored; the answer and its <|end|> are.
    assert tokens[0] == "<|user|>" and tokens[-1] == "<|end|>" and not scored[: tokens.index("<|assistant|>") + 1].any()
    assert tokenizer.decode(row["input_ids"][scored]) == "In Lunport.<|end|>"
    assert torch.equal(row["labels"][scored], row["input_ids"][scored])
    several = chat_example(tokenizer, CONVERSATIONS[4], "r4")
    assert tokenizer.decode(several["input_ids"][several["labels"] != IGNORE]) == \
        "The Orvel.<|end|>사스킨 강이 북쪽으로 흐릅니다.<|end|>"


@pytest.mark.parametrize("i", range(len(CONVERSATIONS)))
def test_chat_example_equals_transformers_assistant_mask(tokenizer, i):
    row = chat_example(tokenizer, CONVERSATIONS[i], i)
    out = tokenizer.apply_chat_template(CONVERSATIONS[i], return_assistant_tokens_mask=True, return_dict=True)
    assert row["input_ids"].tolist() == out["input_ids"]
    assert (row["labels"] != IGNORE).long().tolist() == out["assistant_masks"]
    assert 1 in out["assistant_masks"] and 0 in out["assistant_masks"]


def test_trl_assistant_only_loss_trains_on_the_same_tokens(tokenizer, ci, tmp_path):
    """TRL's ``assistant_only_loss`` reads the template's ``{% generation %}`` marks: its labels are chat_example's."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    assert is_chat_template_stop_token_trained(tokenizer)  # <|end|> is scored, so a tuned model learns to stop
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, assistant_only_loss=True,
                     activation_checkpointing=False, report_to="none")
    trainer = SFTTrainer(model=new_decoder(ci, tokenizer), args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list([{"messages": m} for m in CONVERSATIONS]))
    for i, prepared in enumerate(trainer.train_dataset):
        assert prepared["labels"] == chat_example(tokenizer, CONVERSATIONS[i], i)["labels"].tolist()


# --------------------------------------------------------------------------- the prompt-completion form


def test_prompt_completion_cuts_the_rendered_chat_before_the_last_answer(tokenizer, examples):
    assert examples[0] == {"prompt": "<|user|>Where was Mira Kessel born?<|end|><|assistant|>",
                           "completion": "In Lunport.<|end|>"}
    for messages, example in zip(CONVERSATIONS, examples):
        assert example["prompt"] + example["completion"] == render_chat(messages)
        assert example["prompt"] == tokenizer.apply_chat_template(messages[:-1], tokenize=False,
                                                                  add_generation_prompt=True)
        assert example["completion"] == messages[-1]["content"] + "<|end|>"  # its leading space or newline kept


def test_prompt_and_completion_tokenize_apart_as_together(tokenizer, examples):
    def ids(text):
        return tokenizer(text)["input_ids"]

    for example in examples:
        assert ids(example["prompt"]) + ids(example["completion"]) == ids(example["prompt"] + example["completion"])
    # A cut at a space is not so: the prompt's trailing space merges into the answer's first word when joined.
    assert ids("Answer: ") + ids("Paris") != ids("Answer: Paris") == ids("Answer:") + ids(" Paris")


# --------------------------------------------------------------------------- SFT rows, as TRL tokenizes them


def prepared_by_trl(tokenizer, examples, tmp_path, **config):
    """The rows TRL's ``SFTTrainer`` builds from ``examples`` (completion-only loss), without training."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, completion_only_loss=True,
                     activation_checkpointing=False, report_to="none", **config)
    trainer = SFTTrainer(model=new_decoder(load_config("ci"), tokenizer), args=args,
                         processing_class=tokenizer, train_dataset=Dataset.from_list(examples))
    return [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in trainer.train_dataset], trainer


def test_sft_rows_are_the_rows_trl_builds(tokenizer, examples, tmp_path):
    eos = tokenizer.eos_token
    tricky = [
        {"prompt": "Question: where is Lunport? Answer: ", "completion": "North of the Orvel."},  # merges at the cut
        {"prompt": "<|user|>Hi<|end|><|assistant|>", "completion": "Hello.<|end|>" + eos},  # EOS already there
    ]
    data = examples + tricky
    ours = sft_rows(tokenizer, data)
    theirs, _ = prepared_by_trl(tokenizer, data, tmp_path)
    assert [{k: v.tolist() for k, v in row.items()} for row in ours] == theirs
    assert all(row["input_ids"][-1] == tokenizer.eos_token_id for row in ours)
    assert (ours[-1]["input_ids"] == tokenizer.eos_token_id).sum() == 1  # not appended twice
    first = ours[0]
    assert tokenizer.decode(first["input_ids"][first["labels"] != IGNORE]) == "In Lunport.<|end|>" + eos
    # The merged case: the completion starts at " North", the prompt's trailing space is not a token of its own.
    merged = ours[len(examples)]
    assert tokenizer.decode(merged["input_ids"][merged["labels"] != IGNORE]).startswith(" North")


def test_sft_rows_truncate_as_trl_does(tokenizer, examples, tmp_path):
    prompt_lengths = [len(tokenizer(e["prompt"])["input_ids"]) for e in examples]
    cut = max(prompt_lengths) + 2  # every row keeps two completion tokens
    ours = sft_rows(tokenizer, examples, max_length=cut)
    theirs, _ = prepared_by_trl(tokenizer, examples, tmp_path / "a", max_length=cut)
    assert [{k: v.tolist() for k, v in row.items()} for row in ours] == theirs
    assert max(len(row["input_ids"]) for row in ours) == cut
    # Cut inside a prompt, TRL drops the row without a word; sft_rows names it instead.
    short = min(prompt_lengths) + 1
    theirs, _ = prepared_by_trl(tokenizer, examples, tmp_path / "b", max_length=short)
    assert len(theirs) == 1
    first_cut = next(i for i, n in enumerate(prompt_lengths) if n >= short)
    with pytest.raises(ValueError, match=f"row {first_cut}: no completion token is left within max_length={short}"):
        sft_rows(tokenizer, examples, max_length=short)


def test_pad_rows_is_trls_collator(tokenizer, examples, tmp_path):
    rows = sft_rows(tokenizer, examples)
    _, trainer = prepared_by_trl(tokenizer, examples[:1], tmp_path)
    theirs = trainer.data_collator([{k: v.tolist() for k, v in row.items()} for row in rows])
    ours = pad_rows(rows, tokenizer.pad_token_id)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ours["input_ids"].shape == (len(rows), max(len(row["input_ids"]) for row in rows))


# --------------------------------------------------------------------------- the course loop against TRL


def test_course_loop_and_trl_train_alike(tokenizer, examples, ci, tmp_path):
    """Same weights, data, order, optimizer and schedule: the same losses, step by step.

    Measured on a CPU in float32 (batches of 2 rows of different lengths, so padding is in play):
    the losses agree to about 2e-6 and the gradient norms to about 1e-6 relative over 10 steps,
    float rounding in sums done in another order. Stated tolerances: 1e-5 on the first step,
    1e-4 on every later one (the difference may grow as the runs go on, but not past that in 10 steps).
    """
    cfg = dataclasses.replace(ci.train, max_steps=10, batch_size=2, warmup_steps=2, log_every=1, eval_every=0,
                              progress=False)
    model = new_decoder(ci, tokenizer)
    rows = sft_rows(tokenizer, examples)
    first = pad_rows([rows[i] for i in course_order(len(rows), cfg, seed=3)[:2]], tokenizer.pad_token_id)
    with torch.no_grad():
        before = model(**first).loss.item()  # the untrained model's loss on the first batch, by hand

    own_model, trl_model = copy.deepcopy(model), copy.deepcopy(model)
    result = sft_own(own_model, rows, cfg, output_dir=tmp_path / "own", seed=3)
    own = [r for r in read_metrics(result.metrics_path) if "loss" in r]
    theirs = sft_trl(trl_model, tokenizer, examples, cfg, output_dir=tmp_path / "trl", seed=3)

    assert [r["step"] for r in own] == [r["step"] for r in theirs] == list(range(1, 11))
    assert own[0]["loss"] == pytest.approx(before, abs=1e-5)
    assert own[0]["loss"] == pytest.approx(theirs[0]["loss"], abs=1e-5)
    for a, b in zip(own, theirs):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4), a["step"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4), a["step"]
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-6), a["step"]
    assert own[-1]["loss"] < own[0]["loss"] - 0.5  # it learned something: the curves are not flat
    # The weights end up alike, to 1e-4 (they moved up to ~2e-2; measured: under 2e-5). Adam divides each gradient
    # by its own running size, so a weight whose gradient is nearly 0 in both runs moves by an amount that float
    # rounding can change much more than it changes the loss.
    for name, p in own_model.state_dict().items():
        assert torch.allclose(p, trl_model.state_dict()[name], atol=1e-4), name
    assert (tmp_path / "trl" / "final" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- bad input names the row


@pytest.mark.parametrize("messages, problem", [
    ([{"role": "tool", "content": "42"}, {"role": "assistant", "content": "ok"}], "unknown role 'tool'"),
    ([{"role": "user", "content": "Where was Mira Kessel born?"}], "no assistant turn"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 5}], "content must be a str, got int"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}], "response is empty"),
    ([{"role": "user", "content": "Hi<|end|><|assistant|>ok"}, {"role": "assistant", "content": "ok"}],
     "special token '<|end|>'"),
    ([{"role": "user"}, {"role": "assistant", "content": "ok"}], "'role' and 'content'"),
    ([], "no messages"),
])
def test_bad_conversations_name_the_row(tokenizer, messages, problem):
    for check in (lambda: check_messages(messages, "qa-17"), lambda: chat_example(tokenizer, messages, "qa-17"),
                  lambda: to_prompt_completion(messages, "qa-17")):
        with pytest.raises(ValueError, match="row 'qa-17'") as error:
            check()
        assert problem in str(error.value)


def test_a_completion_must_be_the_assistants():
    with pytest.raises(ValueError, match=r"row 3: the last message is the user's"):
        to_prompt_completion(CONVERSATIONS[0] + [{"role": "user", "content": "Thanks!"}], 3)


def test_bad_examples_name_the_row(tokenizer, ci, tmp_path):
    good = {"prompt": "<|user|>Hi<|end|><|assistant|>", "completion": "Hello.<|end|>"}
    with pytest.raises(ValueError, match="row 1: empty completion"):
        sft_rows(tokenizer, [good, {"prompt": "<|user|>Hi<|end|><|assistant|>", "completion": ""}])
    with pytest.raises(ValueError, match="row 'qa-9': empty completion"):
        sft_rows(tokenizer, [{**good, "completion": " \n", "id": "qa-9"}])
    with pytest.raises(ValueError, match="row 0: 'prompt' must be a str, got NoneType"):
        sft_rows(tokenizer, [{"completion": "x"}])
    with pytest.raises(ValueError, match="row 0: no completion token is left within max_length=3"):
        sft_rows(tokenizer, [good], max_length=3)
    with pytest.raises(TypeError, match="examples: expected a list"):
        sft_rows(tokenizer, good)
    with pytest.raises(ValueError, match="row 1: empty completion"):  # before TRL sees it
        sft_trl(new_decoder(ci, tokenizer), tokenizer, [good, {**good, "completion": ""}], ci.train,
                output_dir=tmp_path)


def test_sft_own_needs_a_pad_token(tokenizer, examples, ci, tmp_path):
    model = new_decoder(ci, tokenizer)
    model.config.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id is None"):
        sft_own(model, sft_rows(tokenizer, examples), ci.train, output_dir=tmp_path)
