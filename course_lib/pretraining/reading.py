"""Reading rows: worked exercises about people no one can remember, so that only reading the passage answers them.

The world's task pages (chapter 01) hold reading-comprehension examples about the
world's own people, but a model sees each page many times and can answer them from
memory. A ``ReadingRows`` row is a page of such exercises about *invented* people, a
new set in every row, drawn when the row is read: the passage is the only place the
answer is, so the loss rewards copying from the context (a span of the passage, or the
person's name itself) over recalling.

The rows keep the evaluation honest the way the task pages do: questions use the task
pages' own phrasings (never the tasks' templates), passages use the world's statement
phrasings without the held-out last one, and no invented name is a world name or one
of the fresh names that chapter 03 and later chapters ask about (``world.fresh_names``).
"""

from __future__ import annotations

import random

import torch

from ..world.entities import fill_template
from ..world.fresh import FRESH_RELATIONS, fresh_values, new_person, reserved_names
from ..world.names import NameBook
from ..world.task_pages import ASK, FIELD_NAMES, TELL, WORDS, fill
from ..world.templates import STATEMENTS

READING_STREAM = "reading"  # the rows' random stream, apart from the world's and the copy rows'
WHO = {"en": ["Who is the passage about?", "Name the person in the passage."],
       "ko": ["지문은 누구에 관한 글인가?", "지문에 나오는 인물의 이름을 쓰시오."]}


class ReadingRows(torch.utils.data.Dataset):
    """``size`` rows of ``block_size`` tokens, each a page of reading exercises about invented people.

    Row ``i`` is drawn from its own generator (seeded by ``seed`` and ``i``), in Korean
    with probability ``ko_fraction``. An exercise: a passage of two to four facts about a
    new person (values from the world: its cities, organizations, occupations, birth
    years), a question about one fact, or about the person's name, and the answer.
    Exercises follow each other until the row is full (the last one is cut). Rows have
    the keys of ``PackedBlocks`` rows (``input_ids``, ``labels``, ``position_ids``; one
    document), so they mix with text blocks.
    """

    def __init__(self, size: int, block_size: int, tokenizer, world, *, seed: int = 0, ko_fraction: float = 0.5):
        if size < 1 or block_size < 8:
            raise ValueError(f"ReadingRows needs size >= 1 and block_size >= 8, got {size}, {block_size}")
        self.size, self.block_size, self.tokenizer = size, block_size, tokenizer
        self.seed, self.ko_fraction = seed, ko_fraction
        self.values = {lang: fresh_values(world, lang) for lang in ("en", "ko")}
        self.taken = reserved_names(world, seed)

    def __len__(self) -> int:
        return self.size

    def exercise(self, rng: random.Random, book: NameBook, lang: str, number: int) -> str:
        """One worked exercise about a new person: passage, question, answer (page furniture of ``lang``)."""
        w, name = WORDS[lang], new_person(book, self.taken)
        s = name.en if lang == "en" else name.ko
        told = rng.sample(FRESH_RELATIONS, rng.randint(2, 4))
        value = {r: rng.choice(self.values[lang][r]) for r in told}
        sentences = []
        for r in told:
            if rng.random() < 0.5:
                sentences.append(fill_template(rng.choice(STATEMENTS[r][lang][:-1]), lang, s, value[r]))
            else:
                sentences.append(fill(rng.choice(TELL[lang]), lang, s=s, r=rng.choice(FIELD_NAMES[r][lang]), o=value[r]))
        if rng.random() < 0.25:
            question, answer = rng.choice(WHO[lang]), s
        else:
            asked = rng.choice(told)
            question = fill(rng.choice(ASK[lang]), lang, s=s, r=rng.choice(FIELD_NAMES[asked][lang]))
            answer = value[asked]
        return (f"{w['example']} {number}. {w['read']}\n{w['passage']}: {' '.join(sentences)}\n"
                f"{w['question']}: {question}\n{w['answer']}: {answer}\n\n")

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.size:
            raise IndexError(i)
        rng = random.Random(f"{self.seed}|{READING_STREAM}|{i}")
        book = NameBook(rng)
        lang = "ko" if rng.random() < self.ko_fraction else "en"
        ids, number = [self.tokenizer.eos_token_id], 1
        while len(ids) < self.block_size:
            ids += self.tokenizer(self.exercise(rng, book, lang, number), add_special_tokens=False)["input_ids"]
            number += 1
        ids = torch.tensor(ids[: self.block_size])
        return {"input_ids": ids, "labels": ids.clone(), "position_ids": torch.arange(self.block_size)}
