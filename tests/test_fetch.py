"""Server-side fetching of client-given URLs: the SSRF rules, with a fake resolver and network."""

from __future__ import annotations

import ipaddress

import anyio
import httpx
import pytest

from clearmark._fetch import FetchError, SafeFetcher, TooLarge, forbidden, parse_networks

PUBLIC_IP = "93.184.216.34"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "169.254.1.1", "100.100.100.200", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "192.0.0.192",
])
def test_private_reserved_and_metadata_addresses_are_refused(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC_IP, "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert not forbidden(ipaddress.ip_address(address))


def test_an_explicit_allow_list_opens_private_networks() -> None:
    allow = parse_networks(["127.0.0.0/8", "::1"])
    assert not forbidden(ipaddress.ip_address("127.0.0.1"), allow)
    assert not forbidden(ipaddress.ip_address("::1"), allow)
    assert forbidden(ipaddress.ip_address("10.0.0.1"), allow)
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks(["localhost"])


class _Net:
    """A fake DNS and a fake internet: hosts -> addresses, (address, path) -> answer."""

    def __init__(self, dns: dict[str, list[str]], pages: dict[str, httpx.Response]) -> None:
        self.dns, self.pages = dns, pages
        self.seen: list[httpx.Request] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.dns:
            raise OSError("no such host")
        return self.dns[host]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        key = f"{request.url.host}{request.url.path}"
        return self.pages.get(key, httpx.Response(404))

    def fetcher(self, **options: object) -> SafeFetcher:
        return SafeFetcher(resolver=self.resolve, transport=httpx.MockTransport(self.handle),
                           **options)  # type: ignore[arg-type]


def _get(fetcher: SafeFetcher, url: str, max_bytes: int = 1000) -> bytes:
    async def main() -> bytes:
        try:
            return await fetcher.get(url, max_bytes)
        finally:
            await fetcher.aclose()

    return anyio.run(main)


def test_fetches_pin_the_checked_address_and_keep_the_host() -> None:
    net = _Net({"img.example": [PUBLIC_IP]}, {f"{PUBLIC_IP}/a.png": httpx.Response(200,
                                                                                   content=b"ok")})
    assert _get(net.fetcher(), "http://img.example/a.png") == b"ok"
    request = net.seen[0]
    assert request.url.host == PUBLIC_IP and request.headers["host"] == "img.example"


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://img.example/a.png", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:pw@img.example/a.png", "credentials"),
    ("http://127.0.0.1:6379/", "private or reserved"),
    ("http://[::1]/", "private or reserved"),
    ("http://169.254.169.254/latest/meta-data/", "private or reserved"),
    ("http://internal.example/", "private or reserved"),
    ("http://mixed.example/", "private or reserved"),
    ("http://nowhere.example/", "cannot resolve"),
])
def test_refused_urls_say_why(url: str, problem: str) -> None:
    net = _Net({"internal.example": ["10.0.0.5"], "mixed.example": [PUBLIC_IP, "127.0.0.1"]},
               {})
    with pytest.raises(FetchError, match=problem):
        _get(net.fetcher(), url)
    assert not net.seen  # nothing was sent anywhere


def test_every_redirect_is_checked_again() -> None:
    pages = {f"{PUBLIC_IP}/a": httpx.Response(302, headers={"location": "/b"}),
             f"{PUBLIC_IP}/b": httpx.Response(302, headers={"location": "http://evil.example/"})}
    net = _Net({"img.example": [PUBLIC_IP], "evil.example": ["127.0.0.1"]}, pages)
    with pytest.raises(FetchError, match="private or reserved"):
        _get(net.fetcher(), "http://img.example/a")
    assert [r.url.path for r in net.seen] == ["/a", "/b"]
    loop = _Net({"img.example": [PUBLIC_IP]},
                {f"{PUBLIC_IP}/a": httpx.Response(302, headers={"location": "/a"})})
    with pytest.raises(FetchError, match="redirects"):
        _get(loop.fetcher(max_redirects=3), "http://img.example/a")


def test_size_and_status_limits() -> None:
    pages = {f"{PUBLIC_IP}/big": httpx.Response(200, content=b"x" * 2000),
             f"{PUBLIC_IP}/gone": httpx.Response(410)}
    net = _Net({"img.example": [PUBLIC_IP]}, pages)
    with pytest.raises(TooLarge):
        _get(net.fetcher(), "http://img.example/big")
    with pytest.raises(FetchError, match="HTTP 410"):
        _get(net.fetcher(), "http://img.example/gone")


def test_the_allow_list_lets_tests_reach_loopback() -> None:
    net = _Net({}, {"127.0.0.1/a": httpx.Response(200, content=b"local")})
    fetcher = net.fetcher(allow=parse_networks(["127.0.0.0/8"]))
    assert _get(fetcher, "http://127.0.0.1/a") == b"local"


def test_a_slow_url_times_out() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200)

    async def resolve(host: str, port: int) -> list[str]:
        return [PUBLIC_IP]

    fetcher = SafeFetcher(resolver=resolve, transport=httpx.MockTransport(slow), timeout=0.05)
    with pytest.raises(FetchError, match="within"):
        _get(fetcher, "http://img.example/a")
