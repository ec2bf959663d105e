"""Metrics of chapter 05 on hand-computed examples, and ROUGE equal to rouge-score."""

from __future__ import annotations

import math

import pytest

from course_lib.evaluation import metrics as M


def test_squad_normalization_drops_case_punctuation_and_articles():
    assert M.normalize_squad("The  Cat's hat!") == "cats hat"
    assert M.exact_match("The Robotics.", "robotics") == 1.0
    assert M.exact_match("robotic", "robotics") == 0.0


def test_squad_word_f1_by_hand():
    assert M.squad_f1("the Hunilpum Institute", "Hunilpum Institute.") == 1.0
    assert M.squad_f1("Hunilpum University", "Hunilpum Institute") == 0.5  # P = R = 1/2
    assert M.squad_f1("Mudi city in Nizol", "Mudi") == pytest.approx(0.4)  # P = 1/4, R = 1 -> 2PR/(P+R) = 0.4
    assert M.squad_f1("Nizol", "Mudi") == 0.0


def test_korquad_character_f1_differs_from_word_f1_on_korean():
    # "연구소가" is "연구소" plus the subject particle 가: one word apart, one character apart.
    pred, gold = "숑바 연구소가", "숑바 연구소"
    assert M.squad_f1(pred, gold) == 0.5  # words: {숑바, 연구소가} vs {숑바, 연구소}: P = R = 1/2
    # characters: 6 predicted, 5 gold, 5 shared -> P = 5/6, R = 1 -> F1 = 10/11
    assert M.korquad_f1(pred, gold) == pytest.approx(10 / 11)
    assert M.f1(pred, gold, "ko") == M.korquad_f1(pred, gold)
    assert M.f1(pred, gold, "en") == M.squad_f1(pred, gold)
    assert M.exact_match(pred, gold, "ko") == 0.0


def test_korquad_normalization_drops_brackets_and_quotes():
    assert M.normalize_korquad("《숑바  연구소》") == "숑바 연구소"
    assert M.exact_match("‘무디’", "무디", "ko") == 1.0
    assert M.korquad_f1("1,989년", "1989년") == 1.0  # the comma is punctuation


def test_last_number_reads_the_final_answer():
    assert M.last_number("Sum: 40,500 and 71,700 is 112,200.") == "112200"
    assert M.number_match("It is 33 years.", "33") == 1.0
    assert M.number_match("모두 112200명", "112200") == 1.0
    assert M.number_match("no idea", "33") == 0.0


def test_choice_predictions_by_hand():
    # acc takes the raw log-likelihood; acc_norm divides by characters; acc_bytes by UTF-8 bytes.
    assert M.choice_predictions([-13.0, -9.0], ["Seoul Station", "Busan"]) == {"acc": 1, "acc_norm": 0, "acc_bytes": 0}
    # 서울역: 3 characters, 9 bytes: -6/3 = -2 < -7.5/5 = -1.5 but -6/9 = -0.67 > -1.5
    assert M.choice_predictions([-6.0, -7.5], ["서울역", "Busan"]) == {"acc": 0, "acc_norm": 1, "acc_bytes": 0}
    assert M.choice_predictions([-1.0, -1.0], ["a", "b"])["acc"] == 0  # ties go to the first, as np.argmax
    # the length is the choice's own, without the " " delimiter: -2/2 = -1 < -3.9/4 = -0.975 (with it: -0.67 > -0.78)
    assert M.choice_predictions([-2.0, -3.9], ["ab", "abcd"])["acc_norm"] == 1


def test_rouge_by_hand():
    scores = M.rouge("the cat sat on the mat", "the cat lay on the mat")
    assert scores["rouge1"] == pytest.approx(5 / 6)  # the x2, cat, on, mat shared of 6 words each
    assert scores["rouge2"] == pytest.approx(3 / 5)  # (the cat), (on the), (the mat) of 5 bigrams each
    assert scores["rougeL"] == pytest.approx(5 / 6)  # LCS: the cat on the mat
    assert M.rouge("", "the cat") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


PAIRS = [
    ("Nyeohagul Festival 2017 took place in Jubal on January 12.",
     "Nyeohagul Festival 2017 took place in Jubal. Nyeohagul Festival 2017 took place on January 12, 2017."),
    ("The Tower of Chunneol was written by Mubung Hun", "Mubung Hun wrote The Tower of Chunneol."),
    ("a b a b a", "b a b"),
    ("nothing shared", "Completely different words here"),
]
KO_PAIRS = [
    ("산고비 직조기는 피우재가 발명했다.", "산고비 직조기는 피우재가 발명했다. 산고비 직조기는 1995년에 발명되었다."),
    ("숑바 연구소가 주최했다", "2025 겨디젱 정상회의는 숑바 연구소가 주최했다."),
]


def test_rouge_equals_rouge_score_on_english():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for pred, ref in PAIRS:
        theirs = scorer.score(ref, pred)
        ours = M.rouge(pred, ref)
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key].fmeasure, abs=1e-12), (pred, key)


def test_rouge_equals_rouge_score_on_korean_with_our_tokenizer():
    # rouge-score's default tokenizer keeps only [a-z0-9]: it would erase Hangul and score every Korean pair 0.
    from rouge_score import rouge_scorer

    class Words:
        def tokenize(self, text):
            return M.rouge_tokenize(text)

    assert rouge_scorer.RougeScorer(["rouge1"]).score(*KO_PAIRS[0])["rouge1"].fmeasure == 0.0
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=Words())
    for pred, ref in KO_PAIRS:
        theirs = scorer.score(ref, pred)
        ours = M.rouge(pred, ref)
        assert ours["rouge1"] > 0
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key].fmeasure, abs=1e-12), (pred, key)


def test_chrf_and_bleu_are_fractions():
    assert M.chrf(["피우재의 직업은 선원이었다."], ["피우재의 직업은 선원이었다."]) == pytest.approx(1.0)
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    # one changed word: chrF keeps most of the credit, BLEU loses every n-gram through it
    hyp, ref = ["the cat sat on a mat"], ["the cat sat on the mat"]
    assert 0 < M.bleu(hyp, ref) < M.chrf(hyp, ref) < 1


def test_perplexities_by_hand():
    assert M.perplexity([-1.0, -3.0]) == pytest.approx(math.e**2)  # exp(-mean)
    assert M.weighted_perplexity([-2.0, -4.0], [1, 2]) == pytest.approx(math.e**2)  # exp(-6 / 3)
    assert M.bits_per_byte([-8 * math.log(2)], [8]) == pytest.approx(1.0)
    assert M.count_words("Bolso Dol was\nborn") == 4
