"""The L3 hit verifier: is a stored question close enough in *meaning* to serve its reply?

A sentence embedding barely moves when one word changes, and that word is often the whole
question. With MiniLM, "Can I cancel before the trip starts?" / "...after..." score 0.98,
"How do I move my files from Dropbox to OneDrive?" / "...from OneDrive to Dropbox?" 0.995,
"Is the pool open at 6am?" / "...8am?" 0.92, while real paraphrases average 0.78
(fow-cache's labelled pairs). No cosine threshold separates them, so the verifier reads the
words, locally and cheaply (Python and rapidfuzz's edit distance, no model; costs in
bench/semantic_quality.py).
:mod:`helios.cache.wording` turns each text into a signature and aligns two of them; this
module decides on what is left over:

- A number, date or name on one side only rejects, however the rest is worded.
- In a short question, or when the two texts differ in one short slot ("cancel *before* /
  *after* the trip starts"), so does a proper noun, count or scope word, a different
  negation polarity, opposite affixes ("connect"/"disconnect"), particles ("on"/"off"),
  question words ("where"/"when") or directions ("from X to Y" / "from Y to X"); and a slot
  of content words must be a near-synonym, which the cosine shows: "begin"/"start" the
  setup leaves the vector where it was (0.97), "basic"/"premium" plan does not (0.63).
- Longer texts reworded throughout keep only the facts: their function words are noise
  ("in the absence of" for "without").

:meth:`HitVerifier.select` verifies the candidates at or above the threshold, never falls
back further than ``fallback_window`` below the nearest one (a distant candidate that passes
where the nearest failed is usually another question), and ranks the accepted ones by cosine
plus lexical agreement (share of aligned words) plus identical spelling. Re-rankers weighted
by the candidates themselves (words or character n-grams shared by the query and few
candidates), word order and n-gram overlap were measured and did not beat that; declining
near-twins costs about three correct hits per wrong one avoided, so it is an option
(``ambiguity_margin``), off by default. A served hit's confidence is its blended score,
lowered when a different question ranks close behind it (bench/semantic_quality.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from helios.cache.wording import (
    CONTENT,
    COUNT,
    NAME,
    NUMBER,
    PROPER,
    SCOPE,
    TEMPORAL,
    Alignment,
    Signature,
    Token,
    align,
    jaccard,
    parse,
    typo,
)

_OPPOSITE_PARTICLES = (("on", "off"), ("in", "out"), ("up", "down"))
_NEGATING_PREFIXES = ("un", "non", "dis", "in", "im", "il", "ir", "de", "anti", "mis")
_OPPOSED_PREFIXES = (
    ("in", "ex"), ("im", "ex"), ("up", "down"), ("over", "under"), ("in", "de"),
    ("en", "dis"), ("pre", "post"), ("in", "out"), ("max", "min"), ("inter", "intra"),
)  # fmt: skip
_OPPOSED_SUFFIXES = (("ful", "less"),)


# -- the public types ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored question found by the vector index."""

    question: str
    score: float
    """Cosine similarity to the query."""


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str
    """``"accepted"``, or the first difference found (``"number 7pm vs 7am"``)."""
    confidence: float
    """0..1, reported to callers as the hit's confidence; 0 when rejected. The cosine,
    raised by lexical agreement (up to half the way to 1) and, for the hit
    :meth:`HitVerifier.select` serves, cut by up to half when a different question ranks
    close behind it: on GPTCache's data it tells right hits from wrong ones with ROC AUC
    0.90, against 0.77 for the cosine and agreement alone (bench/semantic_quality.py)."""


