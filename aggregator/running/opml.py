"""Sources in and out as OPML 2.0 (http://opml.org/spec2.opml).

Export (:func:`export_opml`) writes one ``<outline type="rss">`` per source, in a "Blog"
and an "Outlets" folder (a folder with no source is left out), with the standard
attributes feed readers use (``text``, ``title``, ``xmlUrl``, ``language``) plus our own
in the ``aggregator`` namespace (:data:`NS`) so that export -> import loses nothing:

    aggregator:id        the source id
    aggregator:role      blog | outlet
    aggregator:language  the configured language (also ``auto``, which is no language code)
    aggregator:every     the source's own interval, e.g. ``15m`` (only when set)
    aggregator:aliases   the aliases joined with ``|``; a ``|`` or ``\\`` inside an alias is
                         written ``\\|`` / ``\\\\`` (aliases may well contain commas, so a
                         comma cannot be the separator)

Import (:func:`import_opml`) **merges into the existing YAML config, keeping its
comments and formatting**: the config is read with ruamel.yaml in round-trip mode and
the new sources are appended to the ``sources:`` sequence. When that sequence is an
ordinary block list (the usual case) the new items are rendered by ruamel.yaml and
spliced in as text after its last item, so every existing byte stays where it was;
otherwise (``sources: []``, a flow list, or when the splice would not reload to the
expected data) the whole document is re-dumped in round-trip mode, which keeps the
comments but may re-indent. The rules:

* a feed whose URL is already configured (compared after lower-casing scheme and host,
  dropping a default port and a trailing slash) is skipped, as is one repeated in the
  OPML and one whose ``xmlUrl`` is not http(s);
* outlines without ``xmlUrl`` are folders: nested folders are flattened;
* role, language, every and aliases come from the ``aggregator:`` attributes when
  present (and valid), else the outline's ``language``, else the defaults passed in;
* a new id is ``aggregator:id`` if present, else a slug of the title (ASCII, lower
  case, ``[a-z0-9_-]``), else, for a title with no ASCII letters (Japanese), a slug of
  the feed's host (``www.politico.com`` -> ``politico``); ``-2``, ``-3``... make it unique;
* the merged text is validated with :func:`aggregator.config.parse_config` before it is
  written, atomically (temporary file in the same folder, fsync, rename; through a
  symlink, the file it points to is replaced and the link stays, see aggregator.files); with
  ``dry_run`` nothing is written;
* a missing config file is created holding only ``sources:`` and a header comment.

The OPML is untrusted input: it is parsed with defusedxml, which refuses any document
declaring entities or external references, so neither an entity bomb nor an external
entity (``<!ENTITY x SYSTEM "file:///etc/passwd">``) can expand.
Strings from the OPML never carry ``${`` into the config, where it would be replaced
from the environment.
"""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from aggregator.config import (
    Config,
    format_duration,
    parse_config,
    parse_duration,
)
from aggregator.exceptions import ConfigError
from aggregator.yamltree import plain_data

NS = "https://github.com/aggregator-project/aggregator/opml"
_A = f"{{{NS}}}"
ROLE_FOLDERS = (("blog", "Blog"), ("outlet", "Outlets"))
MAX_OPML_BYTES = 20 * 1000**2  # a reader's export of thousands of feeds is ~1 MB

_ID = re.compile(r"^[a-z0-9_-]+$")
_LANG = re.compile(r"^([a-z]{2,3}(-[A-Za-z]{2,4})?|auto)$")
# Characters XML 1.0 cannot carry; lxml refuses them rather than escaping.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Second-level labels under a country code (example.co.jp -> example).
_SLD = {"co", "com", "ne", "net", "or", "org", "ac", "go", "gov", "edu", "gr", "lg", "ad", "ed"}
_FEED_HOST_LABELS = {"www", "rss", "feeds", "feed", "rssfeeds", "atom"}


# ------------------------------------------------------------------------------ export


