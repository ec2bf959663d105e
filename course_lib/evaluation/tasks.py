"""The task registry: the course world's evaluation sets, grouped by the ability the survey says they measure.

=========================  =============================================  ============================
group                      tasks                                          real-world counterpart
=========================  =============================================  ============================
language_generation        cloze_{en,ko}, summarization_{en,ko},          LAMBADA, XSum, WMT,
                           translation_{en_ko,ko_en}, perplexity_{en,ko}  WikiText
knowledge_closed_book      qa_closed_{en,ko}, multiple_choice_{en,ko},    Natural Questions, ARC,
                           false_premise_{en,ko}, unanswerable_{en,ko}    TruthfulQA
knowledge_open_book        qa_open_{en,ko}                                Natural Questions + passage
reasoning_commonsense      entailment_{en,ko}                             RTE/ANLI, HellaSwag-style MC
reasoning_arithmetic       arithmetic_{en,ko}                             GSM8K
reading_comprehension_ko   korquad                                        KorQuAD 1.0
=========================  =============================================  ============================

A task turns a row of ``world.load("tasks")`` into a prompt (``doc_to_text``), a
target (``doc_to_target``) and, for multiple choice, ``doc_to_choice`` -- lm-eval's
names for the same three functions. A k-shot prompt puts k solved examples from the
``train`` split first: ``text + delimiter + target + "\\n\\n"`` each, then the question
(lm-eval's layout); they are drawn by ``random.Random(seed)``, one draw per evaluated
item in order, so the same seed gives the same prompts (and lm-eval's with
``fewshot_random_seed=seed``).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable
from dataclasses import dataclass, field

LABELS = {  # prompt labels per language: question, answer, premise, hypothesis, relation, summary
    "en": {"q": "Question", "a": "Answer", "p": "Premise", "h": "Hypothesis", "r": "Relation", "s": "Summary"},
    "ko": {"q": "질문", "a": "답", "p": "전제", "h": "가설", "r": "관계", "s": "요약"},
}
LANGUAGE_NAMES = {"en": "English", "ko": "Korean"}
GROUPS = ("language_generation", "knowledge_closed_book", "knowledge_open_book", "reasoning_commonsense",
          "reasoning_arithmetic", "reading_comprehension_ko")
LOWER_IS_BETTER = {"perplexity", "word_perplexity", "byte_perplexity", "token_perplexity", "bits_per_byte"}


def _qa(row: dict, lang: str) -> str:
    L = LABELS[lang]
    return f"{L['q']}: {row['question']}\n{L['a']}:"


def _open_book(row: dict, lang: str) -> str:
    return f"{row['context'].strip()}\n\n{_qa(row, lang)}"


def _cloze(row: dict, lang: str) -> str:
    return f"{row['context']} {row['question']}"


def _summary(row: dict, lang: str) -> str:
    return f"{row['context'].strip()}\n\n{row['question']}\n{LABELS[lang]['s']}:"


def _translation(row: dict, lang: str) -> str:
    src, tgt = lang.split("-")
    return f"{LANGUAGE_NAMES[src]}: {row['question']}\n{LANGUAGE_NAMES[tgt]}:"


def _entailment(row: dict, lang: str) -> str:
    L = LABELS[lang]
    return f"{L['p']}: {row['context']}\n{L['h']}: {row['question']}\n{L['r']}:"


@dataclass(frozen=True)
class Task:
    """One evaluation set: which world rows, how to prompt them, how to score the answers.

    ``kind`` is ``multiple_choice`` (log-likelihood of each choice), ``cloze``
    (log-likelihood and greedy match of the last word), ``generate`` (greedy text,
    compared with the answer) or ``perplexity`` (rolling log-likelihood of documents).
    ``primary`` is the metric the table and the group averages use.
    """

    name: str
    family: str
    lang: str
    group: str
    kind: str
    metrics: tuple[str, ...]
    primary: str
    prompt: Callable[[dict, str], str] = _qa
    keep: Callable[[dict], bool] | None = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    stop: tuple[str, ...] = ("\n",)
    description: str = field(default="", compare=False)

    @property
    def score_lang(self) -> str:
        """The language the answers are written in (the target side of a translation)."""
        return self.lang.split("-")[-1]

    def doc_to_text(self, row: dict) -> str:
        return self.prompt(row, self.lang)

    def doc_to_target(self, row: dict) -> str:
        return row["choices"][row["label"]] if self.kind == "multiple_choice" else row["answer"]

    def doc_to_choice(self, row: dict) -> list[str]:
        return list(row["choices"])

    def rows(self, config, split: str = "test") -> list[dict]:
        """The task's rows of ``split`` (``train``, ``test``, ``test_template``) of the world of ``config``.

        A perplexity task ignores ``split``: its rows are the documents held out of pretraining.
        """
        if self.kind == "perplexity":
            return _held_out_documents(config, self.lang)
        from course_lib.world import load

        table = load("tasks", config, task=self.family)[split]
        return [r for r in table if r["lang"] == self.lang and (self.keep is None or self.keep(r))]

    def fewshot_context(self, row: dict, examples: list[dict]) -> str:
        """``examples`` solved (text, delimiter, target, blank line), then ``row``'s prompt."""
        shots = "".join(self.doc_to_text(x) + self.target_delimiter + self.doc_to_target(x) + self.fewshot_delimiter
                        for x in examples)
        return shots + self.doc_to_text(row)


