"""De-identification (개인정보 비식별화): find personal data in text and mask it with typed placeholders.

Detectors, one per type (``PII_TYPES``):

- ``email``: ``local@domain.tld`` with ASCII-only parts, so a Korean particle
  written right after an address (``...@example.com으로``) stays outside it;
- ``phone_kr`` / ``phone_intl``: ``phonenumbers.PhoneNumberMatcher`` with
  default region KR (Korean domestic formats 010-..., 02-..., 031-... and any
  ``+CC`` number); a number whose region is KR is ``phone_kr``, else ``phone_intl``;
- ``ip``: IPv4 (four octets 0..255) and IPv6 (validated by ``ipaddress``);
- ``rrn``: Korean resident registration numbers (주민등록번호) ``YYMMDD-GNNNNNN``:
  the date must exist for the century the gender digit G gives; a valid check
  digit gives confidence 1.0. Numbers issued since October 2020 carry no check
  digit, so a number with a valid date but a failed checksum is still masked,
  with lower confidence (``RRN_CONFIDENCE``);
- ``card``: payment card numbers (13..19 digits in the usual groupings, a known
  issuer prefix and a valid Luhn check digit).

Detectors read the text after Unicode compatibility normalization (``fold``):
NFKC per character (full-width digits and letters, ``＠``, ideographic spaces),
every dash variant as ``-`` (en dash, minus sign, ...) and a hyphen between
digits without the spaces around it (``010 - 1234``); each span is mapped back,
so masking replaces exactly the original characters. A span never includes
punctuation around the item (``신청인(011-3922-4615)은`` masks the number, not
the bracket); a bracket closed inside it (``(02) 123-4567``) stays.

All offsets are Python string indices (Unicode code points), so they stay right
in mixed Korean/English text. Number boundaries are "not an ASCII letter or
digit" rather than ``\\b``, because ``\\b`` sees Hangul as a word character and
would refuse ``221104-3677943입니다``. Placeholders (``[EMAIL]``, ``[RRN]``, ...)
contain no digit or ``@``, so masking is idempotent: ``mask(mask(t).text) == mask(t)``.
"""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from .. import checks

PII_TYPES = ("email", "phone_kr", "phone_intl", "ip", "rrn", "card")
PLACEHOLDERS = {t: f"[{t.upper()}]" for t in PII_TYPES}
# confidence of an RRN match by what checks it passes
RRN_CONFIDENCE = {"checksum": 1.0, "post2020": 0.9, "date_only": 0.6}
# detectors run in this order; a later match overlapping an earlier one is dropped
_PRIORITY = ("email", "rrn", "card", "phone_kr", "phone_intl", "ip")


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data: ``text[start:end]`` (code point offsets) of ``type``."""

    start: int
    end: int
    type: str
    confidence: float = 1.0

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "type": self.type, "confidence": self.confidence}


# ---------------------------------------------------------------------- e-mail

EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                      r"(?![A-Za-z0-9-])")


def find_emails(text: str) -> list[PiiSpan]:
    return [PiiSpan(m.start(), m.end(), "email") for m in EMAIL_RE.finditer(text)]


# ---------------------------------------------------------------------- phone numbers


def find_phones(text: str, region: str = "KR") -> list[PiiSpan]:
    """Phone numbers that ``phonenumbers`` deems valid; numbers without ``+CC`` are read as ``region``'s."""
    spans = []
    for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        kind = "phone_kr" if phonenumbers.region_code_for_number(m.number) == "KR" else "phone_intl"
        spans.append(PiiSpan(m.start, m.end, kind))
    return spans


# ---------------------------------------------------------------------- IP addresses

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_RE = re.compile(rf"(?<![A-Za-z0-9.]){_OCTET}(?:\.{_OCTET}){{3}}(?![A-Za-z0-9]|\.\d)")
IPV6_RE = re.compile(r"(?<![A-Za-z0-9:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![A-Za-z0-9:])")


