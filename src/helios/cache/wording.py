"""What the L3 hit verifier reads of a text, and how two texts' words are paired.

Kept apart from the verdict rules (:mod:`helios.cache.verifier`) because it is the part that
knows English: tokenising (code spans, identifiers, times, money, spelt-out numbers,
contractions), a light stemmer, dropping pleasantries, and tagging each word with what it
can change in a question (number, date, name, scope word, negation, "from"/"to" role).
:func:`align` then pairs the words of two texts: equal stems, typos, qualified names
("datasets.Metric"), acronyms ("ML"/"machine learning") and compounds ("log in"/"login").

The word lists are closed classes of English (function words, negation cues, quantifiers,
calendar words, greetings), not vocabulary from any benchmark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import pairwise


# -- closed word classes ---------------------------------------------------------------------
def _closed_class(words: str) -> frozenset[str]:
    return frozenset(words.split())


_FUNCTION_WORDS = _closed_class(
    """a an the and or but if then so as of at by for with about into through to from in on
    off up down out via per is are was were be been being am do does did doing done have has
    had having can could will would shall should may might must ought i me my mine myself
    you your yours yourself we us our ours they them their theirs he him his she her hers it
    its itself this that these those there here who whom whose which what when where why how
    whether s t d ll m re ve let lets please thanks thank cheers hi hello hey um uh erm ok
    okay well like yeah yes oh really actually basically also still even just quite than very
    too much many way kind sort thing things something anything someone anyone somebody
    anybody get got getting gets go going know tell want wanted wanting need needs trying try
    possible able sure mean means"""
)
_SCOPE_WORDS = _closed_class(
    """all every each both either only most least more less fewer fewest few several whole
    entire partial full part extra additional other another same different before after
    within until till during since above below over under between beyond inside outside
    maximum minimum max min first second last next previous latest earliest early late
    earlier later"""
)
_NEGATION_CUES = _closed_class(
    """not no never none nobody nothing nowhere neither nor without cannot non avoid prevent
    refuse ban prohibit forbid deny decline reject fail lack exclude except cease stop unable
    skip omit"""
)
_GREETINGS = _closed_class(
    """hi hello hey morning afternoon evening good greetings ok okay so um uh erm well quick
    question one thanks thank you cheers please many in advance again yes no yeah nope sure
    indeed sorry bother excuse me apologies"""
)
_FILLERS = _closed_class("um uh erm please just like so really actually basically well oh")
_QUESTION_WORDS = frozenset({"where", "when", "who", "why", "how"})
_PARTICLES = frozenset({"on", "off", "in", "out", "up", "down"})
_TEMPORAL_WORDS = _closed_class(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday today tomorrow tonight yesterday
    weekend weekday morning afternoon evening night noon midnight spring summer autumn winter
    am pm"""
)
_SMALL_NUMBERS = """two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen"""
_NUMBER_WORDS: dict[str, float] = {w: n for n, w in enumerate(_SMALL_NUMBERS.split(), 2)}
_NUMBER_WORDS |= {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6,
    "billion": 10**9, "dozen": 12, "half": 0.5, "third": 3, "fourth": 4, "fifth": 5,
    "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip
_SCALE_WORDS = frozenset({"hundred", "thousand", "million", "billion", "dozen"})
_ROLE_PREPOSITIONS = {"from": "from", "to": "to", "into": "to", "onto": "to", "towards": "to"}
_DETERMINERS = _closed_class("a an the my your our their his her its this that these those")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf"})
# contractions typed without their apostrophe
_BARE_CONTRACTIONS = {
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "cant": "can not",
    "wont": "will not", "isnt": "is not", "arent": "are not", "wasnt": "was not",
    "werent": "were not", "shouldnt": "should not", "couldnt": "could not",
    "wouldnt": "would not", "havent": "have not", "hasnt": "has not", "whats": "what",
    "thats": "that", "theres": "there", "hows": "how", "wheres": "where", "whens": "when",
    "whos": "who", "im": "i", "ive": "i", "youre": "you", "theyre": "they",
}  # fmt: skip
_CONTRACTIONS = {"n't": "not", "'s": "", "'re": "", "'ve": "", "'ll": "", "'d": "", "'m": ""}

_TOKEN = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|(?P<ident>[A-Za-z_]\w*(?:[._]\w+)+(?:\(\))?|[A-Za-z]+\d[A-Za-z0-9]*)"
    r"|(?P<time>\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.))(?![a-z])"
    r"|(?P<number>[£$€]?\d[\d,]*(?:[.:]\d+)*)(?:st|nd|rd|th)?"
    r"|(?P<word>[^\W\d_]+(?:'[^\W\d_]+)*)"
    r"|(?P<stop>[.?!;:\n])"
    r"|(?P<comma>,)",
    re.IGNORECASE,
)
_LETTERS = re.compile(r"[^\W\d_]+")
_CAPITAL = re.compile(r"[A-ZÀ-ÖØ-Þ]")  # Latin capitals: enough to tell shouting
_CAPITALISED = re.compile(r"\b[A-Z]")
_CLAUSE_BREAK = re.compile(r"(?:[!?;\n]|[,.:](?!\d))+")
_LIST_MARKER = re.compile(r"(?m)(?:^\s*\d{1,2}[.)]|\b\d{1,2}\))(?=\s)")
_VERSION = re.compile(r"v\d[\d.]*")