def _held_out_documents(config, lang: str) -> list[dict]:
    """World documents of ``lang`` held out of pretraining for perplexity (chapter 03's split)."""
    from course_lib.world import is_held_out, load

    docs = load("documents", config).select_columns(["id", "text", "lang", "in_pretraining", "dup_cluster"]).to_list()
    return [{"id": d["id"], "text": d["text"], "lang": d["lang"]} for d in docs
            if d["in_pretraining"] and d["lang"] == lang
            and is_held_out(d, config.pretrain.eval_fraction, config.run.seed)]


def _answer_in_context(row: dict) -> bool:
    return bool(row["answer"]) and row["answer"] in row["context"]


MC = ("acc", "acc_norm", "acc_bytes")
QA = ("exact_match", "f1")
F1 = {"en": "SQuAD word F1", "ko": "KorQuAD character F1"}


def _build_registry() -> dict[str, Task]:
    tasks = []
    for lang in ("en", "ko"):
        tasks += [
            Task(f"cloze_{lang}", "cloze", lang, "language_generation", "cloze", ("acc", "perplexity"), "acc",
                 prompt=_cloze, description="LAMBADA-style: predict the last word of a passage (greedy match)"),
            Task(f"summarization_{lang}", "summarization", lang, "language_generation", "generate",
                 ("rouge1", "rouge2", "rougeL"), "rougeL", prompt=_summary,
                 description="XSum-style: one- or two-sentence summary of an article (ROUGE)"),
            Task(f"perplexity_{lang}", "documents", lang, "language_generation", "perplexity",
                 ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"), "bits_per_byte",
                 description="WikiText-style: perplexity of held-out documents, rolling windows"),
            Task(f"qa_closed_{lang}", "qa_closed", lang, "knowledge_closed_book", "generate", QA, "f1",
                 description=f"Natural Questions-style closed-book QA (EM, {F1[lang]})"),
            Task(f"multiple_choice_{lang}", "multiple_choice", lang, "knowledge_closed_book", "multiple_choice", MC,
                 "acc_norm", description="ARC-style four-way multiple choice about facts"),
            Task(f"false_premise_{lang}", "false_premise", lang, "knowledge_closed_book", "generate",
                 ("exact_match", "rougeL"), "rougeL",
                 description="TruthfulQA-style: a question with a false premise; the answer corrects it"),
            Task(f"unanswerable_{lang}", "unanswerable", lang, "knowledge_closed_book", "generate",
                 ("exact_match", "rougeL"), "rougeL",
                 description="TruthfulQA-style: a question nothing in the world answers; the answer says so"),
            Task(f"qa_open_{lang}", "qa_open", lang, "knowledge_open_book", "generate", QA, "f1", prompt=_open_book,
                 description=f"open-book QA: the supporting document comes with the question (EM, {F1[lang]})"),
            Task(f"entailment_{lang}", "entailment", lang, "reasoning_commonsense", "multiple_choice", MC, "acc",
                 prompt=_entailment, description="premise/hypothesis: entailment, neutral or contradiction"),
            Task(f"arithmetic_{lang}", "arithmetic", lang, "reasoning_arithmetic", "generate", ("exact_match",),
                 "exact_match", description="GSM8K-style word problems; the last number of the answer counts"),
        ]
    for src, tgt in (("en", "ko"), ("ko", "en")):
        tasks.append(Task(f"translation_{src}_{tgt}", "translation", f"{src}-{tgt}", "language_generation",
                          "generate", ("chrf", "bleu"), "chrf", prompt=_translation,
                          description=f"{LANGUAGE_NAMES[src]} to {LANGUAGE_NAMES[tgt]} translation (chrF, BLEU)"))
    tasks.append(Task("korquad", "qa_open", "ko", "reading_comprehension_ko", "generate", QA, "f1",
                      prompt=_open_book, keep=_answer_in_context,
                      description="KorQuAD-style: the answer is a span of the Korean passage (EM, character F1)"))
    return {t.name: t for t in tasks}


TASKS: dict[str, Task] = _build_registry()


def list_tasks(group: str | None = None) -> list[Task]:
    """Registered tasks (of one ``group`` if given), grouped in ``GROUPS`` order."""
    if group is not None and group not in GROUPS:
        raise KeyError(f"no task group {group!r}; groups: {', '.join(GROUPS)}")
    return [t for g in GROUPS for t in TASKS.values() if t.group == g and group in (None, g)]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"no task named {name!r}; `course eval --list` lists them")
    return TASKS[name]


def resolve_tasks(spec) -> list[Task]:
    """Tasks named by ``spec``: Task objects, names, group names, ``knowledge``/``reasoning``, globs or ``all``.

    ``spec`` is one Task, a list or a comma-separated string; order is kept and duplicates dropped.
    """
    items = spec.split(",") if isinstance(spec, str) else [spec] if isinstance(spec, Task) else list(spec)
    out: dict[str, Task] = {}
    for item in items:
        if isinstance(item, Task):
            out.setdefault(item.name, item)
            continue
        item = item.strip()
        if not item:
            continue
        if item == "all":
            found = list_tasks()
        elif item in TASKS:
            found = [TASKS[item]]
        else:
            found = [t for t in list_tasks() if t.group == item or t.group.startswith(item + "_")
                     or fnmatch.fnmatchcase(t.name, item)]
        if not found:
            raise KeyError(f"{item!r} names no task or group; groups: {', '.join(GROUPS)}; `course eval --list`")
        for t in found:
            out.setdefault(t.name, t)
    return list(out.values())


def fewshot_examples(pool: list[dict], k: int, rng: random.Random) -> list[dict]:
    """``k`` examples drawn from ``pool`` without replacement (``rng.sample``, as lm-eval's sampler does)."""
    return rng.sample(pool, k) if k else []
