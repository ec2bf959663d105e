"""Preference pairs from outside the world, and the reward model and DPO through TRL's trainers: the scaled path.

The ``gpu`` profile aligns the 110M model on a real preference dataset
(``alignment.preference_source``) with TRL's ``RewardTrainer`` and ``DPOTrainer``
(``alignment.trainer: trl``); the course world and the course loop stay the default. A
source is a local ``.jsonl`` file or ``hf:<name>[:<config>]`` (the ``train`` split,
streamed with ``datasets``: nothing is downloaded whole; a Hub name is refused while the
course is offline, a local dataset folder is read). Its rows are in TRL's preference
format, standard or conversational:

- standard: ``{"prompt": "...", "chosen": "...", "rejected": "..."}``; the prompt becomes one user turn;
- conversational: ``"prompt"`` a list of ``{"role", "content"}`` messages, ``"chosen"`` and
  ``"rejected"`` each one assistant message ``[{"role": "assistant", "content": "..."}]``;
- conversational with an implicit prompt (no ``"prompt"`` column, as in
  ``trl-lib/ultrafeedback_binarized``): ``"chosen"`` and ``"rejected"`` are whole
  conversations that share every message but the last, the assistant's.

:func:`load_preference_pairs` turns each row into a pair exactly like
``preferences.comparisons``'s, so the course's own code (``reward_model.pair_rows``,
``dpo.dpo_rows``) reads them too. A row that cannot be a pair is a
:class:`PreferenceDataError` that names the file and line (or the row): nothing is skipped.

:func:`train_reward_model_trl` and :func:`train_dpo_trl` take the same arguments and
return the same things as ``reward_model.train_reward_model`` and ``dpo.train_dpo``, so a
recipe switches between them on ``alignment.trainer``. The pairs reach TRL in its
conversational form and TRL renders them with the course's chat template
(``add_chat_template``): the token ids are the course's own (a test checks it).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import torch
from transformers import PreTrainedModel

from ..runs import FINAL_DIR, METRICS_FILE
from ..world.entities import stable_fraction
from ..world.hangul import detect_lang
from .losses import _positive
from .reward_model import reward_model_from

# TRL's log keys -> the course's (``dpo.train_dpo``'s log rows; the reward log keeps TRL's own names)
DPO_LOG = {"rewards/chosen": "chosen_reward", "rewards/rejected": "rejected_reward", "rewards/margins": "margin",
           "rewards/accuracies": "reward_accuracy", "learning_rate": "lr", "grad_norm": "grad_norm"}
REWARD_LOG = {"accuracy": "accuracy", "margin": "margin", "learning_rate": "lr", "grad_norm": "grad_norm"}


class PreferenceDataError(ValueError):
    """A preference source or row that cannot be read; the message names the source and the line or row."""


# --------------------------------------------------------------------------- reading rows


def _jsonl_rows(path: Path):
    """``(where, row)`` for each line of ``path``, ``where`` being ``"<path>:<line>"``."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if not line.strip():
                raise PreferenceDataError(f"{where}: an empty line (one preference pair per line)")
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise PreferenceDataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None


def _source_rows(source: str, offline: bool):
    """The source's short name (for pair ids) and its ``(where, row)`` stream."""
    if not isinstance(source, str) or not source:
        raise PreferenceDataError(f"alignment.preference_source must be a .jsonl path or hf:<name>, got {source!r}")
    if source.startswith("hf:"):
        name, _, subset = source[3:].partition(":")
        if offline and not Path(name).expanduser().is_dir():
            raise PreferenceDataError(
                f"alignment.preference_source={source!r} is a Hugging Face Hub dataset, but the course is offline "
                "(zoo.offline=true or HF_HUB_OFFLINE=1): set zoo.offline=false (--set zoo.offline=false), or point "
                "alignment.preference_source at a local .jsonl file or dataset folder")
        import datasets

        rows = datasets.load_dataset(name, subset or None, split="train", streaming=True)
        return Path(name).name, ((f"{source} row {i}", row) for i, row in enumerate(rows, 1))
    path = Path(source).expanduser()
    if path.suffix != ".jsonl" or not path.is_file():
        raise PreferenceDataError(f"alignment.preference_source={source!r}: no such .jsonl file (use '' for the "
                                  "world's preference data, a .jsonl file or hf:<name>[:<config>])")
    return path.stem, _jsonl_rows(path)


