import pytest

from helios.errors import (
    AuthenticationError,
    BadRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    error_for_status,
)


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (400, BadRequest, False),
        (404, BadRequest, False),
        (422, BadRequest, False),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (408, ProviderTimeout, True),
        (504, ProviderTimeout, True),
        (409, ProviderUnavailable, True),
        (500, ProviderUnavailable, True),
        (529, ProviderUnavailable, True),
    ],
)
def test_status_mapping(status: int, expected: type[ProviderError], retryable: bool) -> None:
    error = error_for_status(status, "boom", provider="p", model="m")
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status_code == status
    assert str(error) == "p:m: boom"


def test_rate_limit_keeps_retry_after() -> None:
    error = error_for_status(429, "slow down", provider="p", model="m", retry_after=2.5)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 2.5 and error.retryable


def test_partial_text_survives_on_unavailable() -> None:
    error = ProviderUnavailable("dropped", partial_text="half an ans", provider="p", model="m")
    assert error.partial_text == "half an ans"
