"""Tokenizers, saved as ``PreTrainedTokenizerFast`` so every HF tool can load them.

``char_tokenizer`` (chapter 00) gives one token per character. The course tokenizer
(chapter 03) is a byte-level BPE trained on the bilingual world with ``tokenizers``;
``train_bpe`` is the same algorithm from scratch, for teaching, and learns the same merges.
"""

from __future__ import annotations

import json

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` plus pad, begin, end and unknown tokens.

    The smallest honest tokenizer: ids 0..3 are the special tokens, then the
    characters in the order given. Characters outside the alphabet become ``<unk>``.
    """
    chars = list(dict.fromkeys(alphabet))
    if not chars:
        raise ValueError("char_tokenizer needs a non-empty alphabet")
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, UNK, *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split between every pair of characters, keeping each as its own piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )


# --------------------------------------------------------------------------- byte-level BPE

EOT = "<|endoftext|>"  # separates packed documents; also the begin and end token of the base model
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")  # chat roles (chapter 06 onwards)


def sentinel(i: int) -> str:
    """T5's span-corruption sentinel number ``i`` (chapter 04): ``<extra_id_0>``, ``<extra_id_1>``, ..."""
    return f"<extra_id_{i}>"


def special_tokens(num_sentinels: int) -> list[str]:
    """The course's special tokens in id order: pad, end of text, chat roles, then the sentinels."""
    return [PAD, EOT, *CHAT_TOKENS, *(sentinel(i) for i in range(num_sentinels))]


# GPT-2's pre-tokenizer: contractions, letter runs, digit runs, punctuation runs, whitespace.
# A letter run takes one leading space with it, so " world" is one word; Korean eojeol (어절) are letter runs too.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (``" "`` -> ``"Ġ"``, ``"\\n"`` -> ``"Ċ"``).

    Printable Latin-1 bytes map to themselves; the other 68 are shifted to code points 256.. so
    that every byte is one visible character and a byte string is an ordinary string.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


_BYTE_CHARS = bytes_to_unicode()


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 words and spell each word's UTF-8 bytes as byte characters.

    Equals ``tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)`` (a test checks it).
    A Hangul syllable is three UTF-8 bytes, so it starts as three symbols.
    """
    import regex  # the `regex` package (a transformers dependency) knows \p{L}; `re` does not

    return ["".join(_BYTE_CHARS[b] for b in word.encode("utf-8")) for word in regex.findall(GPT2_SPLIT, text)]


def train_bpe(
    texts, vocab_size: int, *, special: list[str] = (), min_frequency: int = 0
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE from scratch: ``(vocab, merges)`` learned from ``texts``.

    1. Pre-tokenize each text into words of byte characters and count the words.
    2. Ids: the special tokens, then all 256 byte characters sorted by code point.
    3. Repeat until the vocabulary has ``vocab_size`` entries: count every adjacent
       pair of symbols in every word (times the word's count), merge the most frequent
       pair everywhere (left to right) and give the new symbol the next id.

    This learns exactly the merges of ``tokenizers``' ``BpeTrainer`` when the two agree
    on the rules that decide a merge (``tests/test_tokenization.py`` checks it):
    - the same words: GPT-2's split and byte characters (``pretokenize``), no normalizer;
    - the same initial ids: special tokens first, then the byte alphabet sorted by code
      point (``initial_alphabet=ByteLevel.alphabet()``, no ``limit_alphabet``);
    - pair counts over overlapping windows ("aaa" holds the pair (a, a) twice);
    - ties in count go to the pair with the smaller ids, compared first id first;
    - a merge whose string already exists reuses that id (the vocabulary grows by one less);
    - stop at ``vocab_size`` entries or when the best count is below ``min_frequency``
      (or zero).
    """
    word_counts: dict[str, int] = {}
    for text in texts:
        for word in pretokenize(text):
            word_counts[word] = word_counts.get(word, 0) + 1
    vocab: dict[str, int] = {}
    for tok in [*special, *sorted(_BYTE_CHARS.values())]:
        vocab.setdefault(tok, len(vocab))
    words = [(list(word), count) for word, count in word_counts.items()]  # each word as a list of symbols
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        counts: dict[tuple[str, str], int] = {}
        for symbols, count in words:
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + count
        if not counts:
            break
        # Highest count first; on a tie, the smallest (id of left, id of right).
        best = min(counts, key=lambda p: (-counts[p], vocab[p[0]], vocab[p[1]]))
        if counts[best] < max(1, min_frequency):
            break
        merged = best[0] + best[1]
        vocab.setdefault(merged, len(vocab))
        merges.append(best)
        for symbols, _ in words:
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i : i + 2] = [merged]
                i += 1
    return vocab, merges


def bpe_encode(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """Token ids of ``text`` under a learned BPE: in each word, apply the earliest-learned merge first."""
    rank = {pair: i for i, pair in enumerate(merges)}
    ids = []
    for word in pretokenize(text):
        symbols = list(word)
        while len(symbols) > 1:
            pairs = [(rank.get(p, len(rank)), i) for i, p in enumerate(zip(symbols, symbols[1:]))]
            best_rank, i = min(pairs)
            if best_rank == len(rank):
                break
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        ids += [vocab[s] for s in symbols]
    return ids


def bpe_merges(tokenizer) -> list[tuple[str, str]]:
    """The merges of a ``tokenizers`` BPE (or a fast HF tokenizer wrapping one), in learned order."""
    tok = getattr(tokenizer, "backend_tokenizer", tokenizer)
    data = json.loads(tok.to_str())
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]


def byte_level_bpe(
    texts, vocab_size: int, *, special: list[str] = (), min_frequency: int = 0
) -> Tokenizer:
    """A ``tokenizers`` byte-level BPE trained on ``texts`` (GPT-2's pre-tokenizer and decoder)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_tokenizer(
    texts, vocab_size: int, *, num_sentinels: int = 0, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """The course tokenizer: byte-level BPE on ``texts`` with the course's special tokens.

    Ids 0.. are ``<pad>``, ``<|endoftext|>`` (begin, end and separator), the chat roles
    and ``num_sentinels`` sentinels; then the 256 bytes; then the merges. Any text
    encodes (unknown characters fall back to bytes), so there is no unknown token.
    """
    specials = special_tokens(num_sentinels)
    tok = byte_level_bpe(texts, vocab_size, special=specials, min_frequency=min_frequency)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=EOT,
        eos_token=EOT,
        extra_special_tokens=specials[2:],
        model_max_length=1 << 30,  # blocks are cut by the packer, not the tokenizer
    )


def tokens_per_character(tokenizer, texts) -> float:
    """Tokens per Unicode character of ``texts`` (no special tokens): lower means less fragmentation."""
    texts = list(texts)
    chars = sum(len(t) for t in texts)
    if not chars:
        raise ValueError("tokens_per_character needs non-empty texts")
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return tokens / chars