def _prompt_messages(prompt, where: str) -> list[dict]:
    """A row's prompt as chat messages: a string is one user turn, a list is the conversation so far."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PreferenceDataError(f"{where}: the prompt is empty")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt:
        if not all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
            raise PreferenceDataError(f"{where}: a conversational prompt must be a list of {{'role', 'content'}} "
                                      f"messages, got {prompt!r:.80}")
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise PreferenceDataError(f"{where}: 'prompt' must be a string or a non-empty list of messages, got {prompt!r:.80}")


def _response(value, column: str, where: str) -> str:
    """The assistant's text of a ``chosen`` or ``rejected`` cell: a string, or one assistant message."""
    if isinstance(value, list):
        roles = [m.get("role") if isinstance(m, dict) else type(m).__name__ for m in value]
        if roles != ["assistant"]:
            raise PreferenceDataError(f"{where}: a conversational {column!r} must be one assistant message "
                                      f"([{{'role': 'assistant', 'content': ...}}]), got the roles {roles}")
        value = value[0].get("content")
    if not isinstance(value, str):
        raise PreferenceDataError(f"{where}: {column!r} must be a string or one assistant message, got "
                                  f"{type(value).__name__}")
    if not value.strip():
        raise PreferenceDataError(f"{where}: the {column} response is empty")
    return value


def _split_implicit(row: dict, where: str) -> tuple[list[dict], object, object]:
    """A row without a prompt column: the prompt is what the chosen and rejected conversations share."""
    chosen, rejected = row["chosen"], row["rejected"]
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise PreferenceDataError(f"{where}: missing column 'prompt' (only conversational rows, whose chosen and "
                                  "rejected conversations share the prompt, may leave it out)")
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1]:
        raise PreferenceDataError(f"{where}: no 'prompt' column, and the chosen and rejected conversations do not "
                                  "share every message but their last: the prompt is unknown")
    return _prompt_messages(chosen[:-1], where), chosen[-1:], rejected[-1:]


def _margin(row: dict, where: str) -> float:
    """A ``margin`` column, else ``score_chosen - score_rejected`` when both are there, else 0."""
    try:
        if row.get("margin") is not None:
            return float(row["margin"])
        if row.get("score_chosen") is not None and row.get("score_rejected") is not None:
            return float(row["score_chosen"]) - float(row["score_rejected"])
    except (TypeError, ValueError):
        raise PreferenceDataError(f"{where}: the margin or the scores are not numbers") from None
    return 0.0


def _pair(row, where: str, pair_id: str, *, seed: int, test_fraction: float) -> dict:
    """One source row as a course pair (the keys of ``preferences.comparisons``), after checking it."""
    from ..instruction.formatting import check_messages

    if not isinstance(row, dict):
        raise PreferenceDataError(f"{where}: a row must be an object with 'prompt', 'chosen' and 'rejected', got "
                                  f"{type(row).__name__}")
    missing = [c for c in ("chosen", "rejected") if row.get(c) is None]
    if missing:
        raise PreferenceDataError(f"{where}: missing column(s) {missing}; a row needs 'prompt', 'chosen' and "
                                  "'rejected' (TRL's preference format)")
    if row.get("prompt") is None:
        messages, chosen, rejected = _split_implicit(row, where)
    else:
        messages, chosen, rejected = _prompt_messages(row["prompt"], where), row["chosen"], row["rejected"]
    chosen, rejected = _response(chosen, "chosen", where), _response(rejected, "rejected", where)
    if chosen == rejected:
        raise PreferenceDataError(f"{where}: the chosen and rejected responses are identical")
    for response in (chosen, rejected):
        try:
            check_messages([*messages, {"role": "assistant", "content": response}], pair_id)
        except ValueError as err:
            raise PreferenceDataError(f"{where}: {err}") from None
    prompt_text = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    # the split hashes the prompt, so pairs of one prompt are never on both sides
    split = "test" if stable_fraction(str(seed), "preferences", "external", prompt_text) < test_fraction else "train"
    lang = detect_lang(" ".join(m["content"] for m in messages if m["role"] == "user"))
    return {"prompt_id": pair_id, "split": split, "lang": lang, "kind": "external", "messages": messages,
            "chosen": chosen, "rejected": rejected, "chosen_style": "chosen", "rejected_style": "rejected",
            "margin": _margin(row, where), "flipped": False}


