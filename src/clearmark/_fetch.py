"""Server-side HTTP to addresses a client chose: fetching image_url / mask_url, callbacks.

A removal server that fetches any URL it is given is an SSRF hole: ``image_url=http://
169.254.169.254/...`` would read the cloud's metadata service, ``http://127.0.0.1:6379`` a
local Redis. ``SafeFetcher`` therefore:
- accepts http and https only, and no user:password@ part;
- resolves the host itself and refuses it when *any* of its addresses is loopback, private,
  link-local, multicast, reserved or otherwise not global, or a known cloud metadata address
  (IPv4-mapped IPv6 is judged as the IPv4 it maps), unless the address is inside an explicit
  allow-list (``allow``: for tests and private deployments);
- connects to the address it checked, not to a second lookup (no DNS rebinding), keeping the
  Host header and the TLS server name of the URL;
- follows at most ``max_redirects`` redirects, checking each new URL the same way;
- bounds the whole exchange by ``timeout`` seconds and the body by ``max_bytes``;
- ignores proxy settings from the environment.
Every refusal is a ``FetchError`` whose message says why, without the body of the answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack...
    "169.254.170.2",  # AWS ECS task metadata
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud
    "fd00:ec2::254",  # AWS over IPv6
))
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A URL that may not, or could not, be fetched; the message is safe to show a client."""


class TooLarge(FetchError):
    """The body at the URL is over the size cap."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings ("127.0.0.0/8", "::1") to networks; ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {value!r}") from None
    return tuple(networks)


def forbidden(address: Address, allow: tuple[Network, ...] = ()) -> bool:
    """Whether a server may not connect to ``address`` on a client's behalf."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == net.version and address in net for net in allow):
        return False
    return address in METADATA or address.is_multicast or not address.is_global


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class SafeFetcher:
    """GET and POST to client-given URLs under the rules in this module's docstring."""

    def __init__(self, *, allow: tuple[Network, ...] = (), timeout: float = 10.0,
                 max_redirects: int = 5, resolver: Resolver = system_resolver,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.allow, self.timeout, self.max_redirects = allow, timeout, max_redirects
        self._resolve = resolver
        self._http = httpx.AsyncClient(transport=transport, trust_env=False,
                                       follow_redirects=False, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, url: str, max_bytes: int) -> bytes:
        """The body at ``url``; FetchError when refused, failed, not 200, or too large."""
        try:
            with anyio.fail_after(self.timeout):
                return await self._get(url, max_bytes)
        except TimeoutError:
            raise FetchError(f"no complete answer from the URL within {self.timeout:g} s") \
                from None

    async def post_json(self, url: str, body: Any) -> int:
        """POST ``body`` as JSON (redirects are not followed); the answer's status."""
        try:
            with anyio.fail_after(self.timeout):
                request = await self._pinned("POST", url, json=body)
                response = await self._send(request)
                await response.aclose()
                return response.status_code
        except TimeoutError:
            raise FetchError(f"no answer within {self.timeout:g} s") from None

    async def _get(self, url: str, max_bytes: int) -> bytes:
        for _ in range(self.max_redirects + 1):
            response = await self._send(await self._pinned("GET", url))
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(f"the URL answered HTTP {response.status_code}")
                return await _read(response, max_bytes)
            finally:
                await response.aclose()
        raise FetchError(f"more than {self.max_redirects} redirects")

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            raise FetchError(f"could not reach the URL: {type(exc).__name__}") from None

    async def _pinned(self, method: str, url: str, **content: Any) -> httpx.Request:
        """A request to the checked address of ``url``'s host, keeping its Host and SNI."""
        target = _parse(url)
        host = target.host
        address = await self._address(host, target.port or (443 if target.scheme == "https"
                                                            else 80))
        headers = {"Host": target.netloc.decode("ascii")}
        pinned = target.copy_with(host=str(address))
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        return self._http.build_request(method, pinned, headers=headers, extensions=extensions,
                                        **content)

    async def _address(self, host: str, port: int) -> Address:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await self._resolve(host, port)
            except OSError:
                raise FetchError(f"cannot resolve the host {host!r}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise FetchError(f"cannot resolve the host {host!r}")
        for address in addresses:
            if forbidden(address, self.allow):
                raise FetchError(f"the host {host!r} resolves to a private or reserved "
                                 f"address ({address}); refused")
        return addresses[0]


def _parse(url: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise FetchError("not a valid URL") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise FetchError("only http and https URLs can be fetched")
    if target.userinfo:
        raise FetchError("URLs with credentials are refused")
    return target


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the file is {int(declared)} bytes, over the {max_bytes} byte cap")
    parts, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"the file is over the {max_bytes} byte cap")
        parts.append(chunk)
    return b"".join(parts)
