"""Text metrics: exact match and F1 (SQuAD, KorQuAD), ROUGE-1/2/L, chrF and BLEU, perplexities.

Every function scores one prediction against one reference and returns a
fraction in [0, 1], except the corpus-level ``bleu``/``chrf`` (also [0, 1]; sacrebleu
reports them x100) and the perplexities.

- SQuAD (English): lower-case, drop punctuation and the articles a/an/the, split on
  whitespace; F1 over the bag of *words*.
- KorQuAD 1.0 (Korean): lower-case, drop punctuation and quote/bracket marks, split
  on whitespace, then F1 over the bag of *characters*. A Korean word (어절) carries
  its particle ("연구소가" = "연구소" + "가"), so a word-level F1 gives no credit for
  "연구소가" against "연구소"; the character-level F1 gives most of it.
- ROUGE: rouge-score's tokenizer (lower-case, runs of letters and digits) extended
  from ``[a-z0-9]`` to every Unicode letter so that Korean is not erased; on ASCII text
  it equals rouge-score exactly (``tests/test_evaluation_metrics.py`` checks it).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

import numpy as np

from course_lib import checks
from course_lib.curation.filters import normalize_lang

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_KORQUAD_MARKS = re.compile("['\"《》<>〈〉()‘’]")


# --------------------------------------------------------------------------- exact match and F1


def normalize_squad(text: str) -> str:
    """SQuAD v1.1's ``normalize_answer``: lower, remove punctuation, remove articles, fix whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_korquad(text: str) -> str:
    """KorQuAD 1.0's ``normalize_answer``: quote/bracket marks to spaces, lower, remove punctuation, fix whitespace."""
    text = _KORQUAD_MARKS.sub(" ", text).lower()
    return " ".join("".join(ch for ch in text if ch not in _PUNCT).split())


def _f1(pred: list[str], gold: list[str]) -> float:
    """Harmonic mean of precision and recall of the bags ``pred`` and ``gold``."""
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, reference: str) -> float:
    """SQuAD word F1: overlap of the normalized words."""
    return _f1(normalize_squad(prediction).split(), normalize_squad(reference).split())


def korquad_f1(prediction: str, reference: str) -> float:
    """KorQuAD 1.0 character F1: overlap of the characters of the normalized words (spaces not counted)."""
    chars = lambda s: [ch for word in normalize_korquad(s).split() for ch in word]  # noqa: E731
    return _f1(chars(prediction), chars(reference))


def _pair(prediction, reference) -> tuple[str, str]:
    return checks.text("prediction", prediction), checks.text("reference", reference)


def exact_match(prediction: str, reference: str, lang: str = "en") -> float:
    """1.0 if the normalized strings are equal (SQuAD normalization, KorQuAD's for Korean ``lang``)."""
    norm = normalize_korquad if normalize_lang(lang) == "ko" else normalize_squad
    prediction, reference = _pair(prediction, reference)
    return float(norm(prediction) == norm(reference))


def f1(prediction: str, reference: str, lang: str = "en") -> float:
    """The QA F1 of ``lang``: SQuAD word F1 for English, KorQuAD character F1 for Korean."""
    prediction, reference = _pair(prediction, reference)
    return korquad_f1(prediction, reference) if normalize_lang(lang) == "ko" else squad_f1(prediction, reference)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> str | None:
    """The last number written in ``text`` without thousands separators (GSM8K's answer extraction), or None."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def number_match(prediction: str, reference: str) -> float:
    """1.0 if the last number in ``prediction`` equals ``reference``'s number (arithmetic word problems)."""
    prediction, reference = _pair(prediction, reference)
    predicted = last_number(prediction)
    return float(predicted is not None and predicted == last_number(reference))


# --------------------------------------------------------------------------- multiple choice


