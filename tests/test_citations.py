from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import DEV

from aggregator.citing.extract import Outlet, classify, extract, find_mentions
from aggregator.html_text import Block
from aggregator.sources.parse import parse_feed

OUTLETS = [Outlet("politico", ("POLITICO", "ポリティコ")), Outlet("reuters", ("Reuters", "ロイター", "ロイター通信")),
           Outlet("kyivindependent", ("The Kyiv Independent", "キーウ・インディペンデント"))]


def test_linked_and_unlinked_reference_lines_are_citations() -> None:
    html = """<p>リード文。</p>
<p>参考:<a href="https://www.politico.com/news/2023/10/13/blinken-azerbaijan-armenia-00121597">Blinken warned lawmakers Azerbaijan may invade Armenia in coming weeks</a></p>
<p>参考:Blinken warned lawmakers Azerbaijan may invade Armenia in coming weeks</p>
<p>参考：<a href="https://example.com/a">A</a><br>参考:<a href="https://example.com/b">B</a></p>"""
    t = extract(html, own_hosts=["blog.example.jp"])
    kinds = [(c.kind, c.href, c.text) for c in t.citations]
    assert kinds == [
        ("link", "https://www.politico.com/news/2023/10/13/blinken-azerbaijan-armenia-00121597",
         "Blinken warned lawmakers Azerbaijan may invade Armenia in coming weeks"),
        ("headline", None, "Blinken warned lawmakers Azerbaijan may invade Armenia in coming weeks"),
        ("link", "https://example.com/a", "A"),
        ("link", "https://example.com/b", "B"),
    ]
    assert t.lead == "リード文。"


def test_image_credits_related_posts_and_footer_are_not_citations() -> None:
    html = """<p>本文です。</p>
<p>出典:President.az/CC BY 4.0</p>
<p>出典:<a href="https://commons.wikimedia.org/x">Google Map 管理人作成</a></p>
<p>関連記事:<a href="https://blog.example.jp/us/other-post/">別の記事</a></p>
<p>The post <a href="https://blog.example.jp/x/">題名</a> appeared first on <a href="https://blog.example.jp">ブログ</a>.</p>"""
    t = extract(html, own_hosts=["blog.example.jp"], outlets=OUTLETS)
    assert t.citations == ()
    assert t.body == ("本文です。",)


def test_links_back_to_the_blog_are_never_citations() -> None:
    t = extract('<p>参考:<a href="https://www.blog.example.jp/x/">自分の記事</a></p>', own_hosts=["blog.example.jp"])
    assert [c.kind for c in t.citations] == ["headline"]


def test_mention_needs_an_attribution_and_finds_its_day() -> None:
    body = ["米POLITICOは13日、国務長官が議員に警告したと報じた。", "別の段落にはロイターの名前だけがある。"]
    found = find_mentions(body, OUTLETS)
    assert [(c.outlet, c.day, c.form) for c in found] == [("politico", 13, "report")]
    assert found[0].context == body[0]


def test_full_width_digits_and_day_before_the_name() -> None:
    found = find_mentions(["１３日にキーウ・インディペンデントが報じたところでは、…"], OUTLETS)
    assert [(c.outlet, c.day) for c in found] == [("kyivindependent", 13)]


def test_in_text_citations_are_found_beside_reference_lines_too() -> None:
    html = ("<p>参考:Some headline</p><p>米POLITICOは13日に報じた。</p>"
            "<p>ロイター通信のインタビューでも、大臣は増産を急ぐと語っていた。</p>")
    cites = extract(html, outlets=OUTLETS).citations
    assert [(c.kind, c.outlet, c.day, c.form, c.also) for c in cites] == [
        ("headline", None, None, "", False), ("mention", "politico", 13, "report", False),
        ("mention", "reuters", None, "interview", True)]


@pytest.mark.parametrize("sentence,form", [
    ("ロイター通信によると、両国は協議を続けている。", "according"),
    ("ロイターの報道によれば、交渉は決裂した。", "according"),
    ("政府関係者はポリティコの取材に対し、計画を見直すと語った。", "interview"),
    ("大臣はロイターとの単独インタビューで増産を約束した。", "interview"),
    ("外相は「撤退はない」とロイター通信に語った。", "interview"),
    ("ポリティコも20日、同じ文書を入手したと報じている。", "report"),
    ("ロイター通信は、合意が近いと伝えています。", "report"),
])
def test_sentences_that_attribute_a_report_to_an_outlet(sentence: str, form: str) -> None:
    assert [c.form for c in find_mentions([sentence], OUTLETS)] == [form]


@pytest.mark.parametrize("sentence", [
    "以前ロイター通信に寄稿していたアナリストはSNSで、増産は難しいと指摘した。",   # employer
    "ロイター通信で中東を担当していた記者は、停戦は長続きしないと書いている。",       # employer
    "ポリティコのような米国の政治メディアは、この決定を批判するだろう。",             # comparison
    "ポリティコなど米国のメディアも今後、詳しく報じるだろう。",                       # prospect
    "ロイター通信も近く、この問題を報じることになるだろう。",                         # prospect
    "キーウ・インディペンデントの読者には説明するまでもない話だが、前線は動いていない。",  # readers
    "ロイター通信は普段から、この種の発表を淡々と伝えている。",                       # habit
    "ロイター通信はこの件をまだ報じていない。",                                       # denial
])
def test_an_outlet_named_in_another_role_is_not_cited(sentence: str) -> None:
    assert find_mentions([sentence], OUTLETS) == []


def test_ascii_aliases_need_word_edges() -> None:
    assert find_mentions(["POLITICOS は 1日 に"], OUTLETS) == []


@pytest.mark.parametrize("text,kind", [
    ("参考:Headline", "cite"), ("参考：Headline", "cite"), ("【参考】:Headline", "cite"), ("参考記事:Headline", "cite"),
    ("出典:U.S. Army photo by Sgt. X", "credit"), ("関連記事:タイトル", "related"), ("普通の文。", "body"),
])
def test_line_classes(text: str, kind: str) -> None:
    assert classify(Block(text)) == kind


def test_dev_blog_citations_by_case(dev_gold: list[dict]) -> None:
    """Every dev post yields citations of the kind its case says, and no credit line
    ever becomes one."""
    feed = parse_feed((DEV / "feeds" / "blog.xml").read_bytes(), now=datetime(2030, 1, 1, tzinfo=UTC))
    by_link = {e.link: e for e in feed.entries}
    outlets = [Outlet("politico", ("POLITICO",)), Outlet("defensenews", ("Defense News",)),
               Outlet("kyivindependent", ("キーウ・インディペンデント紙", "Kyiv Independent")),
               Outlet("breakingdefense", ("Breaking Defense",))]
    for g in dev_gold:
        post = by_link[g["link"]]
        t = extract(post.content, own_hosts=["blog.example.jp"], outlets=outlets)
        kinds = {c.kind for c in t.citations}
        texts = " ".join(c.text + (c.href or "") for c in t.citations)
        assert "出典" not in texts and "blog.example.jp" not in texts
        if g["case"] in ("link-exact", "link-variant"):
            assert "link" in kinds, g["link"]
        elif g["case"] in ("headline", "headline-variant"):
            assert "headline" in kinds or "link" in kinds, g["link"]
        elif g["case"] == "mention":
            assert kinds == {"mention"}, g["link"]
            assert all(c.day is not None for c in t.citations)
        elif g["case"] == "no-citation":
            assert t.citations == (), g["link"]
        elif g["case"] == "multi":
            assert len(t.citations) >= 2, g["link"]
