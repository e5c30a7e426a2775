"""What every config section shares: unknown keys refused, strict types, frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A ``[section]`` of the TOML file (I.12: a typo is an error, never a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Paths come from TOML as text: the only place a string is turned into another type.
# Relative paths are taken against the config file's folder (config.resolve_paths).
FilePath = Annotated[Path, Field(strict=False)]
