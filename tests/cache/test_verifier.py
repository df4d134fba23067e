"""The L3 hit verifier: each trap kind rejected, paraphrases accepted, candidates re-ranked.

Examples are written for these tests, not taken from the benchmarks (bench/semantic_quality.py
measures those). Cosines are given, as the vector index would: the verifier never embeds.
"""

from __future__ import annotations

import pytest

from helios.cache.verifier import Candidate, CosineOnly, HitVerifier
from helios.cache.wording import align, parse, stem


def verdict(query: str, stored: str, score: float = 0.9) -> tuple[bool, str]:
    result = HitVerifier().verify(query, Candidate(stored, score))
    return result.accepted, result.reason


@pytest.mark.parametrize(
    ("stored", "query", "kind"),
    [
        # negation: explicit cues, implicit ones, negating prefixes
        ("Does the plan include roaming?", "Does the plan not include roaming?", "negation"),
        (
            "Should I water the cactus daily?",
            "Should I avoid watering the cactus daily?",
            "negation",
        ),
        ("Is the museum accessible?", "Is the museum inaccessible?", "opposite"),
        ("How do I connect the printer?", "How do I disconnect the printer?", "opposite"),
        ("How do I turn the alarm on?", "How do I turn the alarm off?", "particle"),
        # swapped entities: another name, or the same names the other way round
        ("What is the population of Norway?", "What is the population of Sweden?", "proper noun"),
        ("Can I use my Visa card here?", "Can I use my AmEx card here?", "name"),
        (
            "How do I move my files from Dropbox to OneDrive?",
            "How do I move my files from OneDrive to Dropbox?",
            "direction",
        ),
        (
            "How do I convert miles to kilometres?",
            "How do I convert kilometres to miles?",
            "direction",
        ),
        # changed numbers, dates, times and ids
        ("Is the pool open at 6am?", "Is the pool open at 8am?", "number"),
        ("Can I get a refund after 30 days?", "Can I get a refund after 60 days?", "number"),
        ("Where is order A1234?", "Where is order A1243?", "name"),
        ("Is the office open on Tuesday?", "Is the office open on Thursday?", "date"),
        ("Can I bring two guests?", "Can I bring three guests?", "count"),
        ("What changed in v3.1?", "What changed in v3.2?", "number"),
        # narrowed or widened scope
        ("Which fees apply to business accounts?", "Which fees apply to all accounts?", "scope"),
        ("Can I cancel before the trip starts?", "Can I cancel after the trip starts?", "scope"),
        ("How do I reset my password?", "How do I reset my work password?", "slot"),
        ("What does the basic plan include?", "What does the premium plan include?", "slot"),
        ("Where do I park?", "Where do I eat?", "slot"),
        ("Where is the nearest pharmacy?", "When is the nearest pharmacy open?", "question word"),
    ],
)
def test_a_trap_is_rejected_with_its_reason(stored: str, query: str, kind: str) -> None:
    accepted, reason = verdict(query, stored, score=0.9)
    assert not accepted
    assert reason.startswith(kind), reason


@pytest.mark.parametrize(
    ("stored", "query", "score"),
    [
        ("How can I change my delivery address?", "How do I update the delivery address?", 0.86),
        ("Whats the wifi pasword?", "What's the wifi password?", 0.8),
        ("How do I export my contacts?", "Hi there! How do I export my contacts? Thanks!", 0.93),
        ("For a late parcel, who do I call?", "Who do I call about a late parcel?", 0.95),
        ("Remind me at 7 pm", "remind me at 7pm", 0.97),
        ("Can I pay £1,000 by card?", "Can I pay £1000 by card?", 0.99),
        ("What does machine learning need?", "What does ML need?", 0.8),
        ("How do I log in?", "How do I login?", 0.9),
        # a one-word swap that leaves the embedding in place is a synonym
        ("How do I begin the setup?", "How do I start the setup?", 0.97),
    ],
)
def test_a_paraphrase_is_accepted(stored: str, query: str, score: float) -> None:
    accepted, reason = verdict(query, stored, score)
    assert accepted, reason


def test_a_slot_swap_passes_only_when_the_cosine_says_synonym() -> None:
    stored, query = "What does the basic plan include?", "What does the standard plan include?"
    assert not verdict(query, stored, score=0.9)[0]
    assert verdict(query, stored, score=0.97)[0]


