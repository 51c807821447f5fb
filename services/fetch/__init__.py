"""Fetching user-given http(s) URLs without letting them reach private or internal addresses."""

from services.fetch.fetcher import Fetched, Fetcher, RemoteBody
from services.fetch.policy import AllowRule, FetchPolicy, is_address_allowed, parse_allow_rules
from services.fetch.urls import MAX_URL_LENGTH, ParsedURL, check_url, split_url

__all__ = [
    "MAX_URL_LENGTH",
    "AllowRule",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "ParsedURL",
    "RemoteBody",
    "check_url",
    "is_address_allowed",
    "parse_allow_rules",
    "split_url",
]
