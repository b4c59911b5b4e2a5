"""URL canonicalisation: the form under which two links to one article compare equal.

Pure functions. The canonical form drops what publishers and sharers add to a link
without changing the article: scheme, ``www.``, default ports, tracking parameters,
fragments (including ``#:~:text=``), AMP markers and trailing slashes.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from publicsuffixlist import PublicSuffixList

# Parameters that never select content (utm_*, click ids, share/referral markers).
_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "hsa_", "_hs", "vero_", "oly_")
_TRACKING = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
    "mibextid", "ref", "ref_src", "ref_url", "smid", "smtyp", "cmpid", "s_cid", "ncid",
    "sr_share", "ocid", "taid", "outputtype", "amp", "__twitter_impression", "at_medium",
    "at_campaign", "guccounter", "dicbo", "ftag", "sh", "wt.mc_id", "cmp",
}


_AMP_CACHE = re.compile(r"^/(?:c|v|amp)/(?:(s)/)?(.+)$")


# Storing a feed asks for each entry's key three times (its row, the decision, moved
# entries): 5.7 s of a 50,000-entry cold cycle before the cache.
@functools.lru_cache(maxsize=4096)
def canonical_url(url: str) -> str:
    """Canonical comparison key of ``url`` (not a URL to fetch).

    >>> canonical_url("http://www.Example.com/a/b/amp/?utm_source=x&id=3#top")
    'example.com/a/b?id=3'
    """
    url = url.strip()
    if not url:
        return ""
    if "://" not in url[:12]:
        url = "http://" + url.lstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    # AMP caches wrap the publisher's URL: cdn.ampproject.org/c/s/HOST/PATH, google.com/amp/s/HOST/PATH
    m = _AMP_CACHE.match(parts.path) if (host.endswith(".cdn.ampproject.org") or
                                        (host.endswith("google.com") and parts.path.startswith("/amp/"))) else None
    if m:
        inner = ("https://" if m.group(1) else "http://") + m.group(2)
        return canonical_url(inner + (f"?{parts.query}" if parts.query else ""))
    if host.startswith("www.") or host.startswith("amp."):
        host = host[4:]
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and port not in (80, 443):
        host = f"{host}:{port}"

    # Each rewrite only where it can apply (this runs for every stored entry).
    path = unquote(parts.path)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "amp" in path:
        # AMP forms: /amp/ suffix, /amp/ prefix, .amp / .amp.html suffix
        path = _AMP_SUFFIX.sub("/", path)
        path = _AMP_PREFIX.sub("/", path)
        path = _AMP_EXT.sub(r"\1", path)
    if "index." in path:
        path = _INDEX.sub("/", path)
    path = path.rstrip("/")
    path = quote(path, safe="/:@!$&'()*+,;=-._~%")

    if not parts.query:
        return f"{host}{path}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _is_tracking(k)]
    query.sort()
    q = urlencode(query)
    return f"{host}{path}" + (f"?{q}" if q else "")


_SLASHES = re.compile(r"/{2,}")
_AMP_SUFFIX = re.compile(r"/amp/?$")
_AMP_PREFIX = re.compile(r"^/amp/")
_AMP_EXT = re.compile(r"\.amp(\.html)?$")
_INDEX = re.compile(r"/(index\.(html?|php))$")


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k in _TRACKING or k.startswith(_TRACKING_PREFIXES)


_HTTP_URL = re.compile(r"^https?://[^/\s]+", re.I)


def is_http_url(url: str | None) -> bool:
    return bool(url) and _HTTP_URL.match(url or "") is not None


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


# -- private networks (see docs/fetching.md) -------------------------------------------------

def private_address_kind(address: str) -> str | None:
    """What makes ``address`` a private-network address ("loopback", ...), or None for a
    public one. IPv4 inside IPv6 (mapped, 6to4, Teredo, NAT64) is judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unparsable"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return private_address_kind(str(inner))
    for kind, test in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if test:
            return kind
    return None if ip.is_global else "non-public"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no download


@functools.lru_cache(maxsize=4096)  # asked for each entry of a feed, and for the feed's URL as often
def site_of(url: str) -> str:
    """The registrable domain of a URL's host (``rss.politico.com`` and
    ``www.politico.com`` are both ``politico.com``; ``a.co.uk`` is not ``b.co.uk``), from
    the Public Suffix List; an IP address or a single-label host is its own site."""
    return site_of_host(host_of(url))


@functools.lru_cache(maxsize=4096)  # entries' links are many, their hosts few
def site_of_host(host: str) -> str:
    """:func:`site_of` for a host as :func:`host_of` gives it."""
    host = host.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return str(_suffixes().privatesuffix(host) or host)
