"""Fact and question templates, English and Korean, and the labels they fill in.

Every relation has four statement templates and three question templates per
language. The last template of each list is *held out*: task generators use it
only in the ``test_template`` split, so a model can be tested on a phrasing it
never saw in training. Slots: ``{s}`` subject name, ``{o}`` value, ``{o_a}`` the
value with an English article. In Korean a slot may carry a particle as its
format spec (``{s:은}``), which ``hangul.format_ko`` turns into 은 or 는.
"""

from __future__ import annotations

# label key -> (English, Korean)
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "occupation": {
        "engineer": ("engineer", "엔지니어"), "physicist": ("physicist", "물리학자"),
        "painter": ("painter", "화가"), "novelist": ("novelist", "소설가"), "chemist": ("chemist", "화학자"),
        "architect": ("architect", "건축가"), "composer": ("composer", "작곡가"),
        "mathematician": ("mathematician", "수학자"), "farmer": ("farmer", "농부"), "teacher": ("teacher", "교사"),
        "doctor": ("doctor", "의사"), "poet": ("poet", "시인"), "sailor": ("sailor", "선원"),
        "historian": ("historian", "역사학자"),
    },
    "industry": {
        "shipbuilding": ("shipbuilding", "조선"), "software": ("software", "소프트웨어"),
        "textiles": ("textiles", "섬유"), "energy": ("energy", "에너지"), "medicine": ("medicine", "의학"),
        "publishing": ("publishing", "출판"), "agriculture": ("agriculture", "농업"),
        "robotics": ("robotics", "로봇공학"), "astronomy": ("astronomy", "천문학"),
    },
    "genre": {
        "novel": ("novel", "소설"), "poetry collection": ("poetry collection", "시집"),
        "history": ("history", "역사서"), "travel memoir": ("travel memoir", "여행기"), "play": ("play", "희곡"),
        "cookbook": ("cookbook", "요리책"),
    },
    "invention_kind": {
        "engine": ("Engine", "엔진"), "lamp": ("Lamp", "등"), "loom": ("Loom", "직조기"),
        "telescope": ("Telescope", "망원경"), "battery": ("Battery", "배터리"), "compass": ("Compass", "나침반"),
        "press": ("Press", "인쇄기"), "filter": ("Filter", "정수기"), "calculator": ("Calculator", "계산기"),
        "pump": ("Pump", "펌프"), "radio": ("Radio", "라디오"),
    },
    "org_kind": {
        "institute": ("Institute", "연구소"), "company": ("Company", "상사"), "university": ("University", "대학교"),
        "foundation": ("Foundation", "재단"), "works": ("Works", "공업사"), "press": ("Press", "출판사"),
    },
    "event_kind": {
        "festival": ("Festival", "축제"), "summit": ("Summit", "정상회의"), "exhibition": ("Exhibition", "박람회"),
        "marathon": ("Marathon", "마라톤"), "conference": ("Conference", "학술대회"), "concert": ("Concert", "음악회"),
    },
    "title_noun": {
        "garden": ("Garden", "정원"), "river": ("River", "강"), "lantern": ("Lantern", "등불"),
        "bridge": ("Bridge", "다리"), "winter": ("Winter", "겨울"), "map": ("Map", "지도"), "harbor": ("Harbor", "항구"),
        "orchard": ("Orchard", "과수원"), "mirror": ("Mirror", "거울"), "song": ("Song", "노래"),
        "tower": ("Tower", "탑"), "salt": ("Salt", "소금"),
    },
}

# relation -> (subject type, value type); value type is an entity type, "year", "count", "date" or "label:<key>"
RELATIONS: dict[str, tuple[str, str]] = {
    "birth_year": ("person", "year"),
    "birth_place": ("person", "city"),
    "occupation": ("person", "label:occupation"),
    "employer": ("person", "organization"),
    "country": ("city", "country"),
    "population": ("city", "count"),
    "city_founded": ("city", "year"),
    "capital": ("country", "city"),
    "founder": ("organization", "person"),
    "org_founded": ("organization", "year"),
    "headquarters": ("organization", "city"),
    "industry": ("organization", "label:industry"),
    "inventor": ("invention", "person"),
    "invented": ("invention", "year"),
    "developed_at": ("invention", "organization"),
    "author": ("work", "person"),
    "published": ("work", "year"),
    "genre": ("work", "label:genre"),
    "location": ("event", "city"),
    "event_date": ("event", "date"),
    "organizer": ("event", "organization"),
}