def test_a_long_reworded_text_is_judged_on_its_facts_only() -> None:
    stored = (
        "The export tool writes every table of the workspace to a single archive that "
        "you can download from the settings page once it has finished."
    )
    reworded = (
        "Once finished, the export utility produces one archive holding all workspace "
        "tables, downloadable via the settings page."
    )
    assert verdict(reworded, stored, score=0.85)[0]
    assert not verdict(reworded.replace("one archive", "3 archives"), stored, score=0.85)[0]


def test_confidence_is_a_share_and_zero_when_rejected() -> None:
    verifier = HitVerifier()
    accepted = verifier.verify("How do I log in?", Candidate("How do I log in?", 0.97))
    rejected = verifier.verify("Is it open at 6am?", Candidate("Is it open at 9am?", 0.97))
    assert accepted.accepted and 0.97 <= accepted.confidence <= 1.0
    assert not rejected.accepted and rejected.confidence == 0.0
    assert rejected.reason == "number 6am vs 9am"


def test_select_reranks_to_the_closer_wording() -> None:
    query = "What are your opening hours on bank holidays?"
    candidates = [
        Candidate("When are you open on public holidays?", 0.90),
        Candidate("What are your opening hours on bank holidays please?", 0.89),
    ]
    chosen = HitVerifier().select(query, candidates, threshold=0.85)
    assert chosen is not None
    assert chosen[0] == 1 and chosen[1].accepted


def test_select_prefers_the_near_twin_spelt_like_the_query() -> None:
    # two stored questions that differ only in wording the embedding ignores
    query = "How can I call the `load` function twice?"
    candidates = [
        Candidate("How do I call the load method twice?", 0.95),
        Candidate("How do I call the `load` function twice?", 0.94),
    ]
    chosen = HitVerifier().select(query, candidates, threshold=0.85)
    assert chosen is not None and chosen[0] == 1
    unranked = HitVerifier(rerank_weight=0.0, tie_weight=0.0).select(query, candidates, 0.85)
    assert unranked is not None and unranked[0] == 0


def test_select_keeps_the_nearest_when_the_wording_does_not_argue() -> None:
    query = "What is the capital of Peru?"
    candidates = [
        Candidate("Which city is the capital of Peru?", 0.93),
        Candidate("Tell me the capital city of Peru.", 0.90),
    ]
    chosen = HitVerifier().select(query, candidates, threshold=0.85)
    assert chosen is not None and chosen[0] == 0


def test_confidence_drops_when_a_different_question_ranks_close_behind() -> None:
    query = "How do I rename a column in a table?"
    alone = [Candidate("How can I rename a column in a table?", 0.95)]
    twins = [*alone, Candidate("How can I rename a column of a table?", 0.949)]
    apart = [*alone, Candidate("How do I drop a table?", 0.70)]
    verifier = HitVerifier()
    served_alone = verifier.select(query, alone, threshold=0.6)
    served_twins = verifier.select(query, twins, threshold=0.6)
    served_apart = verifier.select(query, apart, threshold=0.6)
    assert served_alone is not None and served_twins is not None and served_apart is not None
    assert served_apart[1].confidence == served_alone[1].confidence
    assert 0.5 * served_alone[1].confidence <= served_twins[1].confidence
    assert served_twins[1].confidence < 0.6 * served_alone[1].confidence
    # the same text stored twice is no ambiguity
    duplicated = verifier.select(query, [alone[0], alone[0]], threshold=0.6)
    assert duplicated is not None and duplicated[1].confidence == served_alone[1].confidence


def test_select_skips_a_rejected_nearest_candidate() -> None:
    query = "How do I export my invoices to CSV?"
    candidates = [
        Candidate("How do I export my invoices to PDF?", 0.95),
        Candidate("How can I export my invoices as CSV?", 0.93),
    ]
    chosen = HitVerifier().select(query, candidates, threshold=0.85)
    assert chosen is not None
    assert chosen[0] == 1 and chosen[1].accepted


def test_select_does_not_fall_back_far_below_the_nearest_candidate() -> None:
    query = "How do I export my invoices to CSV?"
    candidates = [
        Candidate("How do I export my invoices to PDF?", 0.95),
        Candidate("How can I export my invoices as CSV?", 0.86),
    ]
    assert HitVerifier(fallback_window=0.05).select(query, candidates, threshold=0.85) is None
    assert HitVerifier(fallback_window=0.2).select(query, candidates, threshold=0.85) is not None