# -- one text's signature --------------------------------------------------------------------
NUMBER, COUNT, TEMPORAL, NAME, PROPER, SCOPE, CONTENT = (
    "number", "count", "date", "name", "proper noun", "scope", "word"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    stem: str
    surface: str
    kind: str
    role: str | None = None
    """``"from"`` or ``"to"``: the word follows, or comes just before, such a preposition."""
    initials: str = ""
    """Of a camel-case word ("JavaScript" -> "js"), to align it with its acronym."""


@dataclass(frozen=True, slots=True)
class Signature:
    """What the verifier compares of one text; computed once per text and memoised."""

    tokens: tuple[Token, ...]
    stems: frozenset[str]
    negations: int
    question_words: frozenset[str]
    particles: frozenset[str]
    joined: frozenset[str]
    """Adjacent words written together ("log in" -> "login"), to align compounds."""
    words: tuple[str, ...]
    """Every word in order (stemmed, function words included, fillers left out)."""
    spelling: frozenset[str]
    """Every token as written (case, backticks), to break near-ties between candidates."""


def stem(word: str) -> str:
    """A light suffix stripper: enough to align "columns"/"column", "created"/"create".

    Hand-written on purpose. Snowball's English stemmer (and Porter's; PyStemmer 3.1.0)
    was measured in its place with bench/semantic_quality.py (bench/README.md, "Verifier
    wording"): fow-cache's figures did not move and ROC AUC rose 0.001-0.003, but GPTCache's
    data lost one correct hit at every threshold (836/26/137 at 0.86, against 837/26/136):
    Snowball gives "used" and "using" one stem, and the direction rule then reads "used to
    store ..." against "saved to ... using" as a reversed direction. The verifier's rules
    were tuned on this stemmer's output, so a library stemmer is not at least as good.
    """
    if len(word) <= 3:
        return word
    if word.endswith("ied") or (word.endswith("ies") and len(word) > 4):
        word = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes")) or (word.endswith("es") and word[-3] in "sxz"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ing") and any(c in "aeiouy" for c in word[:-3]):
        word = word[:-3]
    elif (word.endswith("ed") and len(word) > 4) or (word.endswith("ly") and len(word) > 5):
        word = word[:-2]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word[:-1] if len(word) > 2 and word.endswith("e") else word


def parse(text: str) -> Signature:
    """Tokenise ``text`` into the parts the verifier compares."""
    return _Parser(text).signature()