def find_ips(text: str) -> list[PiiSpan]:
    spans = [PiiSpan(m.start(), m.end(), "ip") for m in IPV4_RE.finditer(text)]
    for m in IPV6_RE.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        spans.append(PiiSpan(m.start(), m.end(), "ip"))
    return spans


# ---------------------------------------------------------------------- resident registration numbers

RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
RRN_CHANGE = dt.date(2020, 10, 1)  # numbers issued from this day on end in random digits
# 7th digit -> century of birth: 1-4 citizens, 5-8 foreign residents (외국인등록번호, same format).
# 9 and 0 (born in the 1800s) are left out: nobody alive holds one, and they let look-alikes in.
RRN_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}
# with a hyphen (or a space) any valid date counts; 13 bare digits must also pass the checksum
RRN_RE = re.compile(r"(?<![A-Za-z0-9-])(\d{6})([- ]?)(\d{7})(?![A-Za-z0-9]|-\d)")


def rrn_check_digit(first12: str) -> int:
    """The 13th digit of a pre-October-2020 RRN: ``(11 - sum(d_i * w_i) mod 11) mod 10``."""
    total = sum(int(d) * w for d, w in zip(first12, RRN_WEIGHTS))
    return (11 - total % 11) % 10


def rrn_checksum_ok(rrn: str) -> bool:
    digits = rrn.replace("-", "").replace(" ", "")
    return len(digits) == 13 and digits.isdigit() and rrn_check_digit(digits[:12]) == int(digits[12])


def rrn_birth_date(rrn: str) -> dt.date | None:
    """The birth date an RRN encodes (century from the 7th digit), or None if no such date exists."""
    digits = rrn.replace("-", "").replace(" ", "")
    century = RRN_CENTURY.get(digits[6:7])
    if century is None or not digits[:6].isdigit():
        return None
    try:
        return dt.date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def rrn_confidence(rrn: str) -> float:
    """How sure we are that ``rrn`` is a resident registration number (0.0: it is not one).

    1.0 valid date and check digit; 0.9 valid date on or after October 2020
    with a failed checksum (the new scheme has no check digit); 0.6 valid
    earlier date with a failed checksum (a typo, or a new number for an older
    person); 0.0 impossible date.
    """
    born = rrn_birth_date(rrn)
    if born is None:
        return 0.0
    if rrn_checksum_ok(rrn):
        return RRN_CONFIDENCE["checksum"]
    return RRN_CONFIDENCE["post2020" if born >= RRN_CHANGE else "date_only"]


def find_rrns(text: str) -> list[PiiSpan]:
    spans = []
    for m in RRN_RE.finditer(text):
        conf = rrn_confidence(m.group(1) + m.group(3))
        if conf and (m.group(2) or conf == RRN_CONFIDENCE["checksum"]):
            spans.append(PiiSpan(m.start(), m.end(), "rrn", conf))
    return spans


# ---------------------------------------------------------------------- card numbers

# 4-4-4-4(-3) with one separator kind, Amex 4-6-5, or 13..19 bare digits
CARD_RE = re.compile(r"(?<![A-Za-z0-9-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ -])\d{6}\2\d{5}|\d{13,19})"
                     r"(?![A-Za-z0-9]|-\d)")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35")  # Visa, MC, Amex, Diners, Discover, JCB


