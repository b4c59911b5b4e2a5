"""Full text from a post's own page: which entries need it, decoding, and extraction that
keeps the citation lines and never takes a citation from the page's chrome. Pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from wordpress import Page, Related, Trap

from aggregator.citing.extract import Outlet, Outlets, extract
from aggregator.exceptions import ExtractionError
from aggregator.models import Entry
from aggregator.sources import fulltext
from aggregator.sources.fulltext import Candidate, PageState, is_excerpt, plan, wants_page
from aggregator.sources.pages import decode_page, extract_article

NOW = datetime(2026, 5, 13, 12, 0, tzinfo=UTC)
FEED = "https://blog.example.jp/feed/"
OWN = {"blog.example.jp"}
OUTLETS = Outlets([Outlet("reuters", ("Reuters", "ロイター", "ロイター通信")),
                   Outlet("politico", ("POLITICO", "米POLITICO")),
                   Outlet("defensenews", ("Defense News",))])
TRAPS = [Trap("ロイター通信", "Trap headline about Kharkiv defences", "https://www.reuters.com/world/trap-2024-05-12/", 12),
         Trap("米POLITICO", "Allies trap Kyiv with more promises", "https://www.politico.com/news/trap-1", 13),
         Trap("Defense News", "Army trap shells contract", "https://www.defensenews.com/land/trap/", 11)]
RELATED = [Related("北部戦線の続報", "https://blog.example.jp/ukraine-war/other/",
                   "ロイター通信は12日、北部の状況を報じた。参考:Trap in related [&#8230;]")]


def entry(summary: str = "", content: str = "", link: str | None = "https://blog.example.jp/p/1/",
          eid: int = 1, published: datetime = NOW, page_text: str = "") -> Entry:
    return Entry(id=eid, source_id="blog", role="blog", key=f"k{eid}", link=link, title="t", summary=summary,
                 content=content, author=None, categories=(), published=published, updated=None,
                 first_seen=published, page_text=page_text)


# -- which entries need their page --------------------------------------------------------

@pytest.mark.parametrize("feed", [FEED, "https://rss.example.jp/feed", "http://127.0.0.2:8000/f.xml",
                                  "http://[::1]:8000/f.xml", "https://bücher.example/feed"])
@pytest.mark.parametrize("link", [
    "https://blog.example.jp/p/1/", "https://BLOG.Example.JP/p/2/", "https://www.example.jp/x", "https://example.jp",
    "https://notexample.jp/p", "https://example.jp.evil.com/p", "https://blog.exam\tple.jp/p", "http://127.0.0.2/x",
    "http://127.0.0.25:8000/x", "http://[::1]/x", "https://news.google.com/rss/articles/x", "https://BÜCHER.example/x",
    "https://xn--bcher-kva.example/x", "https://a.example.jp./p", "https://user@blog.example.jp:8443/p",
    "https://[broken/p", "javascript:alert(1)", "", None])
def test_the_link_test_is_the_page_decision_for_an_excerpt(feed: str, link: str | None) -> None:
    """may_want_page (on the link alone, substring test first) decides as wants_page does
    for an entry whose text is an excerpt, for links of every shape."""
    from aggregator.urls import site_of

    for mode in ("auto", "always", "never"):
        assert fulltext.may_want_page(mode, link, site_of(feed)) == wants_page(mode, entry("", link=link), feed)
        assert not wants_page(mode, entry("", content="<p>the whole post</p>", link=link), feed) or mode == "always"


@pytest.mark.parametrize("summary", [
    "ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。参考:Ukraine regroups in Kharkiv [&#8230;]",
    "ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。詳しい状況はまだ分かっていない… 続きを読む",
    "The Army has awarded a contract for more 155mm shells, the service said on Monday, and… Continue reading →",
    "The Army has awarded a contract for more 155mm shells, the service said on Monday [...]",
    "The Army has awarded a contract for more 155mm shells, the service said on Monday. Read more »",
    "",  # title-only feeds (RSS-Translator #158: these were skipped)
    "New post!",
])
def test_excerpts_are_recognised(summary: str) -> None:
    assert is_excerpt(entry(summary))
    assert wants_page("auto", entry(summary), FEED)


@pytest.mark.parametrize("e", [
    entry("A short lead", content="<p>The whole post, as content:encoded gives it.</p>"),
    entry("The Army has awarded a contract for more 155mm shells, the service said on Monday, citing demand."),
])
def test_full_feeds_and_plain_summaries_are_not_excerpts(e: Entry) -> None:
    assert not is_excerpt(e)
    assert not wants_page("auto", e, FEED)
    assert wants_page("always", e, FEED)
    assert not wants_page("never", entry(""), FEED)


def test_links_that_cannot_hold_the_text_are_not_fetched() -> None:
    assert not wants_page("auto", entry("", link="https://news.google.com/rss/articles/CBMiX2h0dHBz?oc=5"), FEED)
    assert not wants_page("always", entry("", link=None), FEED)
    assert not wants_page("always", entry("", link="javascript:alert(1)"), FEED)


def test_auto_reads_only_pages_on_the_feeds_own_site() -> None:
    """A feed must not send us to other people's servers; always is the user's choice."""
    e = entry("", link="https://www.politico.com/news/2026/05/13/story-00123")
    assert wants_page("auto", e, "https://rss.politico.com/politics-news.xml")
    assert not wants_page("auto", e, FEED)
    assert wants_page("always", e, FEED)
    assert not wants_page("auto", entry("", link="https://other.co.uk/p/"), "https://blog.co.uk/feed/")
    assert wants_page("auto", entry("", link="http://127.0.0.1:8000/posts/1/"), "http://127.0.0.1:8000/feed/")


def cand(eid: int, hours_ago: int, state: PageState | None = None, version: str = "v1") -> Candidate:
    return Candidate(entry("", eid=eid, published=NOW - timedelta(hours=hours_ago)), version, state)


def test_the_bound_takes_the_newest_and_leaves_the_rest_waiting() -> None:
    p = plan("auto", [cand(i, hours_ago=i) for i in range(1, 8)], 3, NOW, FEED)
    assert [c.entry.id for c in p.fetch] == [1, 2, 3]
    assert [c.entry.id for c in p.waiting] == [4, 5, 6, 7]
    assert plan("never", [cand(1, 1)], 3, NOW, FEED).not_needed


def test_a_failing_page_waits_for_its_retry_time_and_is_given_up_in_the_end() -> None:
    rng = random.Random(1)
    c = cand(1, 1)
    st = fulltext.after_failure(c, NOW, "HTTP 500", interval=timedelta(minutes=30), max_backoff=timedelta(hours=24),
                                rng=rng)
    assert st.status == "retry" and st.attempts == 1 and st.retry_at is not None and st.retry_at > NOW
    assert not plan("auto", [cand(1, 1, st)], 10, NOW, FEED).fetch  # not due yet
    assert plan("auto", [cand(1, 1, st)], 10, st.retry_at, FEED).fetch  # due
    for _ in range(fulltext.MAX_ATTEMPTS - 1):
        st = fulltext.after_failure(cand(1, 1, st), NOW, "HTTP 500", interval=timedelta(minutes=30),
                                    max_backoff=timedelta(hours=24), rng=rng)
    assert st.status == "given up"
    gone = fulltext.after_failure(c, NOW, "HTTP 410 Gone", interval=timedelta(minutes=30),
                                  max_backoff=timedelta(hours=24), rng=rng, permanent=True)
    assert gone.status == "given up"
    # a new version of the entry (the feed changed it) is tried again
    assert plan("auto", [cand(1, 1, st, version="v2")], 10, NOW, FEED).fetch


def test_validators_are_sent_only_with_the_text_they_vouch_for() -> None:
    done = PageState(1, "v1", "done", "https://blog.example.jp/p/1/", '"abc"', "Tue, 12 May 2026 10:00:00 GMT")
    with_text = Candidate(entry("", page_text="<p>body</p>"), "v2", done)
    assert fulltext.validators(with_text) == ('"abc"', "Tue, 12 May 2026 10:00:00 GMT")
    assert fulltext.validators(Candidate(entry(""), "v2", done)) == (None, None)


# -- decoding ---------------------------------------------------------------------------------

JA = "ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。①参考記事は下に。"


def test_shift_jis_page_is_decoded_by_its_meta_charset() -> None:
    page = f'<html><head><meta charset="Shift_JIS"><title>t</title></head><body><p>{JA}</p></body></html>'
    text, enc = decode_page(page.encode("cp932"), "text/html")
    assert JA in text and enc == "cp932"  # Windows-31J: ① is not in strict Shift_JIS


def test_shift_jis_page_with_a_wrong_header_charset_is_decoded() -> None:
    page = f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head><body><p>{JA}</p></body></html>'
    text, _ = decode_page(page.encode("cp932"), "text/html; charset=utf-8")
    assert JA in text


def test_undeclared_euc_jp_is_detected_and_utf8_wins_over_a_wrong_declaration() -> None:
    body = f"<html><body><p>{JA * 3}</p></body></html>"
    text, _ = decode_page(body.encode("euc_jp", "replace").replace("①".encode("euc_jp", "replace"), b""), None)
    assert JA.replace("①", "")[:20] in text
    text, enc = decode_page(body.encode("utf-8"), "text/html; charset=Shift_JIS")
    assert JA in text and enc == "utf-8"


# -- extraction -------------------------------------------------------------------------------

def cites(html: str) -> list[tuple[str, str, str, int]]:
    t = extract(html, own_hosts=OWN, outlets=OUTLETS)
    return sorted((c.kind, c.href or c.text, c.outlet or "", c.day or 0) for c in t.citations)


def wp(content: str, **kw: object) -> str:
    return Page(url="https://blog.example.jp/ukraine-war/test/", title="北部戦線の防衛線再編", content=content,
                traps=TRAPS, related=RELATED, **kw).html()  # type: ignore[arg-type]


LONG = "https://www.reuters.com/world/europe/ukraine-says-it-took-down-russian-tu-22m3-strategic-bomber-2024-04-19/"
CASES = {
    "参考 lines with links, a headline, 出典, 関連記事":
        '<p>ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。</p>'
        '<p>参考:<a href="https://www.reuters.com/world/europe/regroup-2024-05-13/">Ukraine regroups in Kharkiv - Reuters</a></p>'
        '<p>参考:NATO allies weigh more air defence for Kyiv</p>'
        '<p>管理人は、この再編が時間稼ぎだと見ている。追加の支援が間に合うかが焦点になるだろう。</p>'
        '<p>出典:Генеральний штаб ЗСУ</p>'
        '<p>関連記事:<a href="https://blog.example.jp/ukraine-war/older/">以前の記事</a></p>',
    "several 参考 lines in one paragraph (<br>)":
        '<p>ロシア軍は北部で新たな攻勢を始め、ウクライナ軍は防衛線を構築して対応している。</p>'
        '<p>参考:<a href="https://www.reuters.com/a-2024-05-10/">Russia opens new front in north - Reuters</a><br />'
        '参考:<a href="https://www.politico.eu/article/b/">NATO allies weigh more air defence</a><br>'
        '参考:Ukraine says it repelled attacks near Vovchansk</p>'
        '<p>前線の状況は厳しいが、管理人は持ちこたえられると見ている。</p>',
    # trafilatura alone drops all three of these (link-dense lines and lists)
    "a bare-URL 参考 line, a short one, and a list under a bare 参考 heading":
        f'<p>ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。長い説明の文章がここに続く。</p>'
        f'<p>参考:<a href="{LONG}">{LONG}</a></p><p>参考:<a href="https://x.com/a">Short one</a></p><p>参考:</p>'
        '<ul><li><a href="https://www.defensenews.com/c/">Army buys more shells for Ukraine after the aid bill passed</a></li>'
        '<li><a href="https://www.twz.com/d">Glide bombs hit Kharkiv again as Russia pushes north</a></li></ul>'
        '<p>管理人の見解では、防衛線の再編は時間稼ぎである。</p>',
    "a short post whose citation is a mention":
        '<p>米POLITICOは13日、NATOの防空支援について報じた。</p><p>管理人はこの動きに注目している。</p><p>出典:NATO</p>',
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_post_is_extracted_with_its_citations_and_nothing_from_the_chrome(name: str) -> None:
    content = CASES[name]
    body = extract_article(wp(content), "https://blog.example.jp/ukraine-war/test/")
    assert cites(body) == cites(content)
    assert extract(body).body == extract(content).body  # every paragraph, in order
    for chrome in ["名無し", "シェアする", "コメントを残す", "最近のコメント", "前の投稿", "Trap", "北部の状況を報じた"]:
        assert chrome not in body


def test_widgets_inside_the_post_body_give_no_citation() -> None:
    """Jetpack puts its share buttons and related posts inside .entry-content."""
    content = CASES["参考 lines with links, a headline, 出典, 関連記事"]
    inside = content + (
        '<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">シェアする:</h3><ul><li>'
        '<a href="https://twitter.com/share">X</a></li></ul></div>'
        '<div id="jp-relatedposts" class="jp-relatedposts"><h3>関連</h3><div class="jp-relatedposts-post">'
        '<p>参考:<a href="https://www.politico.com/trap">Trap in related</a></p><p>ロイター通信は12日、…と報じた。</p>'
        '</div></div>')
    body = extract_article(wp(inside), "https://blog.example.jp/ukraine-war/test/")
    assert cites(body) == cites(content)
    assert "Trap" not in body and "シェアする" not in body


def test_a_long_comment_thread_is_not_taken_for_the_post() -> None:
    content = CASES["a short post whose citation is a mention"]
    thread = tuple("<p>ロイター通信は12日、別の件を報じた。参考:Trap in a comment thread that runs long.</p>" * 6
                   for _ in range(30))
    body = extract_article(wp(content, extra_comments=thread), "https://blog.example.jp/ukraine-war/test/")
    assert cites(body) == cites(content)
    assert "Trap" not in body


def test_a_page_without_an_article_is_an_error() -> None:
    with pytest.raises(ExtractionError):
        extract_article("<html><body><nav><a href='/'>Home</a></nav></body></html>", "https://blog.example.jp/")


def test_a_short_heading_that_is_also_in_the_navigation_does_not_widen_the_article() -> None:
    content = ('<h2>ウクライナ戦況</h2>'  # also a menu item and the category link, earlier on the page
               + CASES["参考 lines with links, a headline, 出典, 関連記事"]
               + '<div class="sharedaddy"><ul><li><a href="https://twitter.com/share">X</a></li></ul></div>')
    body = extract_article(wp(content), "https://blog.example.jp/ukraine-war/test/")
    assert cites(body) == cites(content)
    for chrome in ["お問い合わせ", "名無し", "Trap", "twitter.com", "コンテンツへスキップ"]:
        assert chrome not in body


def test_citation_lines_after_a_themes_inner_box_are_kept() -> None:
    inner = ('<div class="wp-block-group"><div class="wp-block-group__inner-container">'
             '<p>ウクライナ軍は13日、ハルキウ州北部の防衛線を再編したと発表した。</p>'
             '<p>管理人は、この再編が時間稼ぎだと見ている。追加の支援が間に合うかが焦点になるだろう。</p></div></div>')
    content = inner + ('<p>参考:</p><ul><li><a href="https://www.reuters.com/world/europe/regroup-2024-05-13/">'
                       'Ukraine regroups in Kharkiv</a></li></ul>')
    body = extract_article(wp(content), "https://blog.example.jp/ukraine-war/test/")
    assert cites(body) == cites(content) and len(cites(content)) == 1
