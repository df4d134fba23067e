"""A provider simulator: the Anthropic, OpenAI and Gemini wire protocols, offline.

The official SDKs work against it unmodified; point them at ``SimServer.base_url``
(Anthropic), ``base_url + "/v1"`` (OpenAI) or ``HttpOptions(base_url=base_url)`` (Gemini).
Replies are deterministic per prompt (a tool call or a JSON document by schema when the
request asks for one, see :mod:`helios.sim.tools`), usage follows a warm-prefix model of
each provider's prompt caching, latency follows a seeded :class:`LatencyProfile`, and
:class:`Fault` s can be injected from Python, over HTTP or per request by header, or drawn
per request at the seeded rates of a :class:`FaultProfile`.
"""

from helios.sim.app import FAULT_HEADER, create_app
from helios.sim.cache import PromptUsage
from helios.sim.config import (
    Fault,
    FaultKind,
    FaultProfile,
    LatencyProfile,
    ProtocolName,
    SimConfig,
)
from helios.sim.server import SimServer, serve
from helios.sim.state import RecordedRequest, SimState, SimStats
from helios.sim.text import VOCABULARY, count_tokens

__all__ = [
    "FAULT_HEADER",
    "VOCABULARY",
    "Fault",
    "FaultKind",
    "FaultProfile",
    "LatencyProfile",
    "PromptUsage",
    "ProtocolName",
    "RecordedRequest",
    "SimConfig",
    "SimServer",
    "SimState",
    "SimStats",
    "count_tokens",
    "create_app",
    "serve",
]
