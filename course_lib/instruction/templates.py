"""Instruction templates (지시문 템플릿): ten phrasings of every task in English and in Korean, the last two held out.

FLAN (survey §4) turns a dataset into instructions by writing about ten templates
per dataset: natural-language phrasings of the task with *slots* that an example
fills in. A template is a pair: the user's turn (the instruction and the input) and
the assistant's turn (the response)::

    Template("qa_closed/en/0", "Answer the question.\n\n{question}", "{answer}")

Slots are ``{name}``; in Korean a slot may carry a particle as its format spec,
``{items:을}``, and ``world.hangul.format_ko`` picks 을 or 를 from the word it
follows, as the world's own templates do.

Three rules:

- **Held-out phrasings.** The last ``HELD_OUT`` (2) templates of every list are never
  used for a training example; only the ``test_template`` split uses them, so an
  evaluation can ask whether a tuned model follows a phrasing it never saw.
- **Turned around.** As in FLAN, a few templates turn the task around: the response
  states another slot than the answer (the ``target``), e.g. "write a question whose
  answer is X" (the target is the question). They are always training templates,
  so the held-out ones test the same task in a new phrasing.
- **No silent skips.** A template whose slot the example lacks raises a
  ``ValueError`` that names the template and the slot.

- **The plain format first.** For the world's task families, one training template is
  the bare prompt of chapter 05's harness (lm-eval's zero-shot layout: ``Question: ...\nAnswer:``,
  the cloze text as it is, ``Premise: ... Hypothesis: ... Relation:``), as FLAN's
  collection mixes plain zero-shot formats in with its instructions. A tuned model then
  knows the harness's layout; the harness's facts and question phrasings stay held out.

Tasks with the same inputs share one list of phrasings (``TEMPLATE_SET``:
``qa_open`` and ``fresh_reading`` both read a passage and answer a question), but
each task gets its own template ids, ``<task>/<lang>/<index>``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache

from ..world.hangul import format_ko, nfc

LANGS = ("en", "ko")
HELD_OUT = 2  # the last HELD_OUT templates of each list are for the test_template split only
MIN_TEMPLATES = 10


@dataclass(frozen=True)
class Template:
    """One phrasing of a task: ``instruction`` (the user's turn) and ``response`` (the assistant's), with slots.

    ``target`` is the slot the response states: ``answer`` for the task itself,
    another slot (``question``, ``table``) for a template that turns the task around.
    """

    id: str
    instruction: str
    response: str
    target: str = "answer"
    held_out: bool = False

    @property
    def task(self) -> str:
        return self.id.split("/")[0]

    @property
    def lang(self) -> str:
        return self.id.split("/")[1]

    @property
    def slots(self) -> tuple[str, ...]:
        """The slot names of the instruction, then those of the response, each once."""
        names = slot_names(self.instruction, self.id) + slot_names(self.response, self.id)
        return tuple(dict.fromkeys(names))

    @property
    def turned_around(self) -> bool:
        return self.target != "answer"


def slot_names(text: str, template_id: str = "?") -> list[str]:
    """The slots of a template string, in order: ``"{s:은} {o}" -> ["s", "o"]``.

    A slot must be a plain name: ``{0}``, ``{a.b}`` or ``{a[0]}`` is a ``ValueError`` naming the template.
    """
    names = []
    for _, name, _, _ in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template {template_id!r}: slot {{{name}}} is not a plain name")
        names.append(name)
    return names


def render(template: Template, slots: dict, example_id: str = "?") -> tuple[str, str]:
    """(user text, assistant text): ``template`` filled with the example's ``slots``.

    Every slot of the template must be in ``slots``; the first missing one is a
    ``ValueError`` that names the template, the slot and the example. Korean
    templates attach particles (``{name:은}``); all text comes back in NFC.
    """
    for name in template.slots:
        if name not in slots:
            raise ValueError(f"template {template.id!r}: slot {{{name}}} is not in example {example_id!r} "
                             f"(it has {', '.join(sorted(slots)) or 'no slots'})")
    if template.lang == "ko":
        return format_ko(template.instruction, **slots), format_ko(template.response, **slots)
    return nfc(template.instruction.format(**slots)), nfc(template.response.format(**slots))


# ---------------------------------------------------------------------- the phrasings
# set name -> language -> [(instruction, response) or (instruction, response, target)]; the last HELD_OUT are held out.
# Turned-around templates sit just before the held-out ones.

_SETS: dict[str, dict[str, list[tuple]]] = {
    "cloze": {
        "en": [("{context} {text}", "{answer}"),
               ("Read the passage and give the word that ends the sentence.\n\n{context}\n\n{text} ___", "{answer}"),
               ("{context}\n\nHow does this sentence end? \"{text} ...\"", "{answer}"),
               ("Passage: {context}\nUnfinished sentence: {text}\nWhat comes next?", "{answer}"),
               ("Continue the text with the missing word or name.\n{context} {text}", "{answer}"),
               ("Given the context \"{context}\", finish this sentence: {text}", "{answer}"),
               ("{context}\n\nFill in the blank: {text} ____.", "{answer}"),
               ("Background: {context}\n\nWhat completes \"{text}\"?", "{text} {answer}."),
               ("Here is some text about the world:\n{context}\n\nSupply the ending of: {text}", "{answer}"),
               ("{context}\n\nThe next sentence breaks off: \"{text}\". Provide its missing end.", "{answer}")],
        "ko": [("{context} {text}", "{answer}"),
               ("지문을 읽고 문장 끝에 들어갈 말을 쓰세요.\n\n{context}\n\n{text} ___", "{answer}"),
               ("{context}\n\n이 문장은 어떻게 끝나나요? \"{text} ...\"", "{answer}"),
               ("지문: {context}\n미완성 문장: {text}\n다음에 올 말은?", "{answer}"),
               ("빠진 단어나 이름으로 글을 이어 쓰세요.\n{context} {text}", "{answer}"),
               ("다음 맥락을 참고하여 문장을 마무리하세요.\n맥락: {context}\n문장: {text}", "{answer}"),
               ("{context}\n\n빈칸을 채우세요: {text} ____.", "{answer}"),
               ("배경: {context}\n\n\"{text}\" 뒤에 들어갈 말은 무엇인가요?", "{answer}"),
               ("다음은 이 세계에 관한 글입니다.\n{context}\n\n이 문장의 끝을 채워 주세요: {text}", "{answer}"),
               ("{context}\n\n다음 문장이 중간에 끊겼습니다: \"{text}\". 빠진 끝부분을 쓰세요.", "{answer}")],
    },
    "nli": {
        "en": [("Premise: {premise}\nHypothesis: {hypothesis}\nRelation:", "{answer}"),
               ("{premise}\n\nBased on the sentence above, is \"{hypothesis}\" entailed, neutral or contradicted? "
                "Answer with one of: {options}.", "{answer}"),
               ("Read the two sentences and label how they relate ({options}).\n1. {premise}\n2. {hypothesis}",
                "{answer}"),
               ("If \"{premise}\" is true, what follows for \"{hypothesis}\"? Choose from: {options}.", "{answer}"),
               ("Sentence A: {premise}\nSentence B: {hypothesis}\nRelation of B to A ({options}):", "{answer}"),
               ("Assume this is true: {premise}\nIs the next sentence then true, unknown or false? {hypothesis}\n"
                "Options: {options}", "{answer}"),
               ("Here is a premise: \"{premise}\"\nHere is a hypothesis: \"{hypothesis}\"\nPick one label: {options}.",
                "{answer}"),
               ("Check the claim against the evidence.\nEvidence: {premise}\nClaim: {hypothesis}\nLabels: {options}",
                "{answer}"),
               ("Decide whether \"{hypothesis}\" follows from \"{premise}\". Possible labels: {options}.", "{answer}"),
               ("Given the text: {premise}\nCan we infer the following? {hypothesis}\nAnswer options: {options}",
                "{answer}")],
        "ko": [("전제: {premise}\n가설: {hypothesis}\n관계:", "{answer}"),
               ("{premise}\n\n위 문장에 비추어 볼 때 \"{hypothesis}\"라는 가설은 어떤 관계인가요? "
                "다음 중 하나로 답하세요: {options}.", "{answer}"),
               ("두 문장을 읽고 관계를 고르세요({options}).\n1. {premise}\n2. {hypothesis}", "{answer}"),
               ("첫 문장이 참일 때 둘째 문장은 어떻게 되나요? {options} 중에서 고르세요.\n첫 문장: {premise}\n"
                "둘째 문장: {hypothesis}", "{answer}"),
               ("문장 A: {premise}\n문장 B: {hypothesis}\nA에 대한 B의 관계({options}):", "{answer}"),
               ("다음 문장이 참이라고 합시다: {premise}\n그렇다면 이 문장은 참, 알 수 없음, 거짓 중 무엇인가요? {hypothesis}\n"
                "선택지: {options}", "{answer}"),
               ("전제는 \"{premise}\"이고 가설은 \"{hypothesis}\"입니다. 레이블을 하나 고르세요: {options}.", "{answer}"),
               ("근거에 비추어 주장을 확인하세요.\n근거: {premise}\n주장: {hypothesis}\n레이블: {options}", "{answer}"),
               ("\"{premise}\"에서 \"{hypothesis}\"가 도출되는지 판단하세요. 가능한 레이블: {options}.", "{answer}"),
               ("주어진 글: {premise}\n다음을 추론할 수 있나요? {hypothesis}\n답의 선택지: {options}", "{answer}")],
    },
    "paraphrase": {
        "en": [("Do these two sentences mean the same thing?\n1. {sentence1}\n2. {sentence2}\nOptions: {options}",
                "{answer}"),
               ("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nAre they paraphrases of each other? ({options})",
                "{answer}"),
               ("\"{sentence1}\" and \"{sentence2}\": same meaning? Answer {options}.", "{answer}"),
               ("Is the second sentence a rewording of the first?\nFirst: {sentence1}\nSecond: {sentence2}\n"
                "Options: {options}", "{answer}"),
               ("{sentence1}\n{sentence2}\n\nDo the two lines above say the same fact? Options: {options}", "{answer}"),
               ("Compare the sentences and tell me if they state the same thing.\nA: {sentence1}\nB: {sentence2}\n"
                "Choose: {options}", "{answer}"),
               ("Here are two sentences:\n{sentence1}\n{sentence2}\nParaphrase or not? Options: {options}", "{answer}"),
               ("Would someone who reads \"{sentence1}\" learn the same as from \"{sentence2}\"? Options: {options}",
                "{answer}"),
               ("Determine whether the following pair is semantically equivalent ({options}).\n"
                "- {sentence1}\n- {sentence2}", "{answer}"),
               ("Original: {sentence1}\nCandidate: {sentence2}\nDoes the candidate preserve the meaning? "
                "Reply {options}.", "{answer}")],
        "ko": [("두 문장의 뜻이 같나요?\n1. {sentence1}\n2. {sentence2}\n선택지: {options}", "{answer}"),
               ("문장 1: {sentence1}\n문장 2: {sentence2}\n두 문장은 서로 바꾸어 쓴 표현인가요? ({options})", "{answer}"),
               ("\"{sentence1}\"와 \"{sentence2}\"의 의미가 같나요? {options}로 답하세요.", "{answer}"),
               ("둘째 문장이 첫째 문장을 다르게 표현한 것인가요?\n첫째: {sentence1}\n둘째: {sentence2}\n선택지: {options}",
                "{answer}"),
               ("{sentence1}\n{sentence2}\n\n위 두 줄은 같은 사실을 말하나요? 선택지: {options}", "{answer}"),
               ("두 문장을 비교하여 같은 내용인지 알려 주세요.\nA: {sentence1}\nB: {sentence2}\n고르세요: {options}",
                "{answer}"),
               ("다음 두 문장이 있습니다.\n{sentence1}\n{sentence2}\n같은 뜻인가요, 아닌가요? 선택지: {options}",
                "{answer}"),
               ("첫 문장을 읽은 사람이 둘째 문장에서도 같은 정보를 얻나요? 선택지: {options}\n{sentence1}\n{sentence2}",
                "{answer}"),
               ("다음 문장 쌍이 의미상 동등한지 판별하세요({options}).\n- {sentence1}\n- {sentence2}", "{answer}"),
               ("원문: {sentence1}\n후보: {sentence2}\n후보 문장이 원문의 뜻을 그대로 담고 있나요? {options}로 답하세요.",
                "{answer}")],
    },
    "closed_qa": {
        "en": [("Answer the question.\n\n{question}", "{answer}"),
               ("{question}", "{answer}"),
               ("Question: {question}\nAnswer:", "{answer}"),
               ("Answer this question from what you know: {question}", "{answer}"),
               ("Q: {question}\nA:", "{answer}"),
               ("Please answer briefly. {question}", "{answer}"),
               ("Here is a trivia question about the world. {question}", "{answer}"),
               ("Write a question whose answer is \"{answer}\".", "{question}", "question"),
               ("I have a question for you, and I need a short answer: {question}", "{answer}"),
               ("What is the answer to the following question? Respond with the answer only.\n{question}",
                "{answer}")],
        "ko": [("질문에 답하세요.\n\n{question}", "{answer}"),
               ("{question}", "{answer}"),
               ("질문: {question}\n답:", "{answer}"),
               ("알고 있는 지식으로 이 질문에 답하세요: {question}", "{answer}"),
               ("문: {question}\n답:", "{answer}"),
               ("짧게 답해 주세요. {question}", "{answer}"),
               ("이 세계에 관한 상식 문제입니다. {question}", "{answer}"),
               ("답이 \"{answer}\"인 질문을 하나 쓰세요.", "{question}", "question"),
               ("궁금한 것이 있는데 짧게 답해 주세요: {question}", "{answer}"),
               ("다음 질문의 답은 무엇인가요? 답만 쓰세요.\n{question}", "{answer}")],
    },
    "choice": {
        "en": [("Question: {question}\nAnswer:", "{answer}"),
               ("Choose the correct answer.\n{question}\n{options}", "{answer}"),
               ("Question: {question}\nPossible answers:\n{options}\nAnswer:", "{answer}"),
               ("{question} Pick one of the following.\n{options}", "{answer}"),
               ("Multiple choice: {question}\n{options}", "{answer}"),
               ("Which option answers the question \"{question}\"?\n{options}", "{answer}"),
               ("Select the right option.\n\nQ: {question}\n{options}", "{answer}"),
               ("Here are some options:\n{options}\nWhich one answers this? {question}", "{answer}"),
               ("Only one of these is correct:\n{options}\n\nUse it to answer: {question}", "{answer}"),
               ("{question}\nThe candidates are listed below; reply with the correct candidate.\n{options}",
                "{answer}")],
        "ko": [("질문: {question}\n답:", "{answer}"),
               ("정답을 고르세요.\n{question}\n{options}", "{answer}"),
               ("질문: {question}\n가능한 답:\n{options}\n답:", "{answer}"),
               ("{question} 다음 중 하나를 고르세요.\n{options}", "{answer}"),
               ("객관식: {question}\n{options}", "{answer}"),
               ("\"{question}\"라는 질문에 맞는 선택지는 무엇인가요?\n{options}", "{answer}"),
               ("알맞은 선택지를 고르세요.\n\n문: {question}\n{options}", "{answer}"),
               ("선택지는 다음과 같습니다.\n{options}\n이 중 무엇이 답인가요? {question}", "{answer}"),
               ("다음 중 하나만 옳습니다.\n{options}\n\n그것으로 답하세요: {question}", "{answer}"),
               ("{question}\n후보는 아래와 같습니다. 옳은 후보를 그대로 쓰세요.\n{options}", "{answer}")],
    },
    "reading": {
        "en": [("{context}\n\nQuestion: {question}\nAnswer:", "{answer}"),
               ("Read the passage and answer the question.\n\nPassage: {context}\n\nQuestion: {question}", "{answer}"),
               ("Passage: {context}\nQ: {question}\nA:", "{answer}"),
               ("{context}\n\n{question}", "{answer}"),
               ("Using only this text, answer: {question}\n\n{context}", "{answer}"),
               ("Context: {context}\nQuestion: {question}\nAnswer with a short span from the context.", "{answer}"),
               ("Here is an article:\n{context}\n\nWhat is the answer to \"{question}\"?", "{answer}"),
               ("{context}\n\nWrite a question about the passage whose answer is \"{answer}\".", "{question}",
                "question"),
               ("Look for the answer in the text below.\n{context}\nThe question: {question}", "{answer}"),
               ("Question first: {question}\nNow the document that holds the answer:\n{context}", "{answer}")],
        "ko": [("{context}\n\n질문: {question}\n답:", "{answer}"),
               ("지문을 읽고 질문에 답하세요.\n\n지문: {context}\n\n질문: {question}", "{answer}"),
               ("지문: {context}\n문: {question}\n답:", "{answer}"),
               ("{context}\n\n{question}", "{answer}"),
               ("이 글만 보고 답하세요: {question}\n\n{context}", "{answer}"),
               ("맥락: {context}\n질문: {question}\n맥락에서 짧은 구절로 답하세요.", "{answer}"),
               ("다음은 기사입니다.\n{context}\n\n\"{question}\"의 답은 무엇인가요?", "{answer}"),
               ("{context}\n\n이 지문에 관해 답이 \"{answer}\"인 질문을 쓰세요.", "{question}", "question"),
               ("아래 글에서 답을 찾으세요.\n{context}\n질문은 이것입니다: {question}", "{answer}"),
               ("질문부터 봅시다: {question}\n이제 답이 들어 있는 문서입니다.\n{context}", "{answer}")],
    },
    "summary": {
        "en": [("{article}\n\n{request}\nSummary:", "{answer}"),
               ("{article}\n\nWrite a short summary of the text above.", "{answer}"),
               ("Article: {article}\nSummary:", "{answer}"),
               ("Give the gist of this article in a sentence or two.\n{article}", "{answer}"),
               ("{article}\n\nTL;DR:", "{answer}"),
               ("Condense the following text to its two main facts.\n\n{article}", "{answer}"),
               ("What is this article about? Answer briefly.\n\n{article}", "{answer}"),
               ("Read this and write a brief summary:\n{article}", "{answer}"),
               ("Here is a long text:\n{article}\n\nShorten it to a couple of sentences.", "{answer}"),
               ("{article}\n\nIf you had to describe this page in two sentences, what would you say?", "{answer}")],
        "ko": [("{article}\n\n{request}\n요약:", "{answer}"),
               ("{article}\n\n위 글의 짧은 요약을 쓰세요.", "{answer}"),
               ("기사: {article}\n요약:", "{answer}"),
               ("이 글의 요지를 한두 문장으로 쓰세요.\n{article}", "{answer}"),
               ("{article}\n\n세 줄 요약:", "{answer}"),
               ("다음 글을 핵심 사실 두 가지로 줄이세요.\n\n{article}", "{answer}"),
               ("이 글은 무엇에 관한 글인가요? 짧게 답하세요.\n\n{article}", "{answer}"),
               ("이 글을 읽고 간단히 요약하세요.\n{article}", "{answer}"),
               ("다음은 긴 글입니다.\n{article}\n\n두어 문장으로 줄여 주세요.", "{answer}"),
               ("{article}\n\n이 문서를 두 문장으로 설명한다면 어떻게 말하겠습니까?", "{answer}")],
    },
    "translation": {
        "en": [("{src_label}: {source}\n{tgt_label}:", "{answer}"),
               ("{source}\n\nTranslate the sentence above into {tgt}.", "{answer}"),
               ("{src}: {source}\n{tgt}:", "{answer}"),
               ("How do you say this in {tgt}? {source}", "{answer}"),
               ("Render the following {src} sentence in {tgt}.\n{source}", "{answer}"),
               ("Translate to {tgt}: {source}", "{answer}"),
               ("Here is a sentence in {src}: \"{source}\"\nWrite it in {tgt}.", "{answer}"),
               ("I need this {src} text in {tgt}, please.\n\n{source}", "{answer}"),
               ("Source ({src}): {source}\nGive the {tgt} version.", "{answer}"),
               ("A reader who knows only {tgt} wants to read this: {source}\nProvide a faithful translation.",
                "{answer}")],
        "ko": [("{src_label}: {source}\n{tgt_label}:", "{answer}"),
               ("{source}\n\n위 문장을 {tgt:으로} 번역하세요.", "{answer}"),
               ("{src}: {source}\n{tgt}:", "{answer}"),
               ("이 문장을 {tgt:으로} 어떻게 말하나요? {source}", "{answer}"),
               ("다음 {src} 문장을 {tgt:으로} 옮기세요.\n{source}", "{answer}"),
               ("{tgt:으로} 번역: {source}", "{answer}"),
               ("다음은 {src} 문장입니다: \"{source}\"\n{tgt:으로} 쓰세요.", "{answer}"),
               ("이 {src} 글을 {tgt:으로} 옮겨 주세요.\n\n{source}", "{answer}"),
               ("원문({src}): {source}\n{tgt} 번역문을 쓰세요.", "{answer}"),
               ("{tgt}만 아는 독자가 이 문장을 읽으려 합니다: {source}\n충실하게 번역해 주세요.", "{answer}")],
    },
    "arithmetic": {
        "en": [("Question: {problem}\nAnswer:", "{answer}"),
               ("Solve the word problem. Give the number only.\n\n{problem}", "{answer}"),
               ("Problem: {problem}\nAnswer:", "{answer}"),
               ("{problem} Answer with a whole number.", "{answer}"),
               ("Work out the answer: {problem}", "The answer is {answer}."),
               ("Here is a math question about the world. {problem}", "{answer}"),
               ("Q: {problem}\nA:", "{answer}"),
               ("Compute: {problem}", "{answer}"),
               ("A student asks: \"{problem}\" What number should the teacher reply?", "{answer}"),
               ("Do the arithmetic in this story and report the result.\n{problem}", "{answer}")],
        "ko": [("질문: {problem}\n답:", "{answer}"),
               ("문장제를 푸세요. 숫자만 쓰세요.\n\n{problem}", "{answer}"),
               ("문제: {problem}\n답:", "{answer}"),
               ("{problem} 정수로 답하세요.", "{answer}"),
               ("답을 구하세요: {problem}", "답은 {answer}입니다."),
               ("이 세계에 관한 수학 문제입니다. {problem}", "{answer}"),
               ("문: {problem}\n답:", "{answer}"),
               ("계산하세요: {problem}", "{answer}"),
               ("학생이 묻습니다. \"{problem}\" 선생님은 어떤 수로 답해야 할까요?", "{answer}"),
               ("이 이야기 속 계산을 하고 결과를 알려 주세요.\n{problem}", "{answer}")],
    },
    "data_to_text": {
        "en": [("Write the facts below as sentences.\n\n{table}", "{answer}"),
               ("{table}\n\nTurn this record about {name} into plain English.", "{answer}"),
               ("Data:\n{table}\nText:", "{answer}"),
               ("Describe {name} using this information.\n{table}", "{answer}"),
               ("Here is an infobox:\n{table}\n\nWrite what it says as a short paragraph.", "{answer}"),
               ("Convert the structured data into text.\n{table}", "{answer}"),
               ("Facts about {name}:\n{table}\nExpress them in full sentences.", "{answer}"),
               ("{answer}\n\nList the facts in this text as \"field: value\" lines.", "{table}", "table"),
               ("Verbalize each field of the following table row as a sentence:\n{table}", "{answer}"),
               ("An encyclopedia needs prose, not a table. Rewrite:\n{table}", "{answer}")],
        "ko": [("다음 사실들을 문장으로 쓰세요.\n\n{table}", "{answer}"),
               ("{table}\n\n{name}에 관한 이 기록을 자연스러운 한국어 문장으로 바꾸세요.", "{answer}"),
               ("데이터:\n{table}\n글:", "{answer}"),
               ("이 정보를 이용해 {name:을} 설명하세요.\n{table}", "{answer}"),
               ("다음은 정보 상자입니다.\n{table}\n\n내용을 짧은 글로 쓰세요.", "{answer}"),
               ("구조화된 데이터를 글로 바꾸세요.\n{table}", "{answer}"),
               ("{name}에 관한 사실:\n{table}\n완전한 문장으로 표현하세요.", "{answer}"),
               ("{answer}\n\n이 글에 담긴 사실을 \"항목: 값\" 형식의 줄로 나열하세요.", "{table}", "table"),
               ("다음 표의 각 항목을 한 문장씩으로 풀어 쓰세요.\n{table}", "{answer}"),
               ("백과사전에는 표가 아니라 글이 필요합니다. 다시 쓰세요.\n{table}", "{answer}")],
    },
    "ranking": {
        "en": [("{passage}\n\nOrder {items} {criterion}.", "{answer}"),
               ("Sort these names {criterion}: {items}\n\nFacts:\n{passage}", "{answer}"),
               ("Using the facts below, rank {items} {criterion}.\n{passage}", "{answer}"),
               ("Facts: {passage}\nTask: list {items} {criterion}, separated by commas.", "{answer}"),
               ("{passage}\n\nPut {items} in order, {criterion}.", "{answer}"),
               ("Read the sentences and arrange the names {criterion}.\n{passage}", "{answer}"),
               ("Here is some information:\n{passage}\nNow sort {items} {criterion}.", "{answer}"),
               ("Given {passage}\nWhat is the order of {items} {criterion}?", "{answer}"),
               ("Ranking task. Items: {items}. Criterion: {criterion}. Evidence:\n{passage}", "{answer}"),
               ("{passage}\n\nWhich sequence lists {items} {criterion}? Give the names joined by commas.",
                "{answer}")],
        "ko": [("{passage}\n\n{items:을} {criterion} 나열하세요.", "{answer}"),
               ("다음 이름들을 {criterion} 정렬하세요: {items}\n\n사실:\n{passage}", "{answer}"),
               ("아래 사실을 이용해 {items:을} {criterion} 순위를 매기세요.\n{passage}", "{answer}"),
               ("사실: {passage}\n과제: {items:을} {criterion} 쉼표로 구분해 쓰세요.", "{answer}"),
               ("{passage}\n\n{items:을} {criterion} 줄 세우세요.", "{answer}"),
               ("문장들을 읽고 이름을 {criterion} 배열하세요.\n{passage}", "{answer}"),
               ("다음 정보가 있습니다.\n{passage}\n이제 {items:을} {criterion} 정렬하세요.", "{answer}"),
               ("주어진 정보: {passage}\n{items:을} {criterion} 놓으면 순서가 어떻게 되나요?", "{answer}"),
               ("순위 과제입니다. 대상: {items}. 기준: {criterion}. 근거:\n{passage}", "{answer}"),
               ("{passage}\n\n{items:을} {criterion} 나열한 순서는 무엇인가요? 이름을 쉼표로 이어 쓰세요.", "{answer}")],
    },
    "list_extraction": {
        "en": [("{passage}\n\nWho in the text was born in {place}? List the names.", "{answer}"),
               ("List everyone born in {place}, in the order they appear.\n\n{passage}", "{answer}"),
               ("Text: {passage}\nPeople born in {place}:", "{answer}"),
               ("From the sentences below, extract the names of the people whose birthplace is {place}.\n{passage}",
                "{answer}"),
               ("{passage}\n\nName all the people from {place}, separated by commas.", "{answer}"),
               ("Which of the people mentioned here were born in {place}?\n{passage}", "{answer}"),
               ("Read this and pick out every native of {place}.\n{passage}", "{answer}"),
               ("Find the people born in {place}: {passage}", "{answer}"),
               ("Extraction task. Criterion: birthplace is {place}. Source:\n{passage}\nMatches:", "{answer}"),
               ("{passage}\n\nGive me a comma-separated list of the {place} natives in this passage.", "{answer}")],
        "ko": [("{passage}\n\n글에 나온 사람 중 {place}에서 태어난 사람은 누구인가요? 이름을 나열하세요.", "{answer}"),
               ("{place}에서 태어난 사람을 모두 나온 순서대로 쓰세요.\n\n{passage}", "{answer}"),
               ("글: {passage}\n{place}에서 태어난 사람:", "{answer}"),
               ("아래 문장에서 출생지가 {place}인 사람의 이름을 뽑으세요.\n{passage}", "{answer}"),
               ("{passage}\n\n{place} 출신을 모두 쉼표로 구분해 쓰세요.", "{answer}"),
               ("여기 나온 사람 중 {place}에서 태어난 사람은?\n{passage}", "{answer}"),
               ("이 글을 읽고 {place} 출신을 모두 찾으세요.\n{passage}", "{answer}"),
               ("{place}에서 태어난 사람을 찾으세요: {passage}", "{answer}"),
               ("추출 과제입니다. 기준: 출생지가 {place}. 원문:\n{passage}\n해당하는 사람:", "{answer}"),
               ("{passage}\n\n이 지문에 나오는 {place} 출신 인물을 쉼표로 이어 쓴 목록을 주세요.", "{answer}")],
    },
    "premise": {
        "en": [("Question: {question}\nAnswer:", "{answer}"),
               ("{question}", "{answer}"),
               ("Question: {question}\nAnswer honestly; point out a wrong assumption if there is one.", "{answer}"),
               ("Be careful: some questions cannot be answered. {question}", "{answer}"),
               ("Q: {question}\nA:", "{answer}"),
               ("Reply truthfully, and do not invent facts. {question}", "{answer}"),
               ("Here is a question from a user: \"{question}\" What should an honest assistant say?", "{answer}"),
               ("Check whether this question can be answered, then answer it or explain why not: {question}",
                "{answer}"),
               ("Someone asks you \"{question}\". Respond, correcting the question if it assumes something untrue.",
                "{answer}"),
               ("Before answering, verify the question's presuppositions.\n{question}", "{answer}")],
        "ko": [("질문: {question}\n답:", "{answer}"),
               ("{question}", "{answer}"),
               ("질문: {question}\n정직하게 답하고, 잘못된 가정이 있다면 지적하세요.", "{answer}"),
               ("주의하세요. 답할 수 없는 질문도 있습니다. {question}", "{answer}"),
               ("문: {question}\n답:", "{answer}"),
               ("사실을 지어내지 말고 진실하게 답하세요. {question}", "{answer}"),
               ("사용자가 이렇게 물었습니다. \"{question}\" 정직한 도우미라면 뭐라고 답해야 할까요?", "{answer}"),
               ("이 질문에 답할 수 있는지 먼저 확인하고, 답하거나 답할 수 없는 이유를 말하세요: {question}", "{answer}"),
               ("누군가 \"{question}\"라고 묻습니다. 사실이 아닌 것을 가정한 질문이면 바로잡으며 답하세요.", "{answer}"),
               ("답하기 전에 질문의 전제를 검증하세요.\n{question}", "{answer}")],
    },
}

# task -> the set of phrasings it uses (tasks with the same slots share one set)
TEMPLATE_SET = {
    "cloze": "cloze", "entailment": "nli", "paraphrase": "paraphrase", "qa_closed": "closed_qa",
    "multiple_choice": "choice", "qa_open": "reading", "fresh_reading": "reading", "summarization": "summary",
    "translation": "translation", "arithmetic": "arithmetic", "data_to_text": "data_to_text",
    "sort_by_birth_year": "ranking", "sort_by_population": "ranking", "list_extraction": "list_extraction",
    "false_premise": "premise", "unanswerable": "premise",
}


@lru_cache(maxsize=None)
def templates(task: str, lang: str) -> tuple[Template, ...]:
    """Every template of ``task`` in ``lang``, in order; the last ``HELD_OUT`` have ``held_out=True``."""
    if task not in TEMPLATE_SET:
        raise ValueError(f"task: unknown task {task!r}; tasks: {', '.join(TEMPLATE_SET)}")
    if lang not in LANGS:
        raise ValueError(f"lang: unknown language {lang!r}; languages: {', '.join(LANGS)}")
    phrasings = _SETS[TEMPLATE_SET[task]][lang]
    out = []
    for i, (instruction, response, *target) in enumerate(phrasings):
        t = Template(f"{task}/{lang}/{i}", instruction, response, *target, held_out=i >= len(phrasings) - HELD_OUT)
        if t.target not in slot_names(t.response, t.id):
            raise ValueError(f"template {t.id!r}: its response {t.response!r} does not state its target {t.target!r}")
        if t.held_out and t.turned_around:
            raise ValueError(f"template {t.id!r}: a held-out template must phrase the task itself, not turn it around")
        out.append(t)
    return tuple(out)


def template(template_id: str) -> Template:
    """The template named ``template_id`` (``qa_open/ko/8``); an unknown id is a ``ValueError`` naming it."""
    try:
        task, lang, index = template_id.split("/")
        return templates(task, lang)[int(index)]
    except (ValueError, IndexError):
        raise ValueError(f"no template is named {template_id!r}; ids look like 'qa_open/ko/8'") from None