def choice_predictions(logliks: list[float], choices: list[str]) -> dict[str, int]:
    """The chosen index under each multiple-choice rule (ties go to the first choice, as ``np.argmax``).

    - ``acc``: the highest log-likelihood; favours short choices (fewer tokens to pay for);
    - ``acc_norm``: the highest log-likelihood per *character* of the choice (lm-eval's acc_norm);
    - ``acc_bytes``: per UTF-8 *byte*: a Hangul syllable is one character but three bytes.

    Divided as lm-eval divides (numpy floats), an empty choice scores -inf per character: it is never
    picked by ``acc_norm`` or ``acc_bytes`` unless every choice is empty.
    """
    choices = checks.texts("choices", choices)
    lls = np.asarray(checks.sequence("logliks", logliks, "log-likelihoods"), dtype=float)  # (C,)
    if len(lls) != len(choices) or not len(choices):
        raise ValueError(f"logliks: expected one per choice ({len(choices)}, at least one), got {len(lls)}")
    chars = np.array([len(c) for c in choices], dtype=float)  # (C,)
    n_bytes = np.array([len(c.encode("utf-8")) for c in choices], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # -1.2 / 0 = -inf, as in lm-eval
        return {"acc": int(np.argmax(lls)), "acc_norm": int(np.argmax(lls / chars)),
                "acc_bytes": int(np.argmax(lls / n_bytes))}


# --------------------------------------------------------------------------- ROUGE


def rouge_tokenize(text: str) -> list[str]:
    """rouge-score's default tokenization for every script: lower-case, keep runs of letters and digits."""
    return re.findall(r"[^\W_]+", text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming over one row at a time."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, start=1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def _fmeasure(overlap: int, n_pred: int, n_ref: int) -> float:
    precision, recall = overlap / max(n_pred, 1), overlap / max(n_ref, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of ``prediction`` against ``reference``.

    ROUGE-n: clipped n-gram overlap; ROUGE-L: longest common subsequence of the
    words (sentence-level, not rougeLsum). Returns ``{"rouge1", "rouge2", "rougeL"}``.
    """
    prediction, reference = _pair(prediction, reference)
    pred, ref = rouge_tokenize(prediction), rouge_tokenize(reference)
    scores = {}
    for n in (1, 2):
        p, r = _ngrams(pred, n), _ngrams(ref, n)
        scores[f"rouge{n}"] = _fmeasure(sum((p & r).values()), sum(p.values()), sum(r.values()))
    scores["rougeL"] = _fmeasure(_lcs_length(ref, pred), len(pred), len(ref)) if pred and ref else 0.0
    return scores


# --------------------------------------------------------------------------- chrF and BLEU (sacrebleu)


def _corpus(predictions, references) -> tuple[list[str], list[str]]:
    """The two lists, checked: texts, one reference per prediction (a string is not a list of them)."""
    predictions, references = checks.texts("predictions", predictions), checks.texts("references", references)
    if len(predictions) != len(references):
        raise ValueError(f"references: expected one per prediction ({len(predictions)}), got {len(references)}")
    return predictions, references


def chrf(predictions: list[str], references: list[str]) -> float:
    """Corpus chrF (character 6-grams, beta 2) by sacrebleu, as a fraction. Suits Korean: no word splitting."""
    import sacrebleu

    predictions, references = _corpus(predictions, references)
    return sacrebleu.corpus_chrf(predictions, [references]).score / 100


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (4-grams, sacrebleu's 13a tokenizer, exp smoothing) by sacrebleu, as a fraction."""
    import sacrebleu

    predictions, references = _corpus(predictions, references)
    return sacrebleu.corpus_bleu(predictions, [references]).score / 100


# --------------------------------------------------------------------------- perplexities


def perplexity(logliks: list[float]) -> float:
    """exp(-mean log-likelihood): lm-eval's ``perplexity`` over items (LAMBADA)."""
    return math.exp(-sum(logliks) / len(logliks))


def weighted_perplexity(logliks: list[float], units: list[int]) -> float:
    """exp(-sum log-likelihood / sum units): per-token, per-word or per-byte perplexity of documents."""
    return math.exp(-sum(logliks) / sum(units))


def bits_per_byte(logliks: list[float], n_bytes: list[int]) -> float:
    """-sum log-likelihood / sum bytes / ln 2: comparable across tokenizers and languages."""
    return -sum(logliks) / sum(n_bytes) / math.log(2)


def count_words(text: str) -> int:
    """lm-eval's word count for ``word_perplexity``: pieces between runs of whitespace."""
    return len(re.split(r"\s+", text))
