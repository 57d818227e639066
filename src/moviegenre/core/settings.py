"""Configuration in one place, read from ``MOVIEGENRE_*`` environment variables.

Nothing happens at import: call :func:`get_settings` where a value is needed.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from moviegenre.core.items import DEFAULT_MAX_PLOT_CHARS
from moviegenre.core.tables import DEFAULT_MAX_INPUT_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOVIEGENRE_", extra="ignore")

    data_home: Path = Field(
        default=Path("~/.cache/moviegenre"),
        description="Where public datasets are downloaded and cached.",
    )
    model: Path = Field(
        default=Path("models/default"),
        description="The model directory that `serve` and the API load.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="When set, every non-health route needs header x-api-key."
    )
    max_plot_chars: int = Field(default=DEFAULT_MAX_PLOT_CHARS, gt=0, description="Longest plot accepted.")
    max_items: int = Field(default=256, gt=0, description="Most items in one predict request.")
    max_explained_items: int = Field(
        default=64,
        gt=0,
        description="Most items explained in one predict request: explaining an item costs about 15 times "
        "what scoring it does.",
    )
    max_body_bytes: int = Field(
        default=8_000_000, gt=0, description="Largest request body accepted, in bytes."
    )
    max_input_bytes: int = Field(
        default=DEFAULT_MAX_INPUT_BYTES,
        gt=0,
        description="Most bytes one input file may hold once decompressed (a CSV, a zip's CSV, a Parquet file).",
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Per-request time limit for prediction work."
    )

    def resolved_data_home(self) -> Path:
        return self.data_home.expanduser()


@lru_cache
def get_settings() -> Settings:
    return Settings()