def test_only_candidates_at_or_above_the_threshold_are_eligible() -> None:
    same = "How do I log in?"
    verifier = HitVerifier(aligned_threshold=1.0)
    assert verifier.select(same, [Candidate(same, 0.84)], threshold=0.85) is None
    assert verifier.select(same, [Candidate(same, 0.85)], threshold=0.85) is not None
    assert verifier.select(same, [], threshold=0.0) is None


def test_two_different_questions_that_tie_are_declined_when_asked() -> None:
    query = "How do I reset my router?"
    candidates = [
        Candidate("How can I reset my router?", 0.950),
        Candidate("How should I reset my router?", 0.949),
    ]
    assert HitVerifier().select(query, candidates, threshold=0.85) is not None
    assert HitVerifier(ambiguity_margin=0.02).select(query, candidates, threshold=0.85) is None
    duplicates = [candidates[0], candidates[0]]
    assert HitVerifier(ambiguity_margin=0.02).select(query, duplicates, threshold=0.85)


def test_cosine_only_serves_the_nearest_candidate_unverified() -> None:
    query, candidates = "Is the pool open at 6am?", [Candidate("Is the pool open at 9am?", 0.95)]
    chosen = CosineOnly().select(query, candidates, 0.9)
    assert chosen is not None
    assert chosen[0] == 0 and chosen[1].reason == "cosine only" and chosen[1].confidence == 0.95
    assert CosineOnly().select(query, candidates, 0.96) is None
    assert HitVerifier().select(query, candidates, 0.9) is None


@pytest.mark.parametrize("text", ["", "   ", "???", "🙂🙂", "a" * 5000, "1 2 3 4 5", "`x`"])
def test_odd_texts_are_compared_without_errors(text: str) -> None:
    verifier = HitVerifier()
    assert verifier.verify(text, Candidate(text, 1.0)).accepted
    verifier.verify(text, Candidate("How do I log in?", 0.5))
    verifier.verify("How do I log in?", Candidate(text, 0.5))


def test_signatures_are_memoised_up_to_the_limit() -> None:
    verifier = HitVerifier(memo_size=2)
    first = verifier.signature("How do I log in?")
    assert verifier.signature("How do I log in?") is first
    verifier.signature("one")
    verifier.signature("two")
    assert verifier.signature("How do I log in?") is not first
    assert verifier.signature("How do I log in?") == first


def test_align_pairs_typos_acronyms_and_compounds() -> None:
    left = align(
        parse("How do I login to the ML dashbaord?"),
        parse("How to log in to machine learning dashboard"),
    )
    assert left.left_query == () and left.left_candidate == ()
    differs = align(parse("Is the pool open at 6am?"), parse("Is the pool open at 8am?"))
    assert [t.surface for t in differs.left_query] == ["6am"]
    assert [t.surface for t in differs.left_candidate] == ["8am"]


def test_parse_normalises_numbers_and_drops_pleasantries() -> None:
    tokens = parse("Hello! Can I pay £1,000 at 7 p.m. on Mondays? Many thanks.").tokens
    assert [(t.stem, t.kind) for t in tokens] == [
        ("pay", "word"),
        ("1000", "number"),
        ("7pm", "number"),
        ("monday", "date"),
    ]
    assert [stem(w) for w in ("columns", "created", "create", "policies")] == [
        "column",
        "creat",
        "creat",
        "policy",
    ]


def test_below_the_threshold_only_a_fully_aligned_candidate_serves() -> None:
    query = "Do you offer a vegitarian set menu?"
    typo = Candidate("Do you offer a vegetarian set menu?", 0.81)
    reworded = Candidate("Is there a meat-free fixed menu?", 0.81)
    verifier = HitVerifier(aligned_threshold=0.70)
    assert verifier.select(query, [typo], 0.85) == (0, verifier.verify(query, typo))
    assert verifier.select(query, [reworded], 0.85) is None
    assert verifier.select(query, [Candidate(typo.question, 0.69)], 0.85) is None
    assert HitVerifier(aligned_threshold=1.0).select(query, [typo], 0.85) is None


def test_the_aligned_floor_still_applies_every_rule() -> None:
    changed = Candidate("Is the pool open at 8am?", 0.80)
    assert (
        HitVerifier(aligned_threshold=0.70).select("Is the pool open at 6am?", [changed], 0.85)
        is None
    )
    negated = Candidate("Do you offer a vegetarian set menu?", 0.80)
    assert HitVerifier().select("Don't you offer a vegetarian set menu?", [negated], 0.85) is None