def load_preference_pairs(source: str, *, max_rows: int = 0, offline: bool = True, test_fraction: float = 0.1,
                          seed: int = 0) -> list[dict]:
    """The pairs of ``source`` (a ``.jsonl`` file or ``hf:<name>[:<config>]``), as ``preferences.comparisons`` has them.

    A pair: ``prompt_id`` (``"<source name>/<row>"``, rows counted from 1), ``split``
    (``test`` for a fixed ``test_fraction`` of the prompts, by a hash of the prompt and
    ``seed``), ``lang`` (``ko`` when the user turns are mostly Hangul), ``kind``
    (``external``), ``messages`` (the prompt; no system turn is added), ``chosen`` and
    ``rejected`` (the assistant's texts), ``chosen_style``/``rejected_style``
    (``chosen``/``rejected``), ``margin`` (a ``margin`` column, else ``score_chosen -
    score_rejected``, else 0) and ``flipped`` (False). ``max_rows`` > 0 reads only the
    first ``max_rows`` rows. Deterministic.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ValueError(f"max_rows must be an int >= 0 (0 reads every row), got {max_rows!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    name, rows = _source_rows(source, offline)
    pairs = [_pair(row, where, f"{name}/{i}", seed=seed, test_fraction=test_fraction)
             for i, (where, row) in enumerate(itertools.islice(rows, max_rows or None), 1)]
    if not pairs:
        raise PreferenceDataError(f"alignment.preference_source={source!r} has no rows")
    return pairs


# --------------------------------------------------------------------------- TRL's trainers


def trl_rows(pairs: list[dict], *, margin: bool = False) -> list[dict]:
    """Course pairs in TRL's conversational preference form (explicit prompt).

    ``{"prompt": messages, "chosen": [assistant turn], "rejected": [assistant turn]}``, and
    ``"margin"`` (the gold margin, at least 0) when ``margin``: TRL's reward loss then
    subtracts it, LLaMA-2's variant (``reward_model.PairwiseRewardTrainer``'s ``use_margin``).
    """
    rows = []
    for p in pairs:
        row = {"prompt": [{"role": m["role"], "content": m["content"]} for m in p["messages"]],
               "chosen": [{"role": "assistant", "content": p["chosen"]}],
               "rejected": [{"role": "assistant", "content": p["rejected"]}]}
        rows.append({**row, "margin": max(0.0, float(p.get("margin", 0.0)))} if margin else row)
    return rows


def trl_args(config_class, train_cfg, *, output_dir, seed: int, max_len: int | None, **extra):
    """A TRL config (``RewardConfig``, ``DPOConfig``) from the course's ``TrainConfig``.

    The same steps, batch, accumulation, AdamW settings, warmup and cosine decay to
    ``min_lr_ratio * lr``, clipping and mixed precision; no evaluation, no checkpoints
    (the final model is saved by the caller), no hub, no reporting.
    """
    c = train_cfg
    return config_class(
        output_dir=str(output_dir), max_steps=c.max_steps, per_device_train_batch_size=c.batch_size,
        gradient_accumulation_steps=c.grad_accum_steps, learning_rate=c.lr, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": c.min_lr_ratio}, warmup_steps=c.warmup_steps, weight_decay=c.weight_decay,
        adam_beta1=c.adam_beta1, adam_beta2=c.adam_beta2, max_grad_norm=c.max_grad_norm,
        bf16=c.mixed_precision == "bf16", fp16=c.mixed_precision == "fp16", logging_steps=c.log_every,
        logging_first_step=True, save_strategy="no", eval_strategy="no", report_to="none", push_to_hub=False,
        disable_tqdm=not c.progress, seed=seed, data_seed=seed, activation_checkpointing=False, max_length=max_len,
        **extra)


def _finish(trainer, model, tokenizer, output_dir, names: dict[str, str]) -> list[dict]:
    """The trainer's log as course rows (``step``, ``loss``, ``names``' keys); ``final/`` and the log written."""
    log = [{"step": e["step"], "loss": e["loss"], **{ours: e[theirs] for theirs, ours in names.items() if theirs in e}}
           for e in trainer.state.log_history if "loss" in e]
    out = Path(output_dir)
    model.save_pretrained(out / FINAL_DIR)
    tokenizer.save_pretrained(out / FINAL_DIR)
    (out / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in log), encoding="utf-8")
    model.eval()
    return log


def train_reward_model_trl(decoder, tokenizer, pairs: list[dict], train_cfg, *, output_dir, seed: int = 0,
                           use_margin: bool = False, max_len: int | None = None) -> tuple[PreTrainedModel, list]:
    """``reward_model.train_reward_model`` through TRL's ``RewardTrainer``: a reward model from ``decoder``.

    The model is ``reward_model_from(decoder)`` (a ``LlamaForSequenceClassification``);
    pairs longer than ``max_len`` tokens are left out by TRL. Returns the model and one log
    row per ``train_cfg.log_every`` steps: ``step``, ``loss``, ``accuracy`` and ``margin``
    (TRL's, on the training batches), ``lr``, ``grad_norm``. ``output_dir`` gets ``final/``
    and ``metrics.jsonl``, as the course loop leaves them.
    """
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from ..instruction.formatting import add_chat_template

    if not pairs:
        raise ValueError("no preference pairs to train on")
    tokenizer = add_chat_template(tokenizer)
    model = reward_model_from(decoder, seed=seed)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = trl_args(RewardConfig, train_cfg, output_dir=output_dir, seed=seed, max_len=max_len)
    trainer = RewardTrainer(model=model, args=args, processing_class=tokenizer,
                            train_dataset=Dataset.from_list(trl_rows(pairs, margin=use_margin)))
    trainer.train()
    return model, _finish(trainer, model, tokenizer, output_dir, REWARD_LOG)


def train_dpo_trl(instruct, tokenizer, pairs: list[dict], train_cfg, *, beta: float, output_dir, seed: int = 0,
                  max_len: int | None = None, sft_weight: float = 0.0) -> tuple[torch.nn.Module, list[dict]]:
    """``dpo.train_dpo`` through TRL's ``DPOTrainer``: a copy of ``instruct`` trained with DPO on ``pairs``.

    ``instruct`` is a ``TrainedModel`` (as ``dpo.train_dpo`` takes it) or the causal LM
    itself. The reference is another copy, frozen, passed to TRL as ``ref_model``.
    ``sft_weight`` > 0 adds that much of TRL's ``sft`` loss (the chosen responses' token
    NLL; ``loss_type=["sigmoid", "sft"]``), the RPO term of ``dpo.DPOLoss``. TRL truncates
    a pair longer than ``max_len`` tokens. Returns the policy and one log row per
    ``train_cfg.log_every`` steps: ``step``, ``loss``, ``chosen_reward``,
    ``rejected_reward``, ``margin``, ``reward_accuracy``, ``lr``, ``grad_norm``.
    ``output_dir`` gets ``final/`` and ``metrics.jsonl``, so ``TrainedModel.from_run`` loads it.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ..instruction.formatting import add_chat_template

    beta = _positive("beta", beta)
    if not sft_weight >= 0:
        raise ValueError(f"sft_weight must be >= 0, got {sft_weight!r}")
    if not pairs:
        raise ValueError("no preference pairs to train on")
    tokenizer = add_chat_template(tokenizer)
    source = instruct if isinstance(instruct, PreTrainedModel) else instruct.model
    policy, reference = copy.deepcopy(source), copy.deepcopy(source).eval().requires_grad_(False)
    policy.config.pad_token_id = tokenizer.pad_token_id
    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, float(sft_weight)]} if sft_weight else {}
    args = trl_args(DPOConfig, train_cfg, output_dir=output_dir, seed=seed, max_len=max_len, beta=beta, **losses)
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(trl_rows(pairs)))
    trainer.train()
    return policy, _finish(trainer, policy, tokenizer, output_dir, DPO_LOG)