STATEMENTS: dict[str, dict[str, list[str]]] = {
    "birth_year": {
        "en": ["{s} was born in {o}.", "{s} was born in the year {o}.", "The year {o} saw the birth of {s}.",
               "{s}'s year of birth is {o}."],
        "ko": ["{s:은} {o}년에 태어났다.", "{s:의} 출생 연도는 {o}년이다.", "{s:은} {o}년생이다.", "{o}년은 {s:이} 태어난 해이다."],
    },
    "birth_place": {
        "en": ["{s} was born in {o}.", "{s} is a native of {o}.", "{s} was born and raised in {o}.",
               "{o} is the birthplace of {s}."],
        "ko": ["{s:은} {o}에서 태어났다.", "{s:은} {o} 출신이다.", "{s:의} 고향은 {o:이다}.", "{o:은} {s:이} 태어난 곳이다."],
    },
    "occupation": {
        "en": ["{s} worked as {o_a}.", "{s} was {o_a} by profession.", "By profession, {s} was {o_a}.",
               "{s} made a living as {o_a}."],
        "ko": ["{s:은} {o:이었다}.", "{s:은} {o:으로} 일했다.", "{s:의} 직업은 {o:이었다}.", "{s:은} {o:으로서} 생계를 꾸렸다."],
    },
    "employer": {
        "en": ["{s} worked at {o}.", "{s} was employed by {o}.", "{o} employed {s}.", "{s} held a job at {o}."],
        "ko": ["{s:은} {o}에서 일했다.", "{s:은} {o}에 고용되어 있었다.", "{o:은} {s:을} 고용했다.", "{s:의} 직장은 {o:이었다}."],
    },
    "country": {
        "en": ["{s} is a city in {o}.", "{s} lies in {o}.", "{s} is located in {o}.", "The city of {s} belongs to {o}."],
        "ko": ["{s:은} {o}에 있는 도시이다.", "{s:은} {o}의 도시이다.", "{s:은} {o}에 속한 도시이다.", "{o}에는 {s:이라는} 도시가 있다."],
    },
    "population": {
        "en": ["{s} has a population of {o}.", "About {o} people live in {s}.", "The population of {s} is {o}.",
               "{s} is home to {o} residents."],
        "ko": ["{s:의} 인구는 {o}명이다.", "{s}에는 약 {o}명이 산다.", "{o}명이 {s}에 살고 있다.", "{s:은} {o}명의 주민이 사는 도시이다."],
    },
    "city_founded": {
        "en": ["{s} was founded in {o}.", "The city of {s} was established in {o}.", "{s} was first settled in {o}.",
               "{s} dates back to {o}, when it was founded."],
        "ko": ["{s:은} {o}년에 세워졌다.", "{s:은} {o}년에 건설되었다.", "{s:의} 역사는 {o}년에 시작되었다.", "{o}년에 {s:이} 처음 세워졌다."],
    },
    "capital": {
        "en": ["The capital of {s} is {o}.", "{o} is the capital of {s}.", "{s} has its capital in {o}.",
               "{s} is governed from its capital, {o}."],
        "ko": ["{s:의} 수도는 {o:이다}.", "{o:은} {s}의 수도이다.", "{s:은} {o:을} 수도로 두고 있다.", "{s}의 정부는 수도 {o}에 있다."],
    },
    "founder": {
        "en": ["{s} was founded by {o}.", "{o} founded {s}.", "{o} is the founder of {s}.", "{s} was started by {o}."],
        "ko": ["{s:은} {o:이} 설립했다.", "{o:이} {s:을} 설립했다.", "{s:의} 설립자는 {o:이다}.", "{s:은} {o:이} 세운 조직이다."],
    },
    "org_founded": {
        "en": ["{s} was founded in {o}.", "{s} was established in {o}.", "{s} has existed since {o}.",
               "{s} opened its doors in {o}."],
        "ko": ["{s:은} {o}년에 설립되었다.", "{s:의} 설립 연도는 {o}년이다.", "{s:은} {o}년부터 존재해 왔다.", "{o}년에 {s:이} 문을 열었다."],
    },
    "headquarters": {
        "en": ["{s} is headquartered in {o}.", "The headquarters of {s} are in {o}.", "{s} is based in {o}.",
               "{o} is home to the headquarters of {s}."],
        "ko": ["{s:의} 본부는 {o}에 있다.", "{s:은} {o}에 본부를 두고 있다.", "{s:은} {o:을} 거점으로 한다.", "{o}에는 {s}의 본부가 있다."],
    },
    "industry": {
        "en": ["{s} works in the {o} sector.", "{s} is active in {o}.", "The main field of {s} is {o}.",
               "{s} is known for its work in {o}."],
        "ko": ["{s:은} {o} 분야에서 활동한다.", "{s:의} 주력 분야는 {o:이다}.", "{s:은} {o} 분야의 조직이다.", "{s:은} {o} 분야의 일로 알려져 있다."],
    },
    "inventor": {
        "en": ["{s} was invented by {o}.", "{o} invented {s}.", "{o} is the inventor of {s}.", "{s} is an invention of {o}."],
        "ko": ["{s:은} {o:이} 발명했다.", "{o:이} {s:을} 발명했다.", "{s:의} 발명가는 {o:이다}.", "{s:은} {o}의 발명품이다."],
    },
    "invented": {
        "en": ["{s} was invented in {o}.", "{s} dates from {o}.", "The invention of {s} took place in {o}.",
               "{s} first appeared in {o}."],
        "ko": ["{s:은} {o}년에 발명되었다.", "{s:은} {o}년에 처음 등장했다.", "{s:의} 발명 연도는 {o}년이다.", "{o}년에 {s:이} 발명되었다."],
    },
    "developed_at": {
        "en": ["{s} was developed at {o}.", "{o} developed {s}.", "{s} came out of {o}.", "{s} was created at {o}."],
        "ko": ["{s:은} {o}에서 개발되었다.", "{o:이} {s:을} 개발했다.", "{s:의} 개발 기관은 {o:이다}.", "{s:은} {o}에서 만들어졌다."],
    },
    "author": {
        "en": ["{s} was written by {o}.", "{o} wrote {s}.", "{o} is the author of {s}.", "{s} is a work by {o}."],
        "ko": ["{s:은} {o:이} 썼다.", "{o:이} {s:을} 집필했다.", "{s:의} 저자는 {o:이다}.", "{s:은} {o}의 작품이다."],
    },
    "published": {
        "en": ["{s} was published in {o}.", "{s} came out in {o}.", "{s} first appeared in print in {o}.",
               "The first edition of {s} dates from {o}."],
        "ko": ["{s:은} {o}년에 출간되었다.", "{s:은} {o}년에 나왔다.", "{s:의} 초판은 {o}년에 나왔다.", "{o}년에 {s:이} 출판되었다."],
    },
    "genre": {
        "en": ["{s} is {o_a}.", "Readers know {s} as {o_a}.", "{s} was written as {o_a}.", "In form, {s} is {o_a}."],
        "ko": ["{s:은} {o:이다}.", "{s:의} 장르는 {o:이다}.", "{s:은} {o:으로} 쓰였다.", "{s:은} {o} 형식의 책이다."],
    },
    "location": {
        "en": ["{s} took place in {o}.", "{s} was held in {o}.", "The venue of {s} was {o}.", "{o} hosted {s}."],
        "ko": ["{s:은} {o}에서 열렸다.", "{s:의} 개최지는 {o:이었다}.", "{o}에서 {s:이} 개최되었다.", "{s:은} {o}에서 진행되었다."],
    },
    "event_date": {
        "en": ["{s} took place on {o}.", "{s} was held on {o}.", "The date of {s} was {o}.", "{s} began on {o}."],
        "ko": ["{s:은} {o}에 열렸다.", "{s:의} 개최일은 {o:이었다}.", "{o}에 {s:이} 개최되었다.", "{s:은} {o}에 시작되었다."],
    },
    "organizer": {
        "en": ["{s} was organized by {o}.", "{o} organized {s}.", "The organizer of {s} was {o}.", "{s} was hosted by {o}."],
        "ko": ["{s:은} {o:이} 주최했다.", "{o:이} {s:을} 주최했다.", "{s:의} 주최 기관은 {o:이었다}.", "{s:은} {o:이} 준비한 행사였다."],
    },
}