class _Parser:
    """One pass over a text's tokens, keeping the little state English needs."""

    def __init__(self, text: str) -> None:
        text = _drop_pleasantries(text.replace("\u2019", "'"))  # typographic apostrophe
        self.text = _LIST_MARKER.sub(" ", text)
        words = _LETTERS.findall(self.text)
        letters = sum(map(len, words))
        shouting = len(_CAPITAL.findall(self.text)) > 0.6 * letters
        title_case = len(words) > 2 and len(_CAPITALISED.findall(self.text)) > 0.6 * len(words)
        self.cased = not shouting and not title_case  # else capitals say nothing
        self.stems: dict[str, str] = {}
        self.tokens: list[Token] = []
        self.sequence: list[str] = []
        self.negations = 0
        self.question_words: set[str] = set()
        self.particles: set[str] = set()
        self.sentence_start = True
        self.role: str | None = None
        self.role_taken = False  # a word after "to"/"from" has taken that role
        self.placed_at = -1  # where in ``sequence`` the last token stands
        self.number: float | None = None  # spelt-out number being read ("twenty five")
        self.tentative = False  # a lone "one" is a pronoun more often than a number

    def signature(self) -> Signature:
        spelling = []
        for match in _TOKEN.finditer(self.text):
            kind, raw = match.lastgroup, match.group()
            spelling.append(raw)
            if kind != "word" or (raw.lower() not in _NUMBER_WORDS and raw.lower() != "one"):
                self._flush_number()
            if kind in ("stop", "comma"):
                self.sentence_start = self.sentence_start or kind == "stop"
                self.role = None
            elif kind in ("code", "ident"):
                self._name(match.group("code") or raw)
            elif kind in ("time", "number"):
                self._place(Token(_number(raw), _number(raw), NUMBER), _number(raw))
            else:
                for part in _split_contraction(raw):
                    self._word(part)
        self._flush_number()
        sequence = self.sequence
        return Signature(
            tokens=tuple(self.tokens),
            stems=frozenset(t.stem for t in self.tokens),
            negations=self.negations,
            question_words=frozenset(self.question_words),
            particles=frozenset(self.particles),
            joined=frozenset(a + b for a, b in pairwise(sequence)),
            words=tuple(self._stem(w) for w in sequence if w not in _FILLERS),
            spelling=frozenset(spelling),
        )

    def _stem(self, word: str) -> str:
        found = self.stems.get(word)
        if found is None:
            found = self.stems[word] = stem(word) if word.isalpha() else word
        return found

    def _place(self, token: Token, word: str) -> None:
        self.sequence.append(word)
        self.tokens.append(token)
        self.placed_at = len(self.sequence) - 1
        self.sentence_start = False

    def _name(self, raw: str) -> None:
        name = raw.lower().removesuffix("()")
        if name in _ABBREVIATIONS:
            self.sentence_start = False
        elif _VERSION.fullmatch(name):
            self._place(Token(_number(name), name, NUMBER), name)
        else:
            self._place(Token(name, name, NAME, self.role, _camel_initials(raw)), name)

    def _flush_number(self) -> None:
        if self.number is not None and not self.tentative:
            value = f"{self.number:g}"
            self.tokens.append(Token(value, value, COUNT))
        self.number, self.tentative = None, False

    def _spelt_number(self, lower: str) -> bool:
        previous = self.sequence[-1] if self.sequence else ""
        if lower == "one" and self.number is None:
            self.number, self.tentative = 1, True
            return True
        if lower not in _NUMBER_WORDS:
            return False
        if lower in _SCALE_WORDS and self.number is None and previous != "a":
            return False  # "thousands of datasets" counts nothing
        value = _NUMBER_WORDS[lower]
        self.tentative = self.tentative and value < 100
        if self.number is None:
            self.number = value
        elif value >= 100 and self.number < value:
            self.number *= value
        else:
            self.number += value
        return True

    def _word(self, part: str) -> None:
        lower = part.lower()
        initial, self.sentence_start = self.sentence_start, False
        stemmed = self._stem(lower)
        if self._spelt_number(lower):
            self.sequence.append(lower)
        elif lower in _NEGATION_CUES or stemmed in _NEGATION_CUES:
            self.sequence.append(lower)
            self.negations += 1
        elif lower in _FUNCTION_WORDS or lower in _SCALE_WORDS:
            self.sequence.append(lower)
            self._function_word(lower)
        else:
            self._content_word(part, lower, stemmed, initial)

    def _function_word(self, lower: str) -> None:
        if lower in _QUESTION_WORDS:
            self.question_words.add(lower)
        if lower in _PARTICLES:
            self.particles.add(lower)
        if self.role is not None and (self.role_taken or lower not in _DETERMINERS):
            self.role = None  # the phrase after "to"/"from" has ended
        if lower in _ROLE_PREPOSITIONS:
            self.role, self.role_taken = _ROLE_PREPOSITIONS[lower], False
            # "convert a Word document to PDF": the word just before "to" is the source
            last = self.tokens[-1] if self.tokens else None
            just_before = self.placed_at == len(self.sequence) - 2
            if self.role == "to" and last is not None and last.role is None and just_before:
                self.tokens[-1] = replace(last, role="from")

    def _content_word(self, part: str, lower: str, stemmed: str, initial: bool) -> None:
        # "HSBC", "iPhone": a name wherever it stands. "Croydon": a name mid-sentence, but
        # a capital there also starts a title or a list item ("Tutorials, How-to guides")
        named = self.cased and part != "I" and part[1:] != part[1:].lower()
        proper = self.cased and not named and part[0].isupper() and not initial
        if self.role == "from" and lower.endswith("ing"):
            self.role = None  # "stop it from renewing": prevention, not a source
        self.role_taken = self.role_taken or self.role is not None
        singular = lower.removesuffix("s")
        if (lower in _TEMPORAL_WORDS or singular in _TEMPORAL_WORDS) and (lower != "may" or proper):
            token = Token(singular, lower, TEMPORAL)
        elif lower in _SCOPE_WORDS:
            token = Token(lower, lower, SCOPE)
        elif named or proper:
            kind = NAME if named else PROPER
            token = Token(stemmed, lower, kind, self.role, _camel_initials(part))
        else:
            token = Token(stemmed, lower, CONTENT, self.role)
        self._place(token, lower)


