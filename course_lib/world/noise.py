"""Labelled noise for web pages: low-quality text, personal data, duplicates and URL variants.

Each injector appends to a page's ``TextBuilder``; the caller records the
matching quality flag, so every document's labels are exactly what was done to
it (rates and order in ``world._web_documents``). Personal
data goes in as labelled pieces, so its spans are exact; *look-alikes* (an
RRN-shaped number with an impossible date, an order id, an ISBN, a version
number, an @handle) go in as plain text and are deliberately not labelled.
"""

from __future__ import annotations

import datetime as dt
import random
from urllib.parse import parse_qsl, urlencode, urlsplit

from .documents import Document, TextBuilder
from .hangul import compose, particle

QUALITY_FLAGS = ("boilerplate", "keyword_spam", "repeated_lines", "repeated_ngrams", "lorem_ipsum", "gibberish",
                 "code_in_prose", "exact_duplicate", "near_duplicate", "url_variant")
PII_TYPES = ("email", "phone_kr", "phone_intl", "ip", "rrn", "rrn_post2020")
MIRROR_SUFFIX = "archive-mirror.net"
TRACKING_PARAMS = ("fbclid", "gclid", "ref", "source")

# ---------------------------------------------------------------------- resident registration numbers

RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
RRN_CHANGE = dt.date(2020, 10, 1)  # numbers issued from here on end in random digits, no check digit


def rrn_check_digit(first12: str) -> int:
    """The 13th digit of a pre-October-2020 resident registration number."""
    total = sum(int(d) * w for d, w in zip(first12, RRN_WEIGHTS))
    return (11 - total % 11) % 10


def rrn_checksum_ok(rrn: str) -> bool:
    digits = rrn.replace("-", "")
    return len(digits) == 13 and digits.isdigit() and rrn_check_digit(digits[:12]) == int(digits[12])


def rrn_birth_date(rrn: str) -> dt.date | None:
    """The birth date an RRN encodes (century from the 7th digit), or None if it is impossible."""
    digits = rrn.replace("-", "")
    century = {"9": 1800, "0": 1800, "1": 1900, "2": 1900, "5": 1900, "6": 1900,
               "3": 2000, "4": 2000, "7": 2000, "8": 2000}.get(digits[6:7])
    if century is None:
        return None
    try:
        return dt.date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def _gender_digit(rng: random.Random, year: int) -> str:
    return rng.choice("12" if year < 2000 else "34")


def make_rrn(rng: random.Random) -> str:
    """A valid pre-2020 RRN: YYMMDD-G + 5 digits + check digit."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 79))
    first = born.strftime("%y%m%d") + _gender_digit(rng, born.year) + "".join(rng.choices("0123456789", k=5))
    return f"{first[:6]}-{first[6:]}{rrn_check_digit(first)}"


def make_rrn_post2020(rng: random.Random, latest: dt.date) -> str:
    """An RRN issued after October 2020 (to a baby born by ``latest``): birth date, gender digit, six random digits.

    Such numbers carry no check digit; we draw tails that happen to fail the old
    checksum so the two kinds stay distinguishable in the labels.
    """
    born = RRN_CHANGE + dt.timedelta(days=rng.randrange(max(1, (latest - RRN_CHANGE).days)))
    while True:
        first = born.strftime("%y%m%d") + _gender_digit(rng, born.year)
        tail = "".join(rng.choices("0123456789", k=6))
        if not rrn_checksum_ok(first + tail):
            return f"{first[:6]}-{first[6:]}{tail}"


def make_rrn_lookalike(rng: random.Random) -> str:
    """An RRN-shaped number with an impossible date (month 13, day 32, February 30) and a valid checksum."""
    yy = rng.randrange(100)
    mmdd = rng.choice([f"{rng.randint(13, 19)}{rng.randint(1, 28):02d}", f"{rng.randint(1, 12):02d}{rng.randint(32, 39)}",
                       "0230", "0231", "0431", "0000"])
    first = f"{yy:02d}{mmdd}" + rng.choice("1234") + "".join(rng.choices("0123456789", k=5))
    return f"{first[:6]}-{first[6:]}{rrn_check_digit(first)}"


# ---------------------------------------------------------------------- other personal data

# reserved example domains (RFC 2606), so no generated address can belong to anyone
_EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example", "hanmail.example", "naver.example"]
_AREA_CODES = ["031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054", "055", "061", "062",
               "063", "064"]


def make_email(rng: random.Random, person: str) -> str:
    """An address built from a person's Latin name (``Seora Mun`` -> ``seora.mun@example.com``)."""
    given, family = person.lower().split()
    local = rng.choice([f"{given}.{family}", f"{family}{given}", f"{given[0]}{family}{rng.randint(1, 99)}",
                        f"{given}_{rng.randint(1970, 2005)}"])
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=n - 1))