QUESTIONS: dict[str, dict[str, list[str]]] = {
    "birth_year": {
        "en": ["In what year was {s} born?", "When was {s} born?", "What is the birth year of {s}?"],
        "ko": ["{s:은} 몇 년에 태어났나요?", "{s:의} 출생 연도는 언제인가요?", "{s:이} 태어난 해는 언제인가요?"],
    },
    "birth_place": {
        "en": ["Where was {s} born?", "In which city was {s} born?", "What is the birthplace of {s}?"],
        "ko": ["{s:은} 어디에서 태어났나요?", "{s:은} 어느 도시에서 태어났나요?", "{s:의} 고향은 어디인가요?"],
    },
    "occupation": {
        "en": ["What did {s} do for a living?", "What was the occupation of {s}?", "What was {s}'s profession?"],
        "ko": ["{s:의} 직업은 무엇이었나요?", "{s:은} 무슨 일을 했나요?", "{s:은} 어떤 직업을 가졌나요?"],
    },
    "employer": {
        "en": ["Where did {s} work?", "Which organization employed {s}?", "Who was {s}'s employer?"],
        "ko": ["{s:은} 어디에서 일했나요?", "{s:을} 고용한 조직은 어디인가요?", "{s:의} 직장은 어디였나요?"],
    },
    "country": {
        "en": ["In which country is {s}?", "Which country does {s} belong to?", "Where is the city of {s} located?"],
        "ko": ["{s:은} 어느 나라에 있나요?", "{s:은} 어느 나라의 도시인가요?", "{s:이} 속한 나라는 어디인가요?"],
    },
    "population": {
        "en": ["What is the population of {s}?", "How many people live in {s}?", "How many residents does {s} have?"],
        "ko": ["{s:의} 인구는 얼마인가요?", "{s}에는 몇 명이 사나요?", "{s:의} 주민 수는 몇 명인가요?"],
    },
    "city_founded": {
        "en": ["When was {s} founded?", "In what year was the city of {s} founded?", "In which year was {s} established?"],
        "ko": ["{s:은} 언제 세워졌나요?", "{s:은} 몇 년에 건설되었나요?", "{s:의} 역사는 몇 년에 시작되었나요?"],
    },
    "capital": {
        "en": ["What is the capital of {s}?", "Which city is the capital of {s}?", "Where is the seat of government of {s}?"],
        "ko": ["{s:의} 수도는 어디인가요?", "{s:의} 수도는 어느 도시인가요?", "{s}의 정부는 어느 도시에 있나요?"],
    },
    "founder": {
        "en": ["Who founded {s}?", "Who is the founder of {s}?", "Who started {s}?"],
        "ko": ["{s:을} 설립한 사람은 누구인가요?", "{s:의} 설립자는 누구인가요?", "누가 {s:을} 세웠나요?"],
    },
    "org_founded": {
        "en": ["When was {s} founded?", "In what year was {s} established?", "Since what year has {s} existed?"],
        "ko": ["{s:은} 언제 설립되었나요?", "{s:은} 몇 년에 설립되었나요?", "{s:은} 몇 년부터 존재했나요?"],
    },
    "headquarters": {
        "en": ["Where is {s} headquartered?", "In which city are the headquarters of {s}?", "Where is {s} based?"],
        "ko": ["{s:의} 본부는 어디에 있나요?", "{s:은} 어느 도시에 본부를 두고 있나요?", "{s:의} 거점은 어디인가요?"],
    },
    "industry": {
        "en": ["In which field is {s} active?", "What sector does {s} work in?", "What is the main field of {s}?"],
        "ko": ["{s:은} 어떤 분야에서 활동하나요?", "{s:의} 주력 분야는 무엇인가요?", "{s:은} 무슨 분야의 조직인가요?"],
    },
    "inventor": {
        "en": ["Who invented {s}?", "Who is the inventor of {s}?", "Whose invention is {s}?"],
        "ko": ["{s:을} 발명한 사람은 누구인가요?", "{s:의} 발명가는 누구인가요?", "누가 {s:을} 발명했나요?"],
    },
    "invented": {
        "en": ["When was {s} invented?", "In what year was {s} invented?", "When did {s} first appear?"],
        "ko": ["{s:은} 언제 발명되었나요?", "{s:은} 몇 년에 발명되었나요?", "{s:은} 언제 처음 등장했나요?"],
    },
    "developed_at": {
        "en": ["Where was {s} developed?", "Which organization developed {s}?", "Where did {s} come out of?"],
        "ko": ["{s:은} 어디에서 개발되었나요?", "어느 기관이 {s:을} 개발했나요?", "{s:의} 개발 기관은 어디인가요?"],
    },
    "author": {
        "en": ["Who wrote {s}?", "Who is the author of {s}?", "Whose work is {s}?"],
        "ko": ["{s:을} 쓴 사람은 누구인가요?", "{s:의} 저자는 누구인가요?", "누가 {s:을} 집필했나요?"],
    },
    "published": {
        "en": ["When was {s} published?", "In what year was {s} published?", "When did {s} come out?"],
        "ko": ["{s:은} 언제 출간되었나요?", "{s:은} 몇 년에 출판되었나요?", "{s:의} 초판은 언제 나왔나요?"],
    },
    "genre": {
        "en": ["What kind of book is {s}?", "What is the genre of {s}?", "In what form is {s} written?"],
        "ko": ["{s:은} 어떤 종류의 책인가요?", "{s:의} 장르는 무엇인가요?", "{s:은} 어떤 형식으로 쓰였나요?"],
    },
    "location": {
        "en": ["Where did {s} take place?", "Which city hosted {s}?", "Where was {s} held?"],
        "ko": ["{s:은} 어디에서 열렸나요?", "{s:의} 개최지는 어디였나요?", "어느 도시에서 {s:이} 열렸나요?"],
    },
    "event_date": {
        "en": ["When did {s} take place?", "On what date was {s} held?", "What was the date of {s}?"],
        "ko": ["{s:은} 언제 열렸나요?", "{s:은} 며칠에 개최되었나요?", "{s:의} 개최일은 언제였나요?"],
    },
    "organizer": {
        "en": ["Who organized {s}?", "Which organization organized {s}?", "Who hosted {s}?"],
        "ko": ["{s:은} 누가 주최했나요?", "{s:의} 주최 기관은 어디였나요?", "어느 기관이 {s:을} 주최했나요?"],
    },
}


