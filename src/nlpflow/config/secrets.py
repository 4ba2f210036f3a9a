"""Passwords and tokens inside URLs: found, so params can refuse them, and masked, so nothing
nlpflow writes (files, MLflow, Prefect) carries one.

    redact("postgresql://me:pw@db/shop")           # 'postgresql://me:***@db/shop'
    redact("https://h/f.csv?token=abc&x=1")        # 'https://h/f.csv?token=***&x=1'
    find_secret("mysql://me:p%40ss@db/shop")       # 'a password'
    without_secrets("postgresql://me:pw@db/shop")  # 'postgresql://me@db/shop'

URLs are parsed the way the tools that use them do, which is looser than RFC 3986: SQLAlchemy
takes everything up to an `@` as the password, so `me:pa/ss@db` and `me:pa ss@db` hold the
passwords `pa/ss` and `pa ss`. A mask built on `urllib.parse` would miss both.
"""

from __future__ import annotations

import re
from typing import Any

from nlpflow.config.source_kinds import is_database_url

MASK = "***"

# Query keys whose value is a credential, compared lower-cased with "-" read as "_".
SECRET_KEYS = frozenset(
    {
        "password", "pwd", "passwd", "pass", "secret", "token", "sslpassword", "api_key",
        "apikey", "key", "access_token", "auth_token", "client_secret", "sig", "signature",
        "credential", "credentials", "x_amz_signature", "x_amz_credential",
        "x_amz_security_token",
    }
)  # fmt: skip
SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "api_key", "apikey", "signature")

_DELIMITERS = "\"'<>`"  # end a URL inside quoted or marked-up text
# scheme://user:SECRET@host: the secret may hold "/", ":", spaces, even "@" (the last "@"
# before the host ends it); it never spans a line or another URL's "://".
_USERINFO = re.compile(
    rf"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://(?P<user>[^\s:/@?#{_DELIMITERS}]*):)"
    rf"(?P<secret>(?:(?!://)[^\n{_DELIMITERS}])*?)"
    rf"@(?=[^@\s/?#{_DELIMITERS}]*(?:[/?#\s{_DELIMITERS}]|$))"
)
_PORT = re.compile(r"\d{1,5}[/?#\s]")  # host:5000/path@v1 is a port, not a password
# https://TOKEN@host: a user alone, in an http(s) URL, is a token (git clones keep them so)
_HTTP_USER = re.compile(rf"(?P<head>https?://)(?P<user>[^\s:/@?#{_DELIMITERS}]+)@")
_QUERY_ITEM = re.compile(
    rf"(?P<head>[?&;](?P<key>[A-Za-z0-9_.\-%]+)=)(?P<value>[^&#\n{_DELIMITERS}]*)"
)


def is_secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(SECRET_SUFFIXES)


def _userinfo_secret(match: re.Match[str]) -> bool:
    secret = match.group("secret")
    return bool(secret) and not _PORT.match(secret)


def redact(text: str) -> str:
    """`text` with every password or token inside a URL replaced by ***: user:PASSWORD@,
    an http(s) user that is a token, and values of query keys such as password, token, key."""

    def userinfo(match: re.Match[str]) -> str:
        if not _userinfo_secret(match):
            return match.group(0)
        return f"{match.group('head')}{MASK}@"

    def query(match: re.Match[str]) -> str:
        if not is_secret_key(match.group("key")) or not match.group("value"):
            return match.group(0)
        return f"{match.group('head')}{MASK}"

    masked = _USERINFO.sub(userinfo, text)
    masked = _HTTP_USER.sub(lambda m: f"{m.group('head')}{MASK}@", masked)
    masked = _QUERY_ITEM.sub(query, masked) if "=" in masked else masked
    if masked.split() == [masked] and _database_password(masked):  # SQLAlchemy reads more
        from sqlalchemy.engine import make_url

        return make_url(masked).render_as_string(hide_password=True)
    return masked


def redact_tree(value: Any) -> Any:
    """redact() applied to every string of nested dicts and lists (params, reports)."""
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return redact(value) if isinstance(value, str) else value


def find_secret(value: str) -> str | None:
    """What credential a URL holds ('a password', 'a token (query key token)'), or None.
    Text without "://" is no URL and holds none (a SQL query, a path, a label pattern)."""
    if "://" not in value:
        return None
    for match in _USERINFO.finditer(value):
        if _userinfo_secret(match):
            return "a password"
    if _HTTP_USER.search(value):
        return "a user name or token"
    for match in _QUERY_ITEM.finditer(value):
        if is_secret_key(match.group("key")) and match.group("value"):
            return f"a credential in its query ({match.group('key')}=)"
    return _database_password(value)


def _database_password(value: str) -> str | None:
    """SQLAlchemy's own reading of a database URL: the one that decides what is sent."""
    if not is_database_url(value):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(value).password
    except (ArgumentError, ValueError):
        return None
    return "a password" if password and password != MASK else None


def without_secrets(url: str) -> str:
    """The URL to write instead: the password and the credential query items left out, the
    user kept (libpq and ~/.pgpass look the password up by user, host and database)."""

    def userinfo(match: re.Match[str]) -> str:
        if not _userinfo_secret(match):
            return match.group(0)
        head = match.group("head")[:-1]  # without the ":" before the password
        return f"{head}@" if match.group("user") else head

    kept = _USERINFO.sub(userinfo, url)
    kept = _HTTP_USER.sub(lambda m: m.group("head"), kept)
    kept = _QUERY_ITEM.sub(lambda m: "" if is_secret_key(m.group("key")) else m.group(0), kept)
    if "?" not in kept and "&" in kept:  # the first item went: the next one starts the query
        kept = kept.replace("&", "?", 1)
    if kept.split() == [kept] and _database_password(kept):  # SQLAlchemy reads more
        from sqlalchemy.engine import make_url

        return make_url(kept)._replace(password=None).render_as_string(hide_password=False)
    return kept.rstrip("?")


def secret_paths(tree: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted path, value) of every string in a params tree that holds a credential."""
    if isinstance(tree, dict):
        return [hit for k, v in tree.items() for hit in secret_paths(v, f"{prefix}{k}.")]
    if isinstance(tree, list | tuple):
        return [hit for i, v in enumerate(tree) for hit in secret_paths(v, f"{prefix}{i}.")]
    if isinstance(tree, str) and find_secret(tree):
        return [(prefix.rstrip("."), tree)]
    return []


def refusal(path: str, value: str) -> str:
    """Why a param may not hold this URL, and the fix, without repeating the secret."""
    what = find_secret(value) or "a password"
    fixed = without_secrets(value)
    if is_database_url(value):
        return (
            f"{path} holds {what}; put it in PGPASSWORD, in ~/.pgpass, or in a Prefect Secret "
            f"block (NLPFLOW_DB_SECRET=<block name>) and write the URL without it: {fixed}"
        )
    return (
        f"{path} holds {what}; params are logged to MLflow, Prefect and DVC, so they never "
        "hold credentials: download the file with its credentials yourself and point "
        f"{path} at the copy, or use a URL that needs none: {fixed}"
    )