def luhn_ok(digits: str) -> bool:
    """Luhn check: double every second digit from the right, sum digit sums; valid iff the total is 0 mod 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def find_cards(text: str) -> list[PiiSpan]:
    spans = []
    for m in CARD_RE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_ok(digits):
            spans.append(PiiSpan(m.start(), m.end(), "card"))
    return spans


# ---------------------------------------------------------------------- compatibility normalization

# written for a hyphen in numbers: hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar,
# minus sign, small and full-width hyphen-minus
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_SPACED_HYPHEN = re.compile(r"(?<=\d)( {1,2})?-( {1,2})?(?=\d)")


class _FoldTable(dict):
    """A ``str.translate`` table: code point -> its NFKC form, a dash variant -> "-"; filled on first sight."""

    def __missing__(self, code_point: int) -> str:
        ch = chr(code_point)
        self[code_point] = out = "-" if ch in DASHES else unicodedata.normalize("NFKC", ch)
        return out


_FOLD = _FoldTable()


def fold(text: str) -> tuple[str, list[int] | None]:
    """``text`` as the detectors read it, and the index in ``text`` of each of its characters (None when the
    two line up one to one): NFKC per character, dashes as "-", no spaces around a hyphen between digits."""
    folded = text.translate(_FOLD)
    origin = None
    if len(folded) != len(text):  # a character became several ("㈜" -> "(주)")
        origin = [i for i, ch in enumerate(text) for _ in range(len(_FOLD[ord(ch)]))]
    spaces = {i for m in _SPACED_HYPHEN.finditer(folded) for g in (1, 2) if m.group(g) for i in range(*m.span(g))}
    if spaces:
        origin = [o for i, o in enumerate(origin or range(len(folded))) if i not in spaces]
        folded = "".join(ch for i, ch in enumerate(folded) if i not in spaces)
    return folded, origin


_EDGE_MARKS = ",.;!?'\"、。·"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without the punctuation at its edges (brackets, quotes, commas, full stops) that a
    detector took with it; a bracket closed inside the span stays."""
    def edge(ch: str) -> bool:  # not ":", which ends an IPv6 address (2001:db8::)
        return unicodedata.category(ch) in ("Ps", "Pe", "Pi", "Pf") or ch in _EDGE_MARKS

    while start < end and edge(text[start]) and not (text[start] == "(" and ")" in text[start:end]):
        start += 1
    while end > start and edge(text[end - 1]) and not (text[end - 1] == ")" and "(" in text[start:end]):
        end -= 1
    return start, end


# ---------------------------------------------------------------------- all together

_FINDERS = {"email": find_emails, "rrn": find_rrns, "card": find_cards, "phone": find_phones, "ip": find_ips}


def find_pii(text: str, types: tuple[str, ...] = PII_TYPES) -> list[PiiSpan]:
    """Non-overlapping personal-data spans in ``text``, sorted by start; offsets into ``text`` itself.

    Detectors read ``fold(text)``; overlaps are resolved by ``_PRIORITY`` (an e-mail beats a phone number
    inside it). ``types``: a tuple of names from ``PII_TYPES`` (an unknown name is a ``ValueError``).

    An item can hide behind another: ``phonenumbers`` refuses ``960121-1021413)010-3922-4615`` as one run
    of digits, but finds the phone number once the RRN is masked. So the text is searched again with the
    spans found so far blanked out as placeholders look (``[ ... ]``, same length), until nothing new turns
    up; then the masked text holds nothing detectable.
    """
    text, types = checks.text("text", text), checks.names("types", types, PII_TYPES)
    taken = _detect(text, types)
    while taken and (more := [s for s in _detect(_blank(text, taken), types)
                               if not any(_overlap(s, t) for t in taken)]):
        taken += more
    return sorted(taken, key=lambda s: s.start)


def _overlap(a: PiiSpan, b: PiiSpan) -> bool:
    return a.start < b.end and b.start < a.end


def _detect(text: str, types: tuple[str, ...]) -> list[PiiSpan]:
    """One pass of the detectors of ``types`` over ``fold(text)``: non-overlapping spans of ``text``."""
    folded, origin = fold(text)
    found = []
    for name, finder in _FINDERS.items():
        if any(t == name or t.startswith(name + "_") for t in types):
            found += [_original(folded, s, origin) for s in finder(folded) if s.type in types]
    return _non_overlapping([s for s in found if s.end > s.start])  # trimmed to nothing: punctuation only


