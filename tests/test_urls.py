import pytest

from aggregator.urls import canonical_url

FEED = "https://www.example.com/news/2024/04/17/story-00152712"


@pytest.mark.parametrize("variant", [
    FEED,
    FEED + "/",
    FEED + "?utm_source=twitter&utm_medium=social&utm_campaign=x",
    FEED + "?fbclid=IwAR0q7Zk3",
    "http://www.example.com/news/2024/04/17/story-00152712",
    "https://example.com/news/2024/04/17/story-00152712",
    FEED + "/amp/",
    FEED + "?outputType=amp",
    FEED + "#:~:text=some%20words",
    FEED + "#section",
    "HTTPS://WWW.EXAMPLE.COM/news/2024/04/17/story-00152712",
    "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/2024/04/17/story-00152712/amp/",
    "https://www.google.com/amp/s/www.example.com/news/2024/04/17/story-00152712",
])
def test_variants_of_one_article_share_a_canonical_form(variant: str) -> None:
    assert canonical_url(variant) == canonical_url(FEED)


@pytest.mark.parametrize("other", [
    "https://www.example.com/news/2024/04/17/story-00152713",
    "https://www.example.com/news/2024/04/17/story",
    "https://www.example.org/news/2024/04/17/story-00152712",
    "https://www.example.com/?p=53075",
])
def test_different_articles_stay_different(other: str) -> None:
    assert canonical_url(other) != canonical_url(FEED)


def test_query_parameters_that_select_content_are_kept() -> None:
    assert canonical_url("https://www.twz.com/?p=1") != canonical_url("https://www.twz.com/?p=2")
