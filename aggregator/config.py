"""Configuration: YAML in, a validated :class:`Config` out.

The YAML is read with ruamel.yaml so that every node keeps its line number; pydantic
validates (unknown keys rejected); each error is reported as
``file:line: dotted.key: message``. ``${VAR}`` (or ``${VAR:-default}``) in any string
is replaced from the environment before validation.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from aggregator import configcache
from aggregator.exceptions import ConfigError
from aggregator.yamltree import (
    MAX_NODES,
    OneVersionResolver,
    TooBig,
    dotted_path,
    env_errors_with_lines,
    expand_env,
    expanded_size,
    line_of,
    plain_data,
)

# storage.url schemes of a PostgreSQL store (psycopg 3 is the driver either way).
PG_SCHEMES = ("postgresql://", "postgresql+psycopg://")

DEFAULT_CONFIG_PATH = Path("config/aggregator.yaml")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1}


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 2h or 1d")
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 2h, 1d)")


def parse_size(value: Any) -> int:
    """``10MB``, ``512KiB`` (or a number of bytes) as an int."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10MB")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = m.group(2).lower() if m.group(2) else None
            return int(float(m.group(1)) * _SIZE_UNITS[unit])
    raise ValueError(f"{value!r} is not a size (use e.g. 500KB, 10MB)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Model):
    url: str = "sqlite:///../data/aggregator.sqlite3"

    @field_validator("url")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.startswith(PG_SCHEMES):
            parts = urlsplit(v)
            if not parts.hostname and "host=" not in parts.query:
                raise ValueError("a postgresql URL needs a host: postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
            if not parts.path.strip("/"):
                raise ValueError("a postgresql URL needs a database name: postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
            return v
        if v.startswith("postgres"):
            raise ValueError("for PostgreSQL write postgresql://USER:PASSWORD@HOST:PORT/DATABASE (or "
                             "postgresql+psycopg://…; psycopg 3 is the driver)")
        if not v.startswith("sqlite:///"):
            raise ValueError("use sqlite:///PATH (e.g. sqlite:///../data/aggregator.sqlite3) or "
                             "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        if len(v) == len("sqlite:///"):
            raise ValueError("sqlite URL has no path")
        return v


class OutputConfig(_Model):
    dir: str = "../output"
    title: str = "Merged defence news"
    link: str = "https://example.org/"
    base_url: str = "https://example.org/feeds/"
    description: str = "Blog posts linked to the outlet articles they cite, translated."
    max_entries: int = Field(200, ge=1, le=100_000)
    include: Literal["all", "cited", "blog"] = "cited"

    @field_validator("link", "base_url")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an absolute http(s) URL")
        return v

    @field_validator("base_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


ProviderName = Literal["google", "mymemory", "libre", "deepl", "linguee", "pons",
                       "yandex", "qcri", "papago", "baidu", "chatgpt", "microsoft", "openai"]

# Providers deep-translator lists that cannot work as it ships them (1.11.4); config
# validation rejects them with these reasons (see docs/translation.md).
UNUSABLE_PROVIDERS = {
    "qcri": "deep-translator's QCRI client cannot translate (its translate() needs an undocumented"
            " 'domain' argument and ignores HTTP errors), and QCRI covers only Arabic, English and Spanish",
    "papago": "deep-translator's Papago client sends language names ('Japanese') where the API wants"
              " codes, and Naver has moved Papago to a different API",
    "chatgpt": "deep-translator's ChatGPT client calls openai.ChatCompletion, which the openai package"
               " removed in version 1.0; use provider openai (with model and api_key) instead",
    "linguee": "Linguee is a dictionary (single words), not a text translator",
    "pons": "PONS is a dictionary (single words), not a text translator",
}


class ProviderConfig(_Model):
    provider: ProviderName
    url: str | None = None
    api_key: str | None = None
    secret: str | None = None
    email: str | None = None
    region: str | None = None
    requests_per_minute: float | None = Field(None, gt=0)
    characters_per_minute: float | None = Field(None, gt=0)
    # openai (any OpenAI-compatible chat-completions server) only:
    model: str | None = Field(None, min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    max_texts_per_request: int | None = Field(None, ge=1, le=500)
    max_characters_per_request: int | None = Field(None, ge=100, le=1_000_000)

    @property
    def label(self) -> str:
        """The provider's name in the chain, status and logs: a model goes with its own
        (``openai:gpt-4o-mini``), since two models are two providers."""
        return f"openai:{self.model}" if self.provider == "openai" else self.provider

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an absolute http(s) URL")
        return v if v.endswith("/") else v + "/"

    @model_validator(mode="after")
    def _needs(self) -> ProviderConfig:
        if self.provider in UNUSABLE_PROVIDERS:
            raise ValueError(f"provider {self.provider} cannot be used: {UNUSABLE_PROVIDERS[self.provider]}")
        if self.provider == "baidu" and not (self.api_key and self.secret):
            raise ValueError("provider baidu needs api_key (the appid) and secret (the appkey)")
        if self.provider == "libre" and not self.url:
            raise ValueError("provider libre needs url (the LibreTranslate server, e.g. http://127.0.0.1:5000/)")
        if self.provider in ("deepl", "yandex", "microsoft") and not self.api_key:
            raise ValueError(f"provider {self.provider} needs api_key")
        if self.provider == "openai":
            if not self.model:
                raise ValueError("provider openai needs model (e.g. gpt-4o-mini, or qwen2.5:7b on Ollama)")
            if (self.url is None or "//api.openai.com/" in self.url) and not self.api_key:
                raise ValueError("provider openai needs api_key for api.openai.com (a local server such as"
                                 " Ollama needs url instead, e.g. http://localhost:11434/v1/)")
        else:
            given = [k for k in ("model", "temperature", "max_texts_per_request", "max_characters_per_request")
                     if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for provider openai")
        return self


class TranslationConfig(_Model):
    target: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    timeout: Duration = timedelta(seconds=20)
    providers: tuple[ProviderConfig, ...] = (ProviderConfig(provider="google"),)
    glossary: dict[str, str] = Field(default_factory=dict)
    # Human translations (a TMX 1.4 file, relative to the config's folder): used before
    # any provider, looked up by exact source text.
    memory: str | None = None
    retry_backoff: Duration = timedelta(minutes=5)
    max_retry_backoff: Duration = timedelta(hours=6)
    budget: Duration = timedelta(minutes=10)


class ScheduleConfig(_Model):
    every: Duration = timedelta(minutes=30)
    jitter: Duration = timedelta(seconds=60)


class FetchConfig(_Model):
    timeout: Duration = timedelta(seconds=30)  # the whole fetch, redirects and body included
    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=15)  # silence between two reads (never beyond timeout)
    max_bytes: Size = 10 * 1000**2
    concurrency: int = Field(8, ge=1, le=256)
    # Politeness: more than two connections to one publisher looks like an attack.
    per_host: int = Field(2, ge=1, le=2)
    max_backoff: Duration = timedelta(hours=24)
    # Post pages (sources[].full_text) fetched per source and cycle, at most: subscribing
    # to a blog with 500 excerpt-only posts must not fire 500 requests at it at once.
    pages_per_cycle: int = Field(20, ge=0, le=1000)
    # Loopback, private and link-local addresses are refused unless this is set (the
    # private-network guard; loopback test servers need it).
    allow_private_networks: bool = False


class MatchingConfig(_Model):
    window: Duration = timedelta(days=7)
    late_window: Duration = timedelta(days=14)


class RetentionConfig(_Model):
    """How long the store keeps what no reader needs any more (see docs/operations.md)."""

    # Outlet articles older than this (by date and by their last sighting in their feed)
    # that no post cites are pruned; null keeps every article. Posts are never pruned.
    articles: Duration | None = timedelta(days=90)
    # The store file is compacted (VACUUM) at most this often.
    compact_every: Duration = timedelta(days=7)


_ID = r"^[a-z0-9_-]+$"


class SourceConfig(_Model):
    id: str = Field(pattern=_ID)
    name: str | None = None
    url: str
    role: Literal["blog", "outlet"]
    language: str = Field("en", pattern=r"^([a-z]{2,3}(-[A-Za-z]{2,4})?|auto)$")
    every: Duration | None = None
    aliases: tuple[str, ...] = ()
    # This source's own origin (scheme://host:port) may be a private address (a local
    # RSSHub, an intranet feed); where it redirects is still checked.
    allow_private_network: bool = False
    # The site an aggregated feed carries (Google News' per-site feed: https://www.reuters.com):
    # a 参考 link to that site matches this source's item under the link's headline.
    site: str | None = None
    # The post's own page is fetched for its text: auto when the feed carries only an
    # excerpt (docs/fetching.md, "Full text"), always for every new entry, or never.
    full_text: Literal["auto", "always", "never"] = "auto"

    @field_validator("url", "site")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v, re.I):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @property
    def title(self) -> str:
        return self.name or self.id


class Config(_Model):
    storage: StorageConfig = StorageConfig()
    output: OutputConfig = OutputConfig()
    translation: TranslationConfig = TranslationConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    fetch: FetchConfig = FetchConfig()
    matching: MatchingConfig = MatchingConfig()
    retention: RetentionConfig = RetentionConfig()
    sources: tuple[SourceConfig, ...]

    _path: Path | None = PrivateAttr(default=None)
    _env_values: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    @field_validator("sources")
    @classmethod
    def _unique(cls, v: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        seen: set[str] = set()
        for s in v:
            if s.id in seen:
                raise ValueError(f"source id {s.id!r} is used twice")
            seen.add(s.id)
        return v

    # -- resolved paths ------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    @property
    def is_postgres(self) -> bool:
        return self.storage.url.startswith(PG_SCHEMES)

    @property
    def db_path(self) -> Path:
        """The SQLite file (a PostgreSQL store has none: see :attr:`store_location`)."""
        raw = self.storage.url[len("sqlite:///"):]
        p = Path(raw)
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def store_location(self) -> str:
        """What :class:`aggregator.store.Store` opens: the SQLite file's path, or the PostgreSQL URL."""
        return self.storage.url if self.is_postgres else str(self.db_path)

    @property
    def store_name(self) -> str:
        """The store as messages, logs and ``status`` name it: the file, or the URL without its password."""
        if not self.is_postgres:
            return str(self.db_path)
        from aggregator.redaction import mask_url

        return mask_url(self.storage.url)

    @property
    def output_dir(self) -> Path:
        p = Path(self.output.dir)
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def memory_path(self) -> Path | None:
        """translation.memory, resolved against the config's folder."""
        if not self.translation.memory:
            return None
        p = Path(self.translation.memory).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def source(self, source_id: str) -> SourceConfig:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)

    def interval(self, source: SourceConfig) -> timedelta:
        return source.every or self.schedule.every

    @property
    def secrets(self) -> frozenset[str]:
        """Values never to show in logs, errors or ``status``: what ``${VAR}`` brought in
        from the environment (outside the storage and output paths and links, which are
        not secret and which errors must be able to name), providers' keys, and passwords
        in URLs."""
        out = {value for path, value in self._env_values if not path.startswith(("storage.", "output."))}
        for p in self.translation.providers:
            out |= {v for v in (p.api_key, p.secret) if v}
        urls = [s.url for s in self.sources] + [p.url for p in self.translation.providers if p.url]
        for url in [*urls, self.storage.url] if self.is_postgres else urls:
            # No "@", no user part: no password (and no parsing, 1,000 sources at every stage)
            password = urlsplit(url).password if "@" in url else None
            if password:
                out |= {password, unquote(password)}
        return frozenset(out)


def format_duration(d: timedelta) -> str:
    """The shortest config spelling of a duration: ``15m``, ``2h``, ``1d``, ``90s``."""
    s = d.total_seconds()
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{int(s // n)}{unit}"
    return f"{s:g}s"


# -- loading ---------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file. Raises :class:`ConfigError`."""
    p = Path(path)
    filename = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{filename}: no such file (pass --config PATH, or create it; "
                          f"see README 'Configuration')") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{filename}: cannot read: {e}") from None
    return parse_config(text, filename=filename, path=p, env=env)


def parse_config(text: str, *, filename: str = "<config>", path: Path | None = None,
                 env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    config = _parse_fast(text, path, env)
    if config is not None:
        return config
    return _parse_with_lines(text, filename, path, env)


def _parse_fast(text: str, path: Path | None, env: dict[str, str]) -> Config | None:
    """A valid config, read through ruamel's C loader; None for anything else.

    The round-trip loader keeps every node's line for the error messages, and costs
    ten times as much (0.9 s for a thousand sources: it gathers the comments too). A
    config is almost always valid, so it is read the quick way first; any problem at
    all (syntax, an unset variable, an alias bomb, a bad value) is left to
    :func:`_parse_with_lines`, which reads it again and reports ``file:line`` as ever."""
    kept = configcache.load(path, text) if path is not None else None
    env_errors: list[tuple[int, str, str]] = []
    env_values: list[tuple[str, str]] = []
    keep = None
    if kept is not None:
        # JSON's own plain data, kept only of a valid config (no aliases, within bounds).
        data, variables = kept
        if variables:
            expand_env(data, env, env_errors, found=env_values)
    else:
        try:
            yaml = YAML(typ="safe", pure=False)
            yaml.Resolver = OneVersionResolver
            root = yaml.load(text)
        except Exception:  # reported, with its line, by the round-trip reading
            return None
        if not isinstance(root, dict):
            return None
        # Before the expansion, which changes strings, never their number: a tree to keep
        # (configcache) is made only of a file that is not an alias bomb.
        if expanded_size(root, {}, set()) > MAX_NODES:
            return None
        keep = configcache.as_json(root) if path is not None else None
        expand_env(root, env, env_errors, found=env_values)
        try:
            data = plain_data(root, budget=[MAX_NODES])
        except TooBig:
            return None
    if env_errors:
        return None
    try:
        config = Config.model_validate(data)
    except ValidationError:
        return None
    if _cross_checks(config):
        return None
    if keep is not None and path is not None:
        configcache.save(path, text, keep)
    config._path = path.resolve() if path else None
    config._env_values = tuple(env_values)
    return config


def _parse_with_lines(text: str, filename: str, path: Path | None, env: dict[str, str]) -> Config:
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else "?"
        raise ConfigError(f"{filename}:{line}: YAML syntax: {e.problem or e}") from None
    except Exception as e:  # ruamel raises a few unmarked errors (duplicate keys, ...)
        raise ConfigError(f"{filename}: YAML: {e}") from None
    if root is None:
        raise ConfigError(f"{filename}:1: (top): the file is empty; it needs at least 'sources:'")
    if not isinstance(root, CommentedMap):
        raise ConfigError(f"{filename}:1: (top): expected a mapping of sections (sources:, output:, ...)")

    env_errors: list[tuple[int, str, str]] = []
    env_values: list[tuple[str, str]] = []
    expand_env(root, env, env_errors, found=env_values)
    errors = env_errors_with_lines(root, env_errors, filename)

    try:
        if expanded_size(root, {}, set()) > MAX_NODES:  # counted per distinct node: instant for a bomb
            raise TooBig
        data = plain_data(root, budget=[MAX_NODES])
    except TooBig:
        raise ConfigError(f"{filename}:1: (top): more than {MAX_NODES:,} values once YAML aliases (*name) are "
                          "expanded: refused (an alias bomb?); write the values out, or use fewer aliases") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            # pydantic appends the failing type for unions/functions; keep only real keys
            loc = tuple(x for x in loc if isinstance(x, int) or not str(x).startswith(("function-", "tagged-")))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (not one aggregator reads; check its spelling)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            msg = msg.removeprefix("Value error, ")
            errors.append(f"{filename}:{line_of(root, loc)}: {dotted_path(loc)}: {msg}")
        raise ConfigError(errors) from None
    for loc, msg in _cross_checks(config):
        errors.append(f"{filename}:{line_of(root, loc)}: {dotted_path(loc)}: {msg}")
    if errors:
        raise ConfigError(errors)
    config._path = path.resolve() if path else None
    config._env_values = tuple(env_values)
    return config


def _cross_checks(config: Config) -> list[tuple[tuple[Any, ...], str]]:
    """Errors that involve more than one key."""
    out: list[tuple[tuple[Any, ...], str]] = []
    # A post keeps looking for the articles it cites for window + late_window: pruning
    # sooner could remove an article before the post that cites it is matched.
    keep = config.retention.articles
    need = config.matching.window + config.matching.late_window
    if keep is not None and keep < need:
        out.append((("retention", "articles"),
                    f"{format_duration(keep)} is shorter than matching.window + matching.late_window "
                    f"({format_duration(need)}): articles could be pruned before the posts that cite them "
                    "are matched"))
    return out