def export_opml(config: Config, now: datetime | None = None) -> str:
    """The configured sources as an OPML 2.0 document (a str, XML declaration included)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    root = etree.Element("opml", version="2.0", nsmap={"aggregator": NS})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = _xml_text(f"{config.output.title} sources")
    etree.SubElement(head, "dateCreated").text = format_datetime(now.astimezone(UTC), usegmt=True)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    for role, label in ROLE_FOLDERS:
        members = [s for s in config.sources if s.role == role]
        if not members:
            continue
        folder = etree.SubElement(body, "outline", text=label, title=label)
        for s in members:
            o = etree.SubElement(folder, "outline")
            # Attribute order mirrors what readers write, which makes diffs of exports readable.
            o.set("type", "rss")
            o.set("text", _xml_text(s.title))
            o.set("title", _xml_text(s.title))
            o.set("xmlUrl", _xml_text(s.url))
            # htmlUrl: the config does not know a source's site, so it is left out (optional in OPML).
            if s.language != "auto":
                o.set("language", s.language)
            o.set(_A + "id", s.id)
            o.set(_A + "role", s.role)
            o.set(_A + "language", s.language)
            if s.every is not None:
                o.set(_A + "every", format_duration(s.every))
            if s.aliases:
                o.set(_A + "aliases", _xml_text(join_aliases(s.aliases)))
    # lxml writes the declaration with single quotes; readers accept both, but spell it as specified.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + str(etree.tostring(
        root, encoding="unicode", pretty_print=True))


def join_aliases(aliases: tuple[str, ...] | list[str]) -> str:
    return "|".join(a.replace("\\", "\\\\").replace("|", "\\|") for a in aliases)


def split_aliases(value: str) -> list[str]:
    """Inverse of :func:`join_aliases` (``\\|`` is a literal bar, ``\\\\`` a backslash)."""
    out: list[str] = []
    cur: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            cur.append(next(chars, "\\"))
        elif ch == "|":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [a.strip() for a in out if a.strip()]


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


# ------------------------------------------------------------------------------ import


def import_opml(config_path: Path, opml_path: Path, *, role: str = "outlet", language: str = "en",
                dry_run: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """Merge the feeds of ``opml_path`` into the config at ``config_path``.

    Returns ``(added, skipped)``: ``[(id, url)]`` of the new sources and the URLs left
    out (already configured, repeated, or not http(s)). Raises :class:`ConfigError` for
    an unreadable or hostile OPML file, or when the merged config would not be valid.
    See the module docstring for the rules.
    """
    config_path, opml_path = Path(config_path), Path(opml_path)
    feeds = _read_opml(opml_path)

    exists = config_path.exists()
    try:
        original = config_path.read_text(encoding="utf-8") if exists else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{config_path}: cannot read: {e}") from None
    yaml = _rt_yaml()
    try:
        root = yaml.load(original) if original.strip() else None
    except Exception:
        root = None  # a YAML syntax error: parse_config below reports it with its line
        _check_original(original, config_path)
    if root is not None and not isinstance(root, CommentedMap):
        _check_original(original, config_path)
    existing = root.get("sources") if isinstance(root, CommentedMap) else None
    existing_items = [s for s in existing if isinstance(s, dict)] if isinstance(existing, list) else []
    taken_ids = {str(s.get("id")) for s in existing_items}
    seen_urls = {_url_key(str(s.get("url", ""))) for s in existing_items}

    added: list[tuple[str, str]] = []
    skipped: list[str] = []
    new_items: list[CommentedMap] = []
    for feed in feeds:
        url = feed.get("xmlUrl", "").strip()
        if not re.match(r"^https?://[^/\s]+[^\s]*$", url, re.I):
            skipped.append(url)
            continue
        # Braces are not legal in URLs anyway; encoded, "${VAR}" cannot reach the env expansion.
        url = url.replace("{", "%7B").replace("}", "%7D")
        key = _url_key(url)
        if key in seen_urls:
            skipped.append(url)
            continue
        seen_urls.add(key)
        item = _new_item(feed, url, taken_ids, default_role=role, default_language=language)
        taken_ids.add(item["id"])
        new_items.append(item)
        added.append((item["id"], url))

    if not new_items:
        return added, skipped  # nothing to change: leave the file (and its mtime) alone

    merged = _merge(original, root, new_items, source_name=opml_path.name)
    _validate(merged, original, config_path, exists)
    if not dry_run:
        _write_atomic(config_path, merged)
    return added, skipped


def _read_opml(path: Path) -> list[dict[str, str]]:
    """The attributes of every outline with an ``xmlUrl``, in document order, folders flattened.

    Namespaced attributes keep their ``{namespace}name`` key."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_OPML_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError(f"{path}: not OPML: larger than {MAX_OPML_BYTES // 1000**2} MB")
    root = _parse_xml(data, path)
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag != "opml":
        raise ConfigError(f"{path}: not OPML: the root element is <{tag}>, not <opml>")
    body = root.find("body")
    if body is None:
        raise ConfigError(f"{path}: not OPML: it has no <body>")
    return [dict(o.attrib) for o in body.iter("outline") if o.get("xmlUrl") is not None]


def _parse_xml(data: bytes, path: Path) -> Any:
    import xml.etree.ElementTree as ET

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as defused_fromstring

    try:
        # Its defaults refuse entity declarations and external references outright:
        # an OPML file never needs them, and they are how XML bombs and leaks work.
        return defused_fromstring(data)
    except DefusedXmlException as e:
        raise ConfigError(f"{path}: not OPML: refused, it declares entities or external references ({e})") from None
    except ET.ParseError as e:
        raise ConfigError(f"{path}: not OPML: {e}") from None


def _new_item(feed: dict[str, str], url: str, taken: set[str], *, default_role: str,
              default_language: str) -> CommentedMap:
    title = _clean(feed.get("title") or feed.get("text") or "")
    wanted = (feed.get(_A + "id") or "").strip()
    base = wanted if _ID.match(wanted) else (_slug(title) or _host_slug(url))
    item = CommentedMap()
    item["id"] = _unique(base, taken)
    if title and title != wanted:  # export writes the id as text when a source has no name
        item["name"] = title
    item["url"] = url
    r = (feed.get(_A + "role") or "").strip()
    item["role"] = r if r in ("blog", "outlet") else default_role
    item["language"] = (_language(feed.get(_A + "language")) or _language(feed.get("language"))
                        or default_language)
    every = (feed.get(_A + "every") or "").strip()
    if every:
        try:
            parse_duration(every)
            item["every"] = every
        except ValueError:
            pass  # a foreign or mangled value: the schedule default is a safe fallback
    aliases = [_clean(a) for a in split_aliases(feed.get(_A + "aliases") or "")]
    if aliases:
        seq = CommentedSeq([a for a in aliases if a])
        seq.fa.set_flow_style()  # [A, B, C], as aliases are written in the example config
        item["aliases"] = seq
    return item


def _clean(text: str) -> str:
    text = " ".join(_XML_INVALID.sub("", text).split())
    return text.replace("${", "$ {")  # never an environment reference once in the config


def _language(value: str | None) -> str | None:
    if not value:
        return None
    lang = value.strip().replace("_", "-")
    primary, _, region = lang.partition("-")
    lang = primary.lower() + (f"-{region}" if region else "")
    return lang if _LANG.match(lang) else None


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_text).strip("-_")
    slug = _shorten(slug)
    # "第2回" -> "2" says nothing; require a letter, else the host names it better.
    return slug if re.search(r"[a-z]", slug) else ""