def make_phone_kr(rng: random.Random) -> str:
    """A Korean number: mobile 010, Seoul 02, a regional area code, or an international +82 form."""
    form = rng.randrange(4)
    sep = rng.choice(["-", "-", " ", "."])
    if form == 0:
        return sep.join(["010", _digits(rng, 4), "".join(rng.choices("0123456789", k=4))])
    if form == 1:
        return "-".join(["02", _digits(rng, rng.choice((3, 4))), "".join(rng.choices("0123456789", k=4))])
    if form == 2:
        middle = _digits(rng, rng.choice((3, 4)))
        return "-".join([rng.choice(_AREA_CODES), middle, "".join(rng.choices("0123456789", k=4))])
    local = rng.choice(["10", "2", "31", "51"])
    return f"+82 {local}-{_digits(rng, 4 if local == '10' else 3)}-{''.join(rng.choices('0123456789', k=4))}"


def make_phone_intl(rng: random.Random) -> str:
    """A foreign number in the style of its country (the 555-01xx and 7946 0xxx fiction ranges where they exist)."""
    form = rng.randrange(5)
    if form == 0:
        return f"+1 {rng.choice(['212', '415', '617'])}-555-01{rng.randint(0, 99):02d}"
    if form == 1:
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    if form == 2:
        return f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if form == 3:
        return f"+49 30 {_digits(rng, 8)}"
    return f"+33 1 {' '.join(f'{rng.randint(10, 99)}' for _ in range(4))}"


def make_ip(rng: random.Random) -> str:
    """An IPv4 address (mostly) or an IPv6 address in the documentation prefix."""
    if rng.random() < 0.8:
        octets = [rng.randint(11, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
        return ".".join(str(x) for x in octets)
    return f"2001:db8:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}"


# line templates around one piece of personal data: (before, after); "{p}" marks a particle slot in Korean
_PII_LINES = {
    "email": {"en": [("Questions? Email me at ", "."), ("Contact: ", "")],
              "ko": [("문의는 ", "{으로} 보내 주세요."), ("이메일: ", "")]},
    "phone_kr": {"en": [("Call our Seoul office at ", "."), ("Phone: ", "")],
                 "ko": [("연락처: ", ""), ("전화 ", " (평일 9시-6시)")]},
    "phone_intl": {"en": [("International callers: ", ""), ("Our overseas desk: ", ".")],
                   "ko": [("해외 연락처: ", ""), ("해외 지사 ", "")]},
    "ip": {"en": [("Last edited from ", "."), ("Server: ", "")], "ko": [("접속 IP: ", ""), ("작성 IP ", "")]},
    "rrn": {"en": [("Applicant resident registration no.: ", "")],
            "ko": [("주민등록번호: ", ""), ("주민번호 ", " 확인 부탁드립니다.")]},
}
_PII_LINES["rrn_post2020"] = {"en": [("Resident registration no. (child): ", "")],
                              "ko": [("아이 주민등록번호: ", ""), ("신생아 주민번호 ", "입니다.")]}


def add_pii(tb: TextBuilder, kind: str, lang: str, rng: random.Random, person: str, latest: dt.date) -> str:
    """Append one line holding one piece of personal data of ``kind`` as a labelled span; return the data."""
    value = {"email": lambda: make_email(rng, person), "phone_kr": lambda: make_phone_kr(rng),
             "phone_intl": lambda: make_phone_intl(rng), "ip": lambda: make_ip(rng), "rrn": lambda: make_rrn(rng),
             "rrn_post2020": lambda: make_rrn_post2020(rng, latest)}[kind]()
    before, after = rng.choice(_PII_LINES[kind][lang])
    if "{으로}" in after:
        after = after.replace("{으로}", particle(value, "으로"))
    tb.add(before).add(value, kind).add(after + "\n")
    return value


def add_lookalike(tb: TextBuilder, lang: str, rng: random.Random) -> None:
    """Append a line with a number or handle that looks like personal data but is not."""
    form = rng.randrange(5)
    today = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3000))
    if form == 0:
        line = {"en": "Ticket no. ", "ko": "접수번호: "}[lang] + make_rrn_lookalike(rng)
    elif form == 1:
        line = {"en": "Order ", "ko": "주문번호 "}[lang] + f"{today:%Y%m%d}-{_digits(rng, 7)}"
    elif form == 2:
        line = f"ISBN 978-89-{_digits(rng, 4)}-{_digits(rng, 3)}-{rng.randint(0, 9)}"
    elif form == 3:
        line = {"en": "Firmware v", "ko": "펌웨어 v"}[lang] + ".".join(str(rng.randint(0, 20)) for _ in range(4))
    else:
        line = {"en": "Follow us @", "ko": "인스타 @"}[lang] + rng.choice(["worldnotes", "dailyhike", "maple_owl"])
    tb.line(line)


