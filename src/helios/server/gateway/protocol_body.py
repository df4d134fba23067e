"""The base of every protocol's request model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ProtocolBody(BaseModel):
    # official clients send fields Helios does not know (newer API versions): ignored;
    # types stay strict (the routes validate with strict=True)
    model_config = ConfigDict(extra="ignore")