def _host_slug(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    labels = [x for x in host.split(".") if x]
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD:
        labels = labels[:-2]  # example.co.jp
    elif len(labels) >= 2:
        labels = labels[:-1]  # politico.com
    labels = [x for x in labels if x not in _FEED_HOST_LABELS] or labels
    return _slug("-".join(labels)) or "source"


def _shorten(slug: str, limit: int = 40) -> str:
    if len(slug) <= limit:
        return slug
    cut = slug[:limit]
    return cut.rsplit("-", 1)[0] if "-" in cut[limit // 2:] else cut


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _url_key(url: str) -> str:
    """Comparison key of a feed URL: scheme and host case, default port, trailing slash."""
    url = url.strip()
    try:
        p = urlsplit(url)
        port = p.port
    except ValueError:
        return url.lower().rstrip("/")
    scheme = p.scheme.lower()
    host = (p.hostname or "").rstrip(".")
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host += f":{port}"
    return f"{scheme}://{host}{p.path.rstrip('/')}" + (f"?{p.query}" if p.query else "")


# ----------------------------------------------------------------------- YAML merge


def _rt_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one line
    return yaml


def _merge(original: str, root: CommentedMap | None, items: list[CommentedMap], *, source_name: str) -> str:
    """``original`` with ``items`` appended to its ``sources:``, formatting kept."""
    note = f"Imported from {_clean(source_name)} on {datetime.now(UTC):%Y-%m-%d}."
    if root is None and original.strip():  # only comments so far: keep them
        return original.rstrip("\n") + "\n\nsources:\n" + _render_items(items, dash=2, key=4, blank=False, note=note)
    if root is None:
        header = ("# aggregator configuration. Reference: README.md, \"Configuration\".\n"
                  "# Every key but 'sources' has a default; check it with: aggregator check-config\n\n")
        return header + "sources:\n" + _render_items(items, dash=2, key=4, blank=False, note=note)
    expected = plain_data(root)
    expected.setdefault("sources", None)
    expected["sources"] = list(expected["sources"] or []) + [plain_data(i) for i in items]
    spliced = _splice(original, root, items, note)
    if spliced is not None and _reload(spliced) == expected:
        return spliced
    # Fallback: re-dump the whole document in round-trip mode (comments kept, layout may shift).
    return _redump(original, items)


def _splice(original: str, root: CommentedMap, items: list[CommentedMap], note: str) -> str | None:
    """Insert the rendered items as text after the last existing source, or None if unsure."""
    lines = original.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if "sources" not in root:
        return "".join(lines) + "\nsources:\n" + _render_items(items, dash=2, key=4, blank=False, note=note)
    seq = root["sources"]
    keys = list(root.keys())
    k_line, k_col = root.lc.key("sources")
    if seq is None:  # "sources:" with nothing under it yet
        return "".join(lines[:k_line + 1]) + _render_items(
            items, dash=k_col + 2, key=k_col + 4, blank=False, note=note) + "".join(lines[k_line + 1:])
    if not isinstance(seq, CommentedSeq) or not seq or seq.fa.flow_style():
        return None
    first_line, key_col = seq.lc.item(0)
    dash_col = lines[first_line].rfind("-", 0, key_col)
    if dash_col < 0 or lines[first_line][:dash_col].strip():
        return None  # "- - x" or something else unusual
    # End of the sequence: the next top-level key, or the end of the file.
    idx = keys.index("sources")
    end = root.lc.key(keys[idx + 1])[0] if idx + 1 < len(keys) else len(lines)
    last_line = seq.lc.item(len(seq) - 1)[0]
    # Insert after the last content line of the last item; comments and blank lines
    # that follow it (often the heading of the next section) stay after the new items.
    at = last_line + 1
    for i in range(last_line + 1, end):
        s = lines[i].strip()
        if s and not s.startswith("#"):
            at = i + 1
    blank = len(seq) > 1 and any(not lines[i].strip() for i in range(first_line, seq.lc.item(1)[0]))
    block = _render_items(items, dash=dash_col, key=key_col, blank=blank, note=note)
    return "".join(lines[:at]) + ("\n" if blank else "") + block + "".join(lines[at:])


def _render_items(items: list[CommentedMap], *, dash: int, key: int, blank: bool, note: str) -> str:
    yaml = _rt_yaml()
    out = [" " * dash + f"# {note}\n"]
    for n, item in enumerate(items):
        buf = io.StringIO()
        yaml.dump(item, buf)  # ruamel does the quoting: names like "yes", "123" or "a: b"
        body = buf.getvalue().splitlines()
        if blank and n:
            out.append("\n")
        out.append(" " * dash + "-" + " " * (key - dash - 1) + body[0] + "\n")
        out.extend(" " * key + line + "\n" for line in body[1:])
    return "".join(out)


def _redump(original: str, items: list[CommentedMap]) -> str:
    yaml = _rt_yaml()
    root = yaml.load(original)
    seq = root.get("sources")
    if not isinstance(seq, CommentedSeq):
        seq = CommentedSeq()
        root["sources"] = seq
    dash, key = 2, 4
    if len(seq) and not seq.fa.flow_style():
        # keep the file's own list indentation when it has one
        line, key = seq.lc.item(0)
        text = original.splitlines()[line]
        dash = max(text.rfind("-", 0, key), 0)
        key -= root.lc.key("sources")[1]
        dash -= root.lc.key("sources")[1]
    seq.fa.set_block_style()
    seq.extend(items)
    yaml.indent(mapping=2, sequence=max(key, 2), offset=max(min(dash, key - 2), 0))
    buf = io.StringIO()
    yaml.dump(root, buf)
    return buf.getvalue()


def _reload(text: str) -> Any:
    try:
        return plain_data(YAML(typ="safe", pure=True).load(text))
    except Exception:
        return None


def _check_original(original: str, path: Path) -> None:
    parse_config(original, filename=str(path), path=path)  # raises ConfigError with file:line
    raise ConfigError(f"{path}: expected a mapping of sections (sources:, output:, ...)")


def _validate(merged: str, original: str, path: Path, exists: bool) -> None:
    try:
        parse_config(merged, filename=str(path), path=path)
    except ConfigError as after:
        if exists:
            try:
                parse_config(original, filename=str(path), path=path)
            except ConfigError as before:
                # Line numbers must point into the file the user has, not our merge.
                raise ConfigError([f"{path}: not changed: the config is not valid before the import:",
                                   *before.errors]) from None
        raise ConfigError([f"{path}: not changed: the import would make the config invalid:",
                           *after.errors]) from None


def _write_atomic(path: Path, text: str) -> None:
    from aggregator.files import replace_file

    replace_file(path, text.encode("utf-8"))