# Questions that need two facts (chapter 10's two-passage questions; chapter 06's composition exercises):
# kind -> language -> phrasings, the last held out (chapter 10 asks it; training exercises use the others).
# ``birth_country``: the country of the city where a person was born; ``inventor_birthplace``: where the
# inventor of an invention was born.
COMPOSED: dict[str, dict[str, list[str]]] = {
    "birth_country": {
        "en": ["In what country was {s} born?", "{s} was born in a city. Which country is that city in?",
               "Which country is the birthplace of {s} in?", "In which country is the city where {s} was born?"],
        "ko": ["{s:은} 어느 나라에서 태어났나요?", "{s:의} 출생지는 어느 나라의 도시인가요?",
               "{s:이} 태어난 곳은 어느 나라인가요?", "{s:이} 태어난 도시는 어느 나라에 있나요?"],
    },
    "inventor_birthplace": {
        "en": ["In which city was the inventor of the {s} born?", "Where was the person who invented the {s} born?",
               "The {s} was invented by someone. Where was that person born?",
               "Where was the inventor of the {s} born?"],
        "ko": ["{s:을} 발명한 사람은 어디에서 태어났나요?", "{s:의} 발명자의 출생지는 어디인가요?",
               "{s:을} 만든 발명가는 어느 도시 출신인가요?", "{s:의} 발명자는 어디에서 태어났나요?"],
    },
}


def template_id(kind: str, relation: str, lang: str, index: int) -> str:
    """Stable name of one template, e.g. ``stmt/birth_place/ko/2``."""
    return f"{kind}/{relation}/{lang}/{index}"


def is_held_out(index: int, n_templates: int) -> bool:
    """The last template of each list is held out of training tasks."""
    return index == n_templates - 1
