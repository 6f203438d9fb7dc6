"""Masked samples: enough to recognise what was found, never enough to use it."""

from __future__ import annotations

import re
from collections.abc import Callable

from spillguard.categories import category

_TOKEN_PREFIX = re.compile(
    r"^(Atz[ar]\||ya29\.|1//|AKIA|ASIA|gh[pousr]_|github_pat_|glpat-|xox[bpars]-|[sr]k_(?:live|test)_|SG\.|sk-(?:proj-|svcacct-|admin-)?|SK|eyJ|-----BEGIN [A-Z ]*PRIVATE KEY-----|\$2[abxy]?\$\d\d\$|\$argon2(?:id|i|d)\$|\$scrypt\$|pbkdf2_sha\d+\$|\$[56]\$)"
)


def _stars(part: str, keep: int = 1) -> str:
    return part[:keep] + "***" if part else ""


def mask_email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    labels = domain.split(".")
    tld = labels[-1] if len(labels) > 1 else ""
    return f"{_stars(local)}@{_stars(labels[0])}" + (f".{tld}" if tld else "")


def mask_secret(text: str) -> str:
    if "://" in text and "@" in text:  # a URL with credentials: keep the scheme and host, hide the rest
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***:***@{rest.rsplit('@', 1)[1]}"
    m = _TOKEN_PREFIX.match(text)
    prefix = m.group(0) if m else ""
    # The four characters after Atza|/Atzr| are the same in every Login-with-Amazon token (IwEB);
    # elsewhere nothing past the issuer prefix is shown, and nothing at all of an unprefixed secret.
    shown = text[: len(prefix) + 4] if prefix.startswith("Atz") else prefix
    return f"{shown}…({len(text)} chars)"


def mask_digits(text: str, keep_last: int = 2) -> str:
    out = []
    digits_total = sum(ch.isdigit() for ch in text)
    seen = 0
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits_total - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_words(text: str) -> str:
    return " ".join(_stars(w) for w in text.split())


def mask_ip(text: str) -> str:
    if "." in text:
        first, *_ = text.split(".")
        return first + ".***.***.***"
    groups = text.split(":")
    return groups[0] + ":****:…"


def mask_mac(text: str) -> str:
    # The first three octets name the vendor (OUI), not the device.
    hexdigits = re.sub(r"[^0-9A-Fa-f]", "", text)
    return ":".join([hexdigits[i : i + 2] for i in range(0, 6, 2)] + ["**"] * 3)


def mask_iban(text: str) -> str:
    compact = text.replace(" ", "")
    return compact[:2] + "**" + "*" * max(0, len(compact) - 6) + compact[-2:]


def mask_length(text: str) -> str:
    return f"{text[:1]}***({len(text)} chars)"


def _email_or_words(text: str) -> str:
    return mask_email(text) if "@" in text else mask_words(text)


# Masking kinds named by the category registry (spillguard.categories: Category.masking).
MASKS: dict[str, Callable[[str], str]] = {
    "email": _email_or_words,
    "secret": mask_secret,
    "digits": mask_digits,
    "card": lambda text: mask_digits(text, 4),
    "iban": mask_iban,
    "ip": mask_ip,
    "mac": mask_mac,
    "hidden": lambda text: "***",
    "length": mask_length,
    "words": mask_words,
}


def mask_value(category_name: str, text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return MASKS[category(category_name).masking](text)


_EMAIL_IN_NAME = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_PHONE_IN_NAME = re.compile(r"\+?\d[\d \-]{7,}\d")


def mask_identifiers(name: str) -> str:
    """Field paths and dataset names can hold personal data themselves (an object keyed by e-mail, a
    file named after a customer): mask what looks like an e-mail address or a phone number."""
    if "@" not in name and not any(ch.isdigit() for ch in name):
        return name
    name = _EMAIL_IN_NAME.sub(lambda m: mask_email(m.group(0)), name)
    return _PHONE_IN_NAME.sub(lambda m: mask_digits(m.group(0)), name)
