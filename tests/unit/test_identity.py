from pipeline.identity import article_id, canonical_url, content_id, digest_id


def test_canonical_url_lowercases_scheme_and_host_and_drops_noise() -> None:
    url = "HTTPS://News.Example.COM:443/World/Story?id=7&utm_source=rss&utm_medium=x&fbclid=abc#top"
    assert canonical_url(url) == "https://news.example.com/World/Story?id=7"


def test_canonical_url_keeps_non_default_port_and_path_case() -> None:
    assert canonical_url("http://example.com:8080/A/b") == "http://example.com:8080/A/b"
    assert canonical_url("http://example.com:80") == "http://example.com/"


def test_same_article_same_id_regardless_of_tracking() -> None:
    a = article_id("https://example.com/a?utm_campaign=x")
    b = article_id("https://EXAMPLE.com/a#comments")
    assert a == b
    assert len(a) == 32
    assert a != article_id("https://example.com/b")


def test_id_without_url_uses_feed_and_guid() -> None:
    one = article_id(None, feed_url="https://f.example/rss", guid="g1")
    assert one == digest_id("https://f.example/rss", "g1")
    assert one != article_id(None, feed_url="https://f.example/rss", guid="g2")


def test_content_id_is_stable_and_hex() -> None:
    assert content_id("x") == content_id(b"x")
    assert int(content_id("x"), 16) >= 0