def _number(text: str) -> str:
    value = text.lower().lstrip("£$€v").replace(",", "").replace(" ", "").replace(".m.", "m")
    if value.count(".") == 1 and value.replace(".", "").isdigit():
        value = value.rstrip("0").rstrip(".")
    return value.replace(":00", "")


def _drop_pleasantries(text: str) -> str:
    """Greetings, thanks and a bare yes/no around the text ("Hi, quick one: ...")."""
    clauses = _CLAUSE_BREAK.split(text)
    keep = [
        i
        for i, clause in enumerate(clauses)
        if (words := _LETTERS.findall(clause.lower())) and not set(words) <= _GREETINGS
    ]
    if not keep:
        return text
    start = text.find(clauses[keep[0]])
    end = text.rfind(clauses[keep[-1]]) + len(clauses[keep[-1]])
    return text[start:end] if 0 <= start < end else text


def _camel_initials(word: str) -> str:
    capitals = [c.lower() for c in word if c.isupper()]
    return "".join(capitals) if len(capitals) >= 2 and not word.isupper() else ""


def _split_contraction(word: str) -> list[str]:
    if "'" not in word:
        bare = _BARE_CONTRACTIONS.get(word.lower())
        return [word] if bare is None else bare.split()
    lower = word.lower()
    for ending, replacement in _CONTRACTIONS.items():
        if lower.endswith(ending) and len(lower) > len(ending):
            head = word[: -len(ending)]
            if ending == "n't":
                head = {"ca": "can", "wo": "will", "sha": "shall"}.get(head.lower(), head)
            return [head, replacement] if replacement else [head]
    return [word]


