"""Byte-level BPE: the from-scratch trainer learns the merges of Hugging Face `tokenizers`; the course tokenizer."""

import pytest
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer

from course_lib.config import load_config
from course_lib.tokenization import (
    EOT,
    PAD,
    bpe_encode,
    bpe_merges,
    byte_level_bpe,
    bytes_to_unicode,
    char_tokenizer,
    pretokenize,
    sentinel,
    special_tokens,
    tokens_per_character,
    train_bpe,
    train_tokenizer,
)
from course_lib.world import build_world


@pytest.fixture(scope="module")
def world_texts():
    docs = build_world(load_config("ci").world).documents
    return [d.text for d in docs if d.in_pretraining][:60]


def test_char_tokenizer_still_maps_one_character_to_one_token():
    tok = char_tokenizer("ab")
    assert tok.convert_ids_to_tokens(tok.encode("abz")) == ["a", "b", "<unk>"]


def test_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert sorted(table.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


def test_pretokenize_equals_tokenizers_byte_level(world_texts):
    reference = pre_tokenizers.ByteLevel(add_prefix_space=False)
    extra = ["it's  two\n\n spaces 12,300원!", "주발은 니졸에 있는 도시이다.\t끝  "]
    for text in world_texts + extra:
        assert pretokenize(text) == [w for w, _ in reference.pre_tokenize_str(text)]
    assert pretokenize("한") == ["íķľ"]  # one Hangul syllable = three UTF-8 bytes = three symbols


@pytest.mark.parametrize("min_frequency", [0, 3])
def test_from_scratch_bpe_learns_the_merges_of_tokenizers(world_texts, min_frequency):
    special = special_tokens(2)
    vocab, merges = train_bpe(world_texts, 700, special=special, min_frequency=min_frequency)
    reference = byte_level_bpe(world_texts, 700, special=special, min_frequency=min_frequency)
    assert len(merges) > 200
    assert merges == bpe_merges(reference)
    assert vocab == reference.get_vocab()
    for text in world_texts[:10]:
        assert bpe_encode(text, vocab, merges) == reference.encode(text).ids


def test_ties_overlaps_and_repeated_strings_follow_tokenizers():
    # "aaaa" holds the pair (a, a) three times (overlapping windows) but merges into two "aa";
    # many pairs tie ("xy" and "yx" both twice): the pair with the smaller ids wins.
    corpus = ["aaaa aaa ab ba abab ababab bab ==== ====", "xy yx xy yx"]
    vocab, merges = train_bpe(corpus, 300)
    reference = byte_level_bpe(corpus, 300)
    assert merges == bpe_merges(reference)
    assert vocab == reference.get_vocab()


def test_course_tokenizer_special_tokens_and_round_trip(world_texts, tmp_path):
    tok = train_tokenizer(world_texts, 600, num_sentinels=4)
    assert tok.convert_ids_to_tokens(list(range(6))) == [PAD, EOT, "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 1)
    assert tok.convert_tokens_to_ids(sentinel(3)) == 9 and tok.unk_token is None
    text = "Jubal is a city in Nijol. 주발은 니졸에 있는 도시이다. 😀 ünïcödé"
    assert tok.decode(tok.encode(text)) == text  # bytes cover any text: no unknown token
    assert tok.encode("<|user|>hi<extra_id_0>")[0] == 3 and tok.encode("<|user|>hi<extra_id_0>")[-1] == 6
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode(text) == tok.encode(text) and again.eos_token == EOT and again.pad_token == PAD


def test_tokens_per_character_counts_bytes_without_merges():
    bytes_only = train_tokenizer(["x"], 300)  # too little text for any merge: one token per byte
    assert tokens_per_character(bytes_only, ["한국어", "abc"]) == pytest.approx((9 + 3) / 6)
    assert tokens_per_character(bytes_only, ["주발"]) == 3.0
    with pytest.raises(ValueError):
        tokens_per_character(bytes_only, [""])