def _non_overlapping(spans: list[PiiSpan]) -> list[PiiSpan]:
    """The spans kept by ``_PRIORITY``, then by position: a span overlapping one kept before it goes."""
    taken: list[PiiSpan] = []
    for s in sorted(spans, key=lambda s: (_PRIORITY.index(s.type), s.start)):
        if not any(_overlap(s, t) for t in taken):
            taken.append(s)
    return taken


def _blank(text: str, spans: list[PiiSpan]) -> str:
    """``text`` with each span replaced by ``[``, spaces, ``]`` of the same length (offsets stay valid)."""
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[pos:s.start], "[" + " " * (s.end - s.start - 2) + "]" if s.end - s.start > 1 else "["]
        pos = s.end
    return "".join(out + [text[pos:]])


def _original(folded: str, span: PiiSpan, origin: list[int] | None) -> PiiSpan:
    """``span`` of the folded text trimmed of edge punctuation, with the offsets of the original text."""
    start, end = _trim(folded, span.start, span.end)
    if origin is not None:
        start, end = origin[start], origin[end - 1] + 1
    return PiiSpan(start, end, span.type, span.confidence)


@dataclass
class Masked:
    """The masked text, the spans found in the *original* text, and a count per type."""

    text: str
    spans: list[PiiSpan]
    counts: collections.Counter


def mask(text: str, types: tuple[str, ...] = PII_TYPES, min_confidence: float = 0.0) -> Masked:
    """Replace each personal-data span with its type's placeholder (``[EMAIL]``, ``[PHONE_KR]``, ``[RRN]``, ...).

    Spans with ``confidence < min_confidence`` are left in place (and not counted).
    """
    spans = [s for s in find_pii(text, types) if s.confidence >= min_confidence]
    out, pos = [], 0
    for s in spans:
        out += [text[pos:s.start], PLACEHOLDERS[s.type]]
        pos = s.end
    out.append(text[pos:])
    return Masked("".join(out), spans, collections.Counter(s.type for s in spans))


# ---------------------------------------------------------------------- evaluation against labels

# the world's label types -> ours (an RRN issued after 2020 is still an RRN)
LABEL_TYPES = {"email": "email", "phone_kr": "phone_kr", "phone_intl": "phone_intl", "ip": "ip", "rrn": "rrn",
               "rrn_post2020": "rrn"}


def evaluate(texts: list[str], labels: list[list[dict]], types: tuple[str, ...] = PII_TYPES) -> dict[str, dict]:
    """Exact-span precision and recall per type (and ``all``) against labelled spans.

    ``labels[i]`` holds dicts with ``start``, ``end``, ``type`` (the world's
    ``pii`` column). A prediction counts as a true positive only if its start,
    end and (mapped) type equal a label's. Returns ``{type: {"tp", "fp", "fn",
    "precision", "recall"}}``; precision is 1.0 when nothing was predicted.
    """
    texts, types = checks.texts("texts", texts), checks.names("types", types, PII_TYPES)
    labels = checks.sequence("labels", labels, "lists of labelled spans")
    if len(labels) != len(texts):
        raise ValueError(f"labels: expected one list of spans per text ({len(texts)}), got {len(labels)}")
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    for text, spans in zip(texts, labels):
        gold = {(s["start"], s["end"], LABEL_TYPES[s["type"]]) for s in spans}
        pred = {(s.start, s.end, s.type) for s in find_pii(text, types)}
        for key, bucket in ((gold & pred, tp), (pred - gold, fp), (gold - pred, fn)):
            for _, _, t in key:
                bucket[t] += 1
                bucket["all"] += 1
    out = {}
    for t in types + ("all",):
        p, r = tp[t] + fp[t], tp[t] + fn[t]
        out[t] = {"tp": tp[t], "fp": fp[t], "fn": fn[t],
                  "precision": tp[t] / p if p else 1.0, "recall": tp[t] / r if r else 1.0}
    return out