# -- aligning two signatures -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Alignment:
    matched: int
    """Tokens of either text whose word the other text has too."""
    left_query: tuple[Token, ...]
    left_candidate: tuple[Token, ...]


def align(query: Signature, candidate: Signature) -> Alignment:
    """Pair the words of two texts: equal stems, then typos, qualified names, acronyms and
    compounds. Sets, not bags: saying a word twice adds nothing the answer depends on."""
    left_q = [t for t in query.tokens if t.stem not in candidate.stems]
    left_c = [t for t in candidate.tokens if t.stem not in query.stems]
    for token in list(left_q):
        if token.surface.isalpha():  # never "A1234" for "A1243"
            typos = [o for o in left_c if o.surface.isalpha() and typo(token.surface, o.surface)]
            if typos:
                left_q.remove(token)
                left_c = [o for o in left_c if o not in typos]
    _qualified(left_q, left_c)
    _acronyms(left_q, left_c, candidate)
    _acronyms(left_c, left_q, query)
    _compounds(left_q, left_c, candidate)
    _compounds(left_c, left_q, query)
    total = len(query.tokens) + len(candidate.tokens)
    return Alignment(total - len(left_q) - len(left_c), tuple(left_q), tuple(left_c))


def typo(a: str, b: str) -> bool:
    """The same word misspelt (one edit, two in long words; same first letter) or derived
    from it ("Python", "Pythonic")."""
    if a[0] != b[0] or min(len(a), len(b)) < 4 or max(len(a), len(b)) < 5:
        return False
    short, long = sorted((a, b), key=len)
    if long.startswith(short) and len(long) - len(short) <= 3:
        return True
    limit = 2 if len(short) >= 8 else 1
    if len(long) - len(short) > limit:
        return False
    # Optimal string alignment distance (Levenshtein plus adjacent transpositions: "teh"),
    # rapidfuzz's: the same answers as the hand-written dynamic programme it replaced, on
    # 247k word pairs, at about a twentieth of the cost. Imported here because the core
    # imports this module (the verifier's types) without the semantic extra, and L3, the
    # only caller, is off without rapidfuzz (helios.cache.factory).
    from rapidfuzz.distance import OSA

    return OSA.distance(a, b, score_cutoff=limit) <= limit


def _qualified(left_q: list[Token], left_c: list[Token]) -> None:
    """Pairs a qualified name with its last part ("datasets.Metric", "Metric")."""
    for dotted, others in ((left_q, left_c), (left_c, left_q)):
        for token in [t for t in dotted if "." in t.surface]:
            last = token.surface.rsplit(".", 1)[-1]
            twin = next((o for o in others if o.surface.rsplit(".", 1)[-1] == last), None)
            if twin is not None:
                dotted.remove(token)
                others.remove(twin)


def _acronyms(left: list[Token], others: list[Token], other: Signature) -> None:
    """Pairs an acronym with its spelling ("ML", "machine learning"; "JS", "JavaScript")."""
    words = other.tokens
    for token in list(left):
        size = len(token.surface)
        if token.kind != NAME or not (2 <= size <= 6 and token.surface.isalpha()):
            continue  # acronyms are written in capitals: "ML", "NLP"
        spelled = [o for o in others if o.initials == token.surface]
        for i in range(len(words) - size + 1):
            if not spelled and "".join(w.surface[0] for w in words[i : i + size]) == token.surface:
                spelled = list(words[i : i + size])
        if spelled:
            left.remove(token)
            others[:] = [o for o in others if o not in spelled]


def _compounds(left: list[Token], others: list[Token], other: Signature) -> None:
    """Pairs a word with the two that the other text writes apart ("login", "log in")."""
    for token in [t for t in left if t.surface in other.joined]:
        left.remove(token)
        others[:] = [o for o in others if o.surface not in token.surface]


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