# ---------------------------------------------------------------------- low-quality text

_NAV = {"en": "Home | About | Blog | Contact | Login", "ko": "홈 | 소개 | 블로그 | 문의 | 로그인"}
_COOKIE = {"en": "We use cookies to improve your experience. By continuing you accept our cookie policy. [Accept]",
           "ko": "이 사이트는 더 나은 서비스를 위해 쿠키를 사용합니다. 계속 이용하시면 쿠키 정책에 동의하는 것으로 간주합니다. [동의]"}
_FOOTER = {"en": ["Share: Facebook | Twitter | Email", "Privacy Policy | Terms of Use | Sitemap",
                  "© {year} {site}. All rights reserved."],
           "ko": ["공유하기: 페이스북 | 트위터 | 이메일", "개인정보처리방침 | 이용약관 | 사이트맵",
                  "© {year} {site}. 무단 전재 및 재배포 금지."]}
_STOCK = {"en": ["Click here to subscribe!", "Read more >>", "Sponsored link"],
          "ko": ["지금 구독하세요!", "더보기 >>", "광고 링크"]}
_SPAM = {"en": "cheap {k} best {k} buy {k} free {k} {k} deal {k} sale", "ko": "최저가 {k} 할인 {k} 무료 {k} 추천 {k} {k} 이벤트 {k}"}
_LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
          "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.")
_CODE = ['var cfg = {"ads": true, "slot": 3}; function init() { render(cfg); }',
         "{{ page.sidebar }} {% include 'banner.html' %}", "window.onload = function() { track({id: 42}); };"]


def boilerplate_head(tb: TextBuilder, lang: str) -> None:
    tb.line(_NAV[lang]).line(_COOKIE[lang]).line()


def boilerplate_foot(tb: TextBuilder, lang: str, site: str, year: str) -> None:
    tb.line()
    for line in _FOOTER[lang]:
        tb.line(line.format(year=year, site=site))


def keyword_spam(tb: TextBuilder, lang: str, keyword: str, rng: random.Random) -> None:
    for _ in range(rng.randint(2, 4)):
        tb.line(_SPAM[lang].format(k=keyword))


def repeated_lines(tb: TextBuilder, lang: str, rng: random.Random) -> None:
    line = rng.choice(_STOCK[lang])
    for _ in range(rng.randint(6, 12)):
        tb.line(line)


