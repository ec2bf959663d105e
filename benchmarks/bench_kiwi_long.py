"""Korean word splitting (Kiwi) on one long document: characters per second at 10k, 100k and 1M characters.

Kiwi's time grows faster than the length of one input (issue #18: 300k characters 18.9 s, 600k 67.3 s),
so ``filters.words`` splits a Korean document into pieces of at most ``filters.KIWI_CHUNK_CHARS``
characters (after a line break, a sentence end or a space) and tokenizes those. The table compares it
with Kiwi given the whole document at once, in the same run, on the same text: the course world's
Korean documents joined by blank lines and repeated to the length. Kiwi's model is loaded before timing;
the word cache is cleared before each run. The whole-document runs stop at ``--whole-max`` characters
(one million takes minutes).

    python benchmarks/bench_kiwi_long.py                    # 10k, 100k, 1M; about five minutes
    python benchmarks/bench_kiwi_long.py --whole-max 100000 # the whole-document baseline up to 100k only
"""

import argparse
import time

from course_lib.config import load_config
from course_lib.curation import filters
from course_lib.world import load


def korean_document(n_chars: int, config) -> str:
    """The world's Korean documents joined by blank lines, repeated and cut to ``n_chars`` characters."""
    base = "\n\n".join(d["text"] for d in load("documents", config) if d["lang"] == "ko")
    return (base * (n_chars // len(base) + 1))[:n_chars]


def chars_per_second(split, text: str) -> float:
    filters.clear_words_cache()
    start = time.perf_counter()
    split(text)
    return len(text) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", help="the world whose Korean documents make the text")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--whole-max", type=int, default=1_000_000, help="longest text Kiwi gets whole")
    args = parser.parse_args()
    config = load_config(args.profile)
    filters.words("가", "ko")  # load Kiwi's model outside the timing
    print(f"| characters | course, pieces of {filters.KIWI_CHUNK_CHARS:,} (chars/s) | Kiwi, whole (chars/s) "
          "| ratio |\n|---:|---:|---:|---:|")
    for n in args.sizes:
        text = korean_document(n, config)
        course = chars_per_second(lambda t: filters.words(t, "ko"), text)
        whole = chars_per_second(filters.kiwi().tokenize, text) if n <= args.whole_max else None
        shown = f"{whole:,.0f} | {course / whole:.1f}x" if whole else "not run | -"
        print(f"| {n:,} | {course:,.0f} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