def _opposed(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by a negating prefix or by opposite affixes."""
    short, long = sorted((a, b), key=len)
    if len(short) >= 3 and any(long == prefix + short for prefix in _NEGATING_PREFIXES):
        return True
    for one, other in (*_OPPOSED_PREFIXES, *((y, x) for x, y in _OPPOSED_PREFIXES)):
        stem_a, stem_b = a.removeprefix(one), b.removeprefix(other)
        if stem_a == stem_b and len(stem_a) >= 3 and a != stem_a and b != stem_b:
            return True
    return any(
        x.endswith(left) and y.endswith(right) and x[: -len(left)] == y[: -len(right)]
        for left, right in _OPPOSED_SUFFIXES
        for x, y in ((a, b), (b, a))
    )


def _slot(a: Sequence[str], b: Sequence[str]) -> tuple[Sequence[str], Sequence[str]]:
    """What is left of two word sequences once their common beginning and end are cut."""
    shortest = min(len(a), len(b))
    start = 0
    while start < shortest and _same_word(a[start], b[start]):
        start += 1
    end = 0
    while end < shortest - start and _same_word(a[-1 - end], b[-1 - end]):
        end += 1
    return a[start : len(a) - end], b[start : len(b) - end]


def _same_word(a: str, b: str) -> bool:
    return a == b or (a.isalpha() and b.isalpha() and typo(a, b))


def _roles(signature: Signature) -> dict[str, set[str]]:
    roles: dict[str, set[str]] = {}
    for token in signature.tokens:
        if token.role:
            roles.setdefault(token.stem, set()).add(token.role)
    return roles


def _of_kind(tokens: Sequence[Token], kind: str) -> list[Token]:
    return [t for t in tokens if t.kind == kind]


def _words(tokens: Sequence[Token]) -> str:
    return " ".join(t.surface for t in tokens) or "-"


# -- the verifier ----------------------------------------------------------------------------
class HitVerifier:
    """Accepts a candidate only when no word-level difference changes the question.

    - ``edit_similarity``: the cosine a single short slot of differing content words must
      reach to count as a near-synonym ("switch"/"change" energy supplier: 0.94).
    - ``slot_words``: at most this many words on either side make a slot.
    - ``short_question``: texts of at most this many tokens get the word-level rules even
      when reworded throughout; longer ones only the facts (numbers, dates, names).
    - ``rerank_weight`` / ``tie_weight``: what lexical agreement (share of aligned tokens)
      and identical spelling (Jaccard of tokens as written) add to the cosine when ranking
      the accepted candidates.
    - ``fallback_window``: candidates more than this below the nearest eligible one are
      not considered, even when every nearer one is rejected.
    - ``ambiguity_margin``: decline when two different accepted questions rank closer than
      this (0 = off: near-duplicate stored questions usually share an answer).
    - ``separation_scale``: a served hit's confidence is halved when a different accepted
      question ranks level with it, and kept whole when none ranks within this of it.
    - ``aligned_threshold``: a candidate below the threshold but at or above this, whose
      every content word pairs with one of the query's and which passes every rule, is
      eligible too: mostly typos, which the embedder reads as other word pieces ("a
      vegetarian / vegitarian set menu": cosine 0.81). 1.0 = off.
    """

    def __init__(
        self,
        *,
        edit_similarity: float = 0.93,
        slot_words: int = 3,
        short_question: int = 7,
        rerank_weight: float = 0.1,
        tie_weight: float = 0.02,
        fallback_window: float = 0.05,
        ambiguity_margin: float = 0.0,
        separation_scale: float = 0.1,
        aligned_threshold: float = 0.70,
        memo_size: int = 4096,
    ) -> None:
        self.edit_similarity = edit_similarity
        self.slot_words = slot_words
        self.short_question = short_question
        self.rerank_weight = rerank_weight
        self.tie_weight = tie_weight
        self.fallback_window = fallback_window
        self.ambiguity_margin = ambiguity_margin
        self.separation_scale = separation_scale
        self.aligned_threshold = aligned_threshold
        # Stored questions come back lookup after lookup: parse each once. Bounded, and
        # cleared whole when full, which is cheaper than LRU bookkeeping on every call.
        self._memo: dict[str, Signature] = {}
        self._memo_size = memo_size

    def signature(self, text: str) -> Signature:
        found = self._memo.get(text)
        if found is None:
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            found = self._memo[text] = parse(text)
        return found

    def verify(self, query: str, candidate: Candidate) -> Verdict:
        """The verdict on one candidate, whatever its score."""
        return self._verify(self.signature(query), candidate)[0]

    def select(
        self, query: str, candidates: Sequence[Candidate], threshold: float, *, aligned: bool = True
    ) -> tuple[int, Verdict] | None:
        """Index (into ``candidates``) and verdict of the candidate to serve, or ``None``.

        Candidates with ``score >= threshold`` are eligible, and so are those down to
        ``aligned_threshold`` whose words all pair with the query's; the accepted ones are
        ranked by cosine plus lexical agreement, so the nearest by cosine may lose.
        ``aligned=False``: the threshold is the only floor (a caller's own threshold).
        """
        top = max((c.score for c in candidates), default=-1.0)
        lowest = min(threshold, self.aligned_threshold) if aligned else threshold
        if top < lowest:
            return None
        if top >= threshold:  # the nearest is eligible: nothing below the window can rank
            lowest = max(lowest, top - self.fallback_window)
        signature = self.signature(query)
        eligible: list[float] = []
        accepted: list[tuple[float, int, Verdict]] = []
        for index, candidate in enumerate(candidates):
            if candidate.score < lowest:
                continue
            verdict, agreement = self._verify(signature, candidate)
            # below the threshold, only a candidate whose every word pairs with the query's
            # may serve (fow-cache, tune half: no such pair was a trap down to cosine 0.5)
            paired = verdict.accepted and agreement >= 1.0 and bool(signature.tokens)
            if candidate.score < threshold and not paired:
                continue
            eligible.append(candidate.score)
            if verdict.accepted:
                spelling = jaccard(signature.spelling, self.signature(candidate.question).spelling)
                rank = candidate.score + self.rerank_weight * agreement + self.tie_weight * spelling
                accepted.append((rank, index, verdict))
        if not eligible:
            return None
        floor = max(eligible) - self.fallback_window
        ranked = [item for item in accepted if candidates[item[1]].score >= floor]
        if not ranked:
            return None
        ranked.sort(key=lambda item: -item[0])
        best_rank, best, verdict = ranked[0]
        chosen = candidates[best].question.strip()
        runner_up = next(
            (rank for rank, index, _ in ranked[1:] if candidates[index].question.strip() != chosen),
            None,
        )
        if runner_up is None:
            return best, verdict
        separation = best_rank - runner_up
        if separation < self.ambiguity_margin:
            return None
        # A near-twin close behind means the words could not tell the two apart: the
        # hit is then about as likely wrong as right, and the confidence says so.
        share = min(1.0, separation / self.separation_scale) if self.separation_scale else 1.0
        return best, replace(verdict, confidence=verdict.confidence * (0.5 + 0.5 * share))

    def _verify(self, query: Signature, candidate: Candidate) -> tuple[Verdict, float]:
        stored = self.signature(candidate.question)
        alignment = align(query, stored)
        total = len(query.tokens) + len(stored.tokens)
        agreement = alignment.matched / total if total else 1.0
        reason = self._difference(query, stored, alignment, candidate.score)
        if reason is not None:
            return Verdict(False, reason, 0.0), agreement
        # Lexical agreement closes up to half the distance from the cosine to 1.
        cosine = min(1.0, max(0.0, candidate.score))
        confidence = 1.0 - (1.0 - cosine) * (1.0 - 0.5 * agreement)
        return Verdict(True, "accepted", confidence), agreement

    def _difference(
        self, query: Signature, stored: Signature, alignment: Alignment, cosine: float
    ) -> str | None:
        """Why the two texts ask different things, or ``None``."""
        left_q, left_c = alignment.left_query, alignment.left_candidate
        for kind in (NUMBER, TEMPORAL, NAME, COUNT):
            only_q, only_c = _of_kind(left_q, kind), _of_kind(left_c, kind)
            # a count on one side only is often just wording ("a pair" / "two")
            if (only_q and only_c) if kind == COUNT else (only_q or only_c):
                return f"{kind} {_words(only_q)} vs {_words(only_c)}"
        slot_q, slot_c = _slot(query.words, stored.words)
        in_slot = max(len(slot_q), len(slot_c)) <= self.slot_words
        if not in_slot and max(len(query.tokens), len(stored.tokens)) > self.short_question:
            return None  # reworded at length: only the facts above are reliable
        for kind in (PROPER, COUNT, SCOPE):
            only_q, only_c = _of_kind(left_q, kind), _of_kind(left_c, kind)
            if only_q or only_c:
                return f"{kind} {_words(only_q)} vs {_words(only_c)}"
        if (query.negations - stored.negations) % 2:
            return "negation differs"
        content_q, content_c = _of_kind(left_q, CONTENT), _of_kind(left_c, CONTENT)
        for a in content_q:
            for b in content_c:
                if _opposed(a.surface, b.surface):
                    return f"opposite {a.surface} vs {b.surface}"
        particles_q = query.particles - stored.particles
        particles_c = stored.particles - query.particles
        for one, other in (*_OPPOSITE_PARTICLES, *((y, x) for x, y in _OPPOSITE_PARTICLES)):
            if one in particles_q and other in particles_c:
                return f"particle {one} vs {other}"
        asked, answered = query.question_words, stored.question_words
        if asked and answered and asked.isdisjoint(answered):
            return "question word differs"
        roles = _roles(stored)
        for word, role in _roles(query).items():
            if word in roles and role.isdisjoint(roles[word]):
                return f"direction of {word} differs"
        if in_slot and (content_q or content_c) and cosine < self.edit_similarity:
            return f"slot {' '.join(slot_q) or '-'} vs {' '.join(slot_c) or '-'}"
        return None


class CosineOnly:
    """The unverified baseline: the nearest candidate, if it reaches the threshold."""

    def select(
        self, query: str, candidates: Sequence[Candidate], threshold: float, *, aligned: bool = True
    ) -> tuple[int, Verdict] | None:
        if candidates and candidates[0].score >= threshold:
            return 0, Verdict(True, "cosine only", min(1.0, max(0.0, candidates[0].score)))
        return None

    def verify(self, query: str, candidate: Candidate) -> Verdict:
        return Verdict(True, "cosine only", min(1.0, max(0.0, candidate.score)))
