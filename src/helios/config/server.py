"""Settings of ``helios serve`` that guard who may reach it (the ``server:`` section).

Example (``helios.yaml``)::

    server:
      allowed_hosts: [helios.internal]   # Host names a loopback server answers besides its own
      allow_unauthenticated: false       # serve a non-loopback address with no API key
      public_metrics: false              # /metrics without an admin key
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from helios.config.section import Section

# A DNS name, an IPv4 address or a bracketed IPv6 address: what a Host header names.
_HOST_NAME = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")


class ServerSettings(Section):
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names a server bound to loopback answers besides localhost,"
        " 127.0.0.1 and [::1] (any port of theirs: the bound one); e.g. a name a local proxy"
        " forwards",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="serve a non-loopback address while the key store holds no key: anyone"
        " who reaches it calls models as tenant 'default' (a container behind its own network)",
    )
    public_metrics: bool = Field(
        default=False,
        description="serve /metrics without a key (a scraper on a trusted network); otherwise"
        " it needs an admin key once keys exist",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        checked = []
        for name in names:
            if not _HOST_NAME.match(name):
                raise ValueError(
                    f"'{name}' is not a host name (a DNS name, an IPv4 address or [IPv6],"
                    " without scheme, port or path)"
                )
            checked.append(name.lower())
        return checked
