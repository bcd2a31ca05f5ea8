"""Imported at start-up by every Python process the tests launch (the tests put this folder on
PYTHONPATH), notebook kernels included: any attempt to reach the network fails at once, loudly.

Loopback stays open, because Jupyter kernels talk to nbval over local sockets.
"""
import socket

LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


class NetworkAccessInTests(RuntimeError):
    """Raised for any network access during the tests."""


def _refuse(address: object) -> None:
    raise NetworkAccessInTests(f"the tests must not touch the network, but something tried to reach {address!r}")


def _is_remote(sock: socket.socket, address: object) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address[0] not in LOOPBACK


def _guarded_connect(self: socket.socket, address: object) -> None:
    if _is_remote(self, address):
        _refuse(address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if _is_remote(self, address):
        _refuse(address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in LOOPBACK and host is not None:
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