def repeated_ngrams(tb: TextBuilder, lang: str, keyword: str, rng: random.Random) -> None:
    phrase = {"en": f"the amazing {keyword}", "ko": f"놀라운 {keyword}"}[lang]
    tb.line(" ".join([phrase] * rng.randint(8, 14)))


def lorem(tb: TextBuilder) -> None:
    tb.line(_LOREM)


def gibberish(tb: TextBuilder, lang: str, rng: random.Random) -> None:
    if lang == "en":
        words = ["".join(rng.choices("bcdfghjklmnpqrstvwxz", k=rng.randint(3, 8))) for _ in range(rng.randint(8, 16))]
    else:  # uniformly random syllables: mostly rare ones nobody writes (뷁, 퓶, 쏼)
        words = ["".join(compose(rng.randrange(19), rng.randrange(21), rng.randrange(28)) for _ in range(rng.randint(2, 4)))
                 for _ in range(rng.randint(8, 16))]
    tb.line(" ".join(words))


def code_in_prose(tb: TextBuilder, rng: random.Random) -> None:
    tb.line(rng.choice(_CODE))


# ---------------------------------------------------------------------- duplicates and URLs


def near_duplicate_pieces(pieces: list[tuple[str, str]], rate: float, rng: random.Random) -> list[tuple[str, str]]:
    """Edit about ``rate`` of the words outside personal-data spans: delete, replace or repeat a word."""
    split = [[line.split(" ") for line in text.split("\n")] if not pii else None for text, pii in pieces]
    slots = [(p, li, wi) for p, lines in enumerate(split) if lines
             for li, words in enumerate(lines) for wi, w in enumerate(words) if w]
    vocab = [split[p][li][wi] for p, li, wi in slots]
    for p, li, wi in rng.sample(slots, max(1, round(rate * len(slots)))):
        op = rng.randrange(3)
        word = split[p][li][wi]
        split[p][li][wi] = None if op == 0 else rng.choice(vocab) if op == 1 else f"{word} {word}"
    out = []
    for (text, pii), lines in zip(pieces, split):
        if pii:
            out.append((text, pii))
        else:  # None marks a deleted word; "" keeps a piece's edge space next to a span
            out.append(("\n".join(" ".join(w for w in words if w is not None) for words in lines), ""))
    return out


def url_variant(url: str, rng: random.Random) -> str:
    """The same page under another URL: other scheme, trailing slash, tracking parameters, host alias or mirror."""
    parts = urlsplit(url)
    host, path, query, scheme = parts.netloc, parts.path, "", parts.scheme
    for change in rng.sample(["scheme", "slash", "tracking", "fragment", "host"], rng.randint(1, 2)):
        if change == "scheme":
            scheme = "http"
        elif change == "slash":
            path = path + "/"
        elif change == "tracking":
            query = rng.choice(["utm_source=newsletter&utm_medium=email", "utm_campaign=spring&ref=home",
                                "fbclid=IwAR" + "".join(rng.choices("abcdefXYZ0123456789", k=12))])
        elif change == "fragment":
            path = path + rng.choice(["#comments", "#top"])
        else:
            bare = host.removeprefix("www.")
            host = rng.choice([bare, "m." + bare, f"{bare}.{MIRROR_SUFFIX}", "WWW." + bare.upper()])
    frag = ""
    if "#" in path:
        path, frag = path.split("#")
        frag = "#" + frag
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "") + frag


def normalize_url(url: str) -> str:
    """A canonical form of ``url``: no scheme, lower-case host without www./m./mirror, no tracking, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removesuffix("." + MIRROR_SUFFIX)
    for prefix in ("www.", "m."):
        host = host.removeprefix(prefix)
    path = parts.path.rstrip("/") or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not k.startswith("utm_") and k not in TRACKING_PARAMS)
    return host + path + (f"?{urlencode(query)}" if query else "")


def copy_document(doc: Document, doc_id: str, **changes) -> Document:
    """A copy of ``doc`` under a new id, with ``changes`` (url, text, labels, ...) applied."""
    fields = doc.to_record() | {"id": doc_id} | changes
    return Document(**fields)
