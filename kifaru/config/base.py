"""Strict configuration base: unknown keys fail with the nearest valid key suggested."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def did_you_mean(name: str, valid: list[str] | set[str]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelled name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class StrictConfig(BaseModel):
    """Plain, strict, immutable config data.

    Frozen so that nothing (loading a video, say) can change a config behind its owner's back;
    use ``model_copy(update=...)`` to derive a new one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = set(cls.model_fields)
            unknown = [key for key in data if key not in valid]
            if unknown:
                problems = "; ".join(
                    f"unknown field '{key}'{did_you_mean(str(key), valid)}" for key in unknown
                )
                raise ValueError(f"{problems}. Valid fields: {', '.join(sorted(valid))}")
        return data
