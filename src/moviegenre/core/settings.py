"""Configuration in one place, read from ``MOVIEGENRE_*`` environment variables.

Nothing happens at import: call :func:`get_settings` where a value is needed.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from moviegenre.core.errors import SettingsError
from moviegenre.core.items import DEFAULT_MAX_PLOT_CHARS
from moviegenre.core.tables import DEFAULT_MAX_INPUT_BYTES

#: The URL schemes a ``MOVIEGENRE_DATA_MIRROR`` may use; anything without ``://`` is a directory.
MIRROR_SCHEMES = ("https", "http", "file")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOVIEGENRE_", extra="ignore")

    data_home: Path = Field(
        default=Path("~/.cache/moviegenre"),
        description="Where public datasets are downloaded and cached.",
    )
    data_mirror: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Where to fetch the public data files from instead of GitHub, for sites without "
        "internet access: a base URL (https://, http:// or file://) or a local directory holding "
        "dataTraining.zip and dataTesting.zip. Their sha256 is checked all the same.",
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
    piece_rows: int = Field(
        default=5_000,
        ge=1,
        le=10_000_000,
        description="Rows of a piece of batch input: `score` cuts a CSV or zip file into pieces of this many "
        "rows, scored in parallel by the workers (Parquet row groups are grouped up to it).",
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Per-request time limit for prediction work."
    )

    @field_validator("data_mirror")
    @classmethod
    def _mirror_scheme(cls, value: str | None) -> str | None:
        scheme = value.partition("://")[0].lower() if value and "://" in value else None
        if scheme is not None and scheme not in MIRROR_SCHEMES:
            raise ValueError(f"a mirror URL starts with {' or '.join(f'{s}://' for s in MIRROR_SCHEMES)}, not {scheme}://")
        return value

    def resolved_data_home(self) -> Path:
        return self.data_home.expanduser()


@lru_cache
def get_settings() -> Settings:
    """The settings; a :class:`~moviegenre.core.errors.SettingsError` naming each ``MOVIEGENRE_*``
    variable that is wrong, and why, when one is (so every door says it in one line)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_settings_problems(exc)) from None


def describe_settings_problems(exc: ValidationError) -> str:
    """``MOVIEGENRE_MAX_ITEMS='abc': Input should be a valid integer...``, for each problem."""
    return "bad setting: " + "; ".join(
        f"MOVIEGENRE_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: "
        + str(e["msg"]).removeprefix("Value error, ")
        for e in exc.errors()
    )
