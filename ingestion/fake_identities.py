"""Deterministic fake PII (names, e-mail, phone, account numbers): realistic-looking, never real people."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

_FIRST_US = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
             "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
             "Carlos", "Maria", "Daniel", "Karen", "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Betty",
             "Kevin", "Sandra", "Jason", "Ashley", "Brian", "Emily", "Wei", "Mei", "Andre", "Keisha",
             "Luis", "Sofia", "Tyler", "Hannah", "Omar", "Aisha", "Ethan", "Chloe", "Noah", "Grace")
_LAST_US = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
            "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
            "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
            "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
            "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell")
_FIRST_IN = ("Aarav", "Vivaan", "Aditya", "Arjun", "Sai", "Rohan", "Ishaan", "Kabir", "Rahul", "Vikram",
             "Ananya", "Diya", "Priya", "Aditi", "Kavya", "Meera", "Sneha", "Pooja", "Neha", "Lakshmi",
             "Suresh", "Ramesh", "Anil", "Deepak", "Sunita", "Geeta", "Farhan", "Zoya", "Harpreet", "Simran")
_LAST_IN = ("Sharma", "Verma", "Gupta", "Patel", "Reddy", "Iyer", "Nair", "Menon", "Singh", "Kumar",
            "Das", "Bose", "Chatterjee", "Mukherjee", "Rao", "Joshi", "Kulkarni", "Desai", "Mehta", "Shah",
            "Khan", "Ansari", "Pillai", "Naidu", "Gill", "Sandhu", "Agarwal", "Banerjee", "Ghosh", "Saxena")
# Reserved example domains (RFC 2606): realistic-looking addresses that can never reach anyone.
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org")


@dataclass(frozen=True)
class Person:
    """A fake applicant's contact details."""

    full_name: str
    email: str | None
    phone: str | None


def stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts``, stable across runs, machines and Python versions."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def person(key: str, region: str) -> Person:
    """Name, e-mail and phone for the person identified by ``key`` (e.g. a customer id) in ``region``."""
    h = stable_int("person", key)
    first_names, last_names = (_FIRST_IN, _LAST_IN) if region == "india" else (_FIRST_US, _LAST_US)
    first = first_names[h % len(first_names)]
    last = last_names[(h >> 8) % len(last_names)]
    style = (h >> 16) % 4
    local = (f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[0]}{(h >> 20) % 100}",
             f"{first}_{last}{(h >> 20) % 1000}")[style].lower()
    email = None if (h >> 32) % 25 == 0 else f"{local}@{_DOMAINS[(h >> 24) % len(_DOMAINS)]}"
    phone: str | None
    if region == "india":
        phone = f"+91 {9 - (h >> 36) % 3}{(h >> 40) % 10000:04d} {(h >> 12) % 100000:05d}"
    else:  # 555-01xx numbers are reserved for fiction in the North American plan.
        phone = f"+1 ({200 + (h >> 36) % 800:03d}) 555-01{(h >> 44) % 100:02d}"
    if (h >> 50) % 20 == 0:
        phone = None
    return Person(full_name=f"{first} {last}", email=email, phone=phone)


def account_number(key: str, region: str) -> str:
    """A fake bank account number for ``key``: 12 digits (US) or 14 digits (India)."""
    h = stable_int("account", key)
    digits = 14 if region == "india" else 12
    return str(h % 10**digits).zfill(digits)
