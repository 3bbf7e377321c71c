"""The runs API without API_TOKEN answers only this machine's own clients."""

from __future__ import annotations

import pytest

from test_coordinator.entrypoints.http.auth import not_from_this_machine


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "[::1]:8080", "127.0.0.2:1"]
)
def test_a_client_of_this_machine_is_answered(host: str) -> None:
    assert not_from_this_machine(host, None) is None


@pytest.mark.parametrize(
    "host", ["evil.example:8080", "10.0.0.5:8080", "[2001:db8::1]:8080", "localhost.evil.example"]
)
def test_a_request_naming_another_host_is_refused(host: str) -> None:
    """DNS rebinding: a page's own name resolved to 127.0.0.1 still names its site."""
    refused = not_from_this_machine(host, None)

    assert refused is not None and "is not this machine" in refused


def test_a_request_from_a_web_page_is_refused_even_from_this_machine() -> None:
    """A page of any site, opened in a browser here, may send a POST without a preflight
    (cancel has no body); its Origin gives it away."""
    refused = not_from_this_machine("127.0.0.1:8080", "https://evil.example")

    assert refused is not None and "from a web page (https://evil.example)" in refused
