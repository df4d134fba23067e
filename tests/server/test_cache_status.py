"""The ``Cache-Status`` header (RFC 9211) the gateway sends: a refused L3 candidate says why."""

from __future__ import annotations

from helios.cache.reports import CacheLookup, LayerReport, l1_off
from helios.messages import CacheDirectives
from helios.server.gateway.cache_control import cache_status

NO_L2 = LayerReport(True, True, False, 0.1, "no entry")


def missed(l3: LayerReport) -> CacheLookup:
    return CacheLookup(
        reply=None,
        layer=None,
        confidence=None,
        key="k",
        provider="anthropic",
        model="claude-sonnet-5-5",
        l1=l1_off("disabled"),
        l2=NO_L2,
        l3=l3,
        lookup_time_ms=1.0,
        tokens_saved=0,
        cost_saved_usd=0.0,
    )


def test_a_refused_candidate_is_named_in_the_detail() -> None:
    reason = (
        "1 candidate(s) above 0.85 rejected by the verifier; nearest (0.921): number 6am vs 8am"
    )
    header = cache_status(
        missed(LayerReport(True, True, False, 2.0, reason, 0.921)), CacheDirectives()
    )
    assert header == {"Cache-Status": f'helios; fwd=miss; detail="L3 {reason}"'}


def test_a_plain_miss_has_no_detail() -> None:
    l3 = LayerReport(True, True, False, 2.0, "no entry at or above 0.85", 0.4)
    assert cache_status(missed(l3), CacheDirectives()) == {"Cache-Status": "helios; fwd=miss"}
    assert cache_status(missed(l3), CacheDirectives(lookup=False)) == {
        "Cache-Status": "helios; fwd=bypass"
    }


def test_the_detail_stays_a_valid_header_string() -> None:
    reason = 'rejected by the verifier; nearest (0.9): name `a"b\\c` vs Zürich'
    header = cache_status(missed(LayerReport(True, True, False, 2.0, reason)), CacheDirectives())
    value = header["Cache-Status"]
    assert value.isascii()
    assert value.endswith(
        'detail="L3 rejected by the verifier; nearest (0.9): name `a\\"b\\\\c` vs Z?rich"'
    )
