"""The quality gate: a mechanical evidence check plus the judge persona's JSON verdict.

The evidence check needs no model: every ``[En]`` cited must exist, an answer must cite at
least one passage when there is evidence, and must cite none when there is not. It runs
first: an answer that fails it is not sent to the judge (:meth:`JudgeVerdict.not_judged`),
which saves a model call and keeps a lenient judge from passing an uncited answer. The judge
returns ``{"pass": bool, "score": 0..1, "reasons": [...]}``; a reply that is not such an
object gets one repair request, then counts as a failed verdict with its raw text kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helios.messages import Message

CITATION = re.compile(r"\[E(\d+)\]")


@dataclass(frozen=True, slots=True)
class EvidenceCheck:
    ok: bool
    cited: tuple[str, ...]
    problems: tuple[str, ...]
    evidence_absent: bool


def check_evidence(text: str, evidence_ids: Sequence[str]) -> EvidenceCheck:
    """Check an answer's ``[En]`` citations against the passages that exist."""
    cited = tuple(dict.fromkeys(f"E{number}" for number in CITATION.findall(text)))
    available = set(evidence_ids)
    problems: list[str] = []
    if not available:
        if cited:
            problems.append(
                f"the answer cites {', '.join(cited)} but no evidence was provided; "
                "remove the citations"
            )
        return EvidenceCheck(not problems, cited, tuple(problems), evidence_absent=True)
    if not cited:
        problems.append(
            "the answer cites no evidence; cite the passages it relies on as [E1], [E2]"
        )
    unknown = [citation for citation in cited if citation not in available]
    if unknown:
        problems.append(
            f"the answer cites {', '.join(unknown)}, which do not exist "
            f"(the evidence is {', '.join(sorted(available, key=_number))})"
        )
    return EvidenceCheck(not problems, cited, tuple(problems), evidence_absent=False)


def _number(citation: str) -> int:
    return int(citation[1:])


class JudgeVerdict(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    passed: bool = Field(alias="pass")
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    valid: bool = True
    raw: str = ""
    judged: bool = True
    """False when the evidence check failed and the judge was not asked."""

    @classmethod
    def failed(cls, raw: str, why: str) -> JudgeVerdict:
        return cls(passed=False, score=0.0, reasons=[why], valid=False, raw=raw)

    @classmethod
    def not_judged(cls) -> JudgeVerdict:
        why = "not judged: the evidence check failed first"
        return cls(passed=False, score=0.0, reasons=[why], judged=False)


def parse_verdict(text: str) -> JudgeVerdict | None:
    """The first JSON object in ``text`` that is a valid verdict (models wrap JSON in prose
    or code fences); ``None`` when there is none."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        try:
            return JudgeVerdict.model_validate({**value, "raw": text})
        except ValidationError:
            continue
    return None


REPAIR_REQUEST = (
    "That reply was not a valid verdict. Reply with exactly one JSON object: "
    '{"pass": true or false, "score": a number from 0 to 1, "reasons": ["..."]}'
)

JudgeCall = Callable[[tuple[Message, ...]], Awaitable[str]]
"""Runs the judge persona with follow-up turns appended; returns its reply text."""


async def gate_verdict(
    draft: str, evidence_ids: Sequence[str], call: JudgeCall
) -> tuple[EvidenceCheck, JudgeVerdict]:
    """The evidence check, then the judge only if the answer passed it."""
    check = check_evidence(draft, evidence_ids)
    return check, (await judge(call) if check.ok else JudgeVerdict.not_judged())


async def judge(call: JudgeCall) -> JudgeVerdict:
    """Ask the judge; one repair request if its reply is not a verdict."""
    first = await call(())
    verdict = parse_verdict(first)
    if verdict is not None:
        return verdict
    second = await call(
        (Message(role="assistant", content=first), Message(role="user", content=REPAIR_REQUEST))
    )
    verdict = parse_verdict(second)
    if verdict is not None:
        return verdict
    return JudgeVerdict.failed(second, "the judge did not return a valid JSON verdict")


@dataclass(frozen=True, slots=True)
class GateResult:
    pass_number: int
    evidence: EvidenceCheck
    verdict: JudgeVerdict
    min_score: float

    @property
    def passed(self) -> bool:
        return self.evidence.ok and self.verdict.passed and self.verdict.score >= self.min_score

    def feedback(self, draft: str) -> str:
        """What the next synthesis pass is told to fix."""
        points = list(self.evidence.problems)
        if not self.verdict.judged:
            pass  # the evidence problems are the whole verdict
        elif not self.verdict.valid:
            points.append("the judge could not grade the answer; make it clearer")
        elif not self.verdict.passed or self.verdict.score < self.min_score:
            points.extend(self.verdict.reasons or [f"the judge scored it {self.verdict.score:.2f}"])
        listed = "\n".join(f"- {point}" for point in points)
        return (
            "The quality gate rejected the previous answer:\n"
            f"{listed}\n\nPrevious answer:\n{draft}\n\n"
            "Write an improved answer that fixes these points."
        )
