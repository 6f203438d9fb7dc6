"""The category registry: everything spillguard knows about a category of personal data, in one place.

Every category of the findings vocabulary has one entry, in vocabulary order: how detection treats it
(secret or not, whether its field rules claim any text under their field), how samples are masked, a
plain-language label, a risk level, the likely consequences (Art. 33(3)(c)), the measures the controller
should take, and what the people themselves can do (Art. 34). Categories are grouped into risk groups:
one Art. 34 notice is drafted per group, so a person reads about the data of theirs that was exposed,
not a list of rule names. Combinations (an SSID next to a location) raise the stakes beyond either
category alone. Rules may name only these categories.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

RISK_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class Category:
    label: str
    risk: str  # "high" | "medium" | "low"
    group: str  # a key of RISK_GROUPS
    masking: str  # how samples are masked: a key of spillguard.detect.masking.MASKS
    consequences: tuple[str, ...]
    measures: tuple[str, ...]
    advice: tuple[str, ...]  # what a person can do, in plain language
    we_do: str  # what the controller does about it, as an Art. 34 notice tells the person
    special_category: bool = False  # GDPR Art. 9
    secret: bool = False  # a credential: distinct values counted and fingerprinted so they can be revoked
    claiming: bool = False  # its field rules claim any text under their field (see detect.engine)


@dataclass(frozen=True, slots=True)
class RiskGroup:
    title: str
    plain_title: str  # how the Art. 34 notice names the data to a non-specialist
    order: int


@dataclass(frozen=True, slots=True)
class Combination:
    """Categories that, exposed together in one dataset, mean more than each alone."""

    categories: frozenset[str]
    any_of: frozenset[str]
    risk: str
    consequence: str
    measure: str


RISK_GROUPS: dict[str, RiskGroup] = {
    "credentials": RiskGroup(
        "Account credentials and access tokens", "your login details and account links", 1
    ),
    "health": RiskGroup("Health data (Art. 9 special category)", "your health information", 2),
    "financial": RiskGroup("Payment data", "your payment details", 3),
    "identity": RiskGroup("Identity data", "your identity details", 4),
    "home": RiskGroup("Home, location and device data", "details about your home and devices", 5),
    "contact": RiskGroup("Contact details", "your name and contact details", 6),
}

_ENTRIES: dict[str, Category] = {
    "secret": Category(
        label="Access tokens and API keys",
        risk="high",
        group="credentials",
        masking="secret",
        secret=True,
        consequences=(
            "Anyone holding a valid token can act as the user on the linked service without a password "
            "(takeover of linked accounts, e.g. voice assistants, cloud storage, smart-home control).",
            "Company API keys let an attacker read or change data of every customer, not only those exposed.",
        ),
        measures=(
            "Revoke every exposed token at its issuer (mass revocation in the token store or admin API) and "
            "verify by introspection; logging users out is not enough, issued access tokens live until they expire.",
            "Rotate exposed company API keys and review their use in access logs since the exposure began.",
            "Unlink third-party integrations so that new tokens are issued at the next login or re-link.",
        ),
        we_do="We are cancelling every exposed access token and disconnecting linked services, so the copies that were exposed stop working.",
        advice=(
            "Sign in again and re-link connected services (for example voice assistants) when asked.",
            "Check the list of devices and services connected to your account and remove any you do not recognise.",
        ),
    ),
    "password": Category(
        label="Passwords and password hashes",
        risk="high",
        group="credentials",
        masking="secret",
        secret=True,
        claiming=True,
        consequences=(
            "Password hashes can be cracked offline; weak or reused passwords then open this and other accounts "
            "(credential stuffing).",
        ),
        measures=(
            "Force a password reset for every affected account and invalidate existing sessions.",
            "Check the hashing scheme (bcrypt/argon2 with a sufficient cost); migrate weak hashes at next login.",
        ),
        we_do="We are resetting the passwords of the affected accounts and signing out all sessions.",
        advice=(
            "Change your password for this service, and anywhere else you used the same password.",
            "Turn on two-step verification where it is offered.",
        ),
    ),
    "health": Category(
        label="Health data",
        risk="high",
        group="health",
        masking="hidden",
        special_category=True,
        consequences=(
            "Health data is a special category of personal data under GDPR Art. 9; disclosure can cause "
            "discrimination, embarrassment or distress, and cannot be undone.",
        ),
        measures=(
            "Treat the breach as high risk for these people: notify them individually (Art. 34).",
            "Review whether health data needs to be in this store at all; minimise or encrypt it at rest.",
        ),
        we_do="We are reviewing which health data we keep and will stop keeping copies we do not need.",
        advice=(
            "Be careful with messages that mention your health measurements or ask you to confirm them.",
            "You can ask us which of your health records were affected.",
        ),
    ),
    "credit_card": Category(
        label="Payment card numbers",
        risk="high",
        group="financial",
        masking="card",
        consequences=(
            "Card numbers can be used for fraudulent payments, especially card-not-present purchases.",
        ),
        measures=(
            "Inform the card issuers / payment processor so the cards can be monitored or reissued (PCI DSS duties).",
            "Remove full card numbers from the store; keep only tokens from the payment processor.",
        ),
        we_do="We have informed the card companies so they can watch for fraudulent payments.",
        advice=(
            "Check your card statements for payments you did not make and report them to your bank.",
            "Ask your bank for a new card if you are worried.",
        ),
    ),
    "iban": Category(
        label="Bank account numbers (IBAN)",
        risk="medium",
        group="financial",
        masking="iban",
        consequences=(
            "Bank account numbers enable fraudulent direct debits and convincing payment-redirection scams.",
        ),
        measures=(
            "Warn affected people about direct-debit fraud; restrict who can read bank details in the store.",
        ),
        we_do="We are limiting who can see bank details in our systems.",
        advice=(
            "Check your bank statements for direct debits you did not authorise and dispute them with your bank.",
        ),
    ),
    "national_id": Category(
        label="National identification numbers",
        risk="high",
        group="identity",
        masking="digits",
        consequences=(
            "National identification numbers enable identity theft: opening accounts, loans or contracts in "
            "the person's name.",
        ),
        measures=("Offer identity-theft monitoring where available; remove or pseudonymise the numbers.",),
        we_do="We are removing identification numbers from the copy that was exposed.",
        advice=(
            "Watch for letters about loans, accounts or contracts you did not open.",
            "Consider asking a credit agency for a fraud alert.",
        ),
    ),
    "date_of_birth": Category(
        label="Dates of birth",
        risk="medium",
        group="identity",
        masking="hidden",
        consequences=(
            "Dates of birth are used as identity checks by banks and call centres; combined with a name they "
            "help impersonation and identity theft.",
        ),
        measures=("Stop using date of birth as a verification factor for account recovery.",),
        we_do="We no longer use your date of birth alone to confirm who you are.",
        advice=("Be suspicious of callers who already know your date of birth and ask for more details.",),
    ),
    "geolocation": Category(
        label="Precise locations",
        risk="high",
        group="home",
        masking="hidden",
        consequences=(
            "Precise coordinates reveal where a person lives or spends time, enabling stalking or burglary.",
        ),
        measures=("Reduce the precision of stored locations; delete location history that is not needed.",),
        we_do="We are deleting location history we do not need and storing locations less precisely.",
        advice=("Review the location settings of the app and turn off location history you do not need.",),
    ),
    "postal_address": Category(
        label="Postal addresses",
        risk="medium",
        group="home",
        masking="words",
        consequences=(
            "Home addresses expose people to unwanted contact, targeted scams and, with other data, burglary.",
        ),
        measures=("Restrict access to addresses to the systems that ship goods or send invoices.",),
        we_do="We are limiting who can see addresses in our systems.",
        advice=(
            "Be careful with letters or parcels that you did not expect and that ask you to pay or call back.",
        ),
    ),
    "wifi_ssid": Category(
        label="WiFi network names (SSID)",
        risk="medium",
        group="home",
        masking="length",
        claiming=True,
        consequences=(
            "A home WiFi name often contains the family name or address and identifies the network an attacker "
            "nearby would target.",
        ),
        measures=("Stop storing WiFi network names in analytics copies; they are not needed for metrics.",),
        we_do="We are deleting the WiFi network names from the copy that was exposed.",
        advice=(
            "Consider renaming your home WiFi network to a name that does not identify you or your address.",
        ),
    ),
    "mac_address": Category(
        label="Device hardware addresses (MAC)",
        risk="low",
        group="home",
        masking="mac",
        consequences=(
            "Hardware addresses identify a device on a network and can link it to a person over time.",
        ),
        measures=("Pseudonymise device identifiers in copies used for analytics.",),
        we_do="We are replacing device addresses with codes in copies used for statistics.",
        advice=("No action is needed from you for this item alone.",),
    ),
    "device_name": Category(
        label="Device names",
        risk="low",
        group="home",
        masking="length",
        claiming=True,
        consequences=(
            'Device nicknames ("Baby room", "Front door") reveal what a camera watches and details of home life.',
        ),
        measures=("Exclude free-text device names from analytics copies.",),
        we_do="We are removing device names from copies used for statistics.",
        advice=("Consider renaming devices whose names reveal rooms, people or routines.",),
    ),
    "ip_address": Category(
        label="IP addresses",
        risk="low",
        group="home",
        masking="ip",
        consequences=(
            "IP addresses reveal an approximate location and the internet provider, and may identify a home.",
        ),
        measures=("Truncate or pseudonymise IP addresses kept for analytics.",),
        we_do="We are shortening stored internet addresses in copies used for statistics.",
        advice=("No action is needed from you for this item alone.",),
    ),
    "email": Category(
        label="E-mail addresses",
        risk="medium",
        group="contact",
        masking="email",
        consequences=(
            "E-mail addresses enable targeted phishing that looks like it comes from us, and spam; they are the "
            "login name of many accounts.",
        ),
        measures=("Warn customers about phishing; never ask for passwords or tokens by e-mail.",),
        we_do="We will never ask you for your password or for login codes by e-mail, text or phone.",
        advice=(
            "Be careful with e-mails that appear to come from us and ask you to sign in, pay, or confirm details: "
            "open our app or type our address yourself instead of clicking links.",
        ),
    ),
    "phone": Category(
        label="Phone numbers",
        risk="medium",
        group="contact",
        masking="digits",
        consequences=("Phone numbers enable scam calls and text messages (smishing) and SIM-swap attempts.",),
        measures=("Warn customers about scam calls and texts; protect SIM-based account recovery.",),
        we_do="We will never ask you for login codes by phone or text message.",
        advice=("Be careful with calls or texts that claim to be from us and ask for codes or payments.",),
    ),
    "person_name": Category(
        label="Names",
        risk="low",
        group="contact",
        masking="words",
        consequences=(
            "Names make phishing and scam messages more convincing when combined with other data.",
        ),
        measures=("Restrict names to systems that need them.",),
        we_do="We are limiting which systems hold your name.",
        advice=("No action is needed from you for this item alone.",),
    ),
}

# The findings vocabulary, in the order scan results list categories.
CATEGORIES: dict[str, Category] = {name: _ENTRIES[name] for name in (
    "email", "phone", "person_name", "postal_address", "date_of_birth", "ip_address", "mac_address",
    "wifi_ssid", "device_name", "geolocation", "credit_card", "iban", "national_id", "password", "secret",
    "health",
)}  # fmt: skip
SECRET_CATEGORIES: frozenset[str] = frozenset(n for n, c in CATEGORIES.items() if c.secret)
CLAIMING_CATEGORIES: frozenset[str] = frozenset(n for n, c in CATEGORIES.items() if c.claiming)
# A category a scan file names but this version does not know (a newer spillguard): treated as contact data.
UNKNOWN = Category(
    label="", risk="medium", group="contact", masking="words", consequences=(), measures=(), advice=(), we_do=""
)


def category(name: str) -> Category:
    """The registry entry of a category; an unknown name gets UNKNOWN with its own name as label."""
    c = CATEGORIES.get(name)
    return c if c is not None else dataclasses.replace(UNKNOWN, label=name)


def risk_rank(name: str) -> int:
    return RISK_RANK[category(name).risk]


COMBINATIONS: tuple[Combination, ...] = (
    Combination(
        categories=frozenset({"wifi_ssid"}),
        any_of=frozenset({"geolocation", "postal_address", "ip_address"}),
        risk="high",
        consequence="A WiFi network name stored next to a location or address locates the home it belongs to: "
        "someone nearby can find the network and knows whose home it is.",
        measure="Separate network names from location data, or delete the network names.",
    ),
    Combination(
        categories=frozenset({"email"}),
        any_of=frozenset({"secret", "password"}),
        risk="high",
        consequence="Login names stored next to tokens or password hashes allow direct takeover of the matching "
        "accounts.",
        measure="Revoke the tokens and reset the passwords before announcing the breach publicly.",
    ),
    Combination(
        categories=frozenset({"health"}),
        any_of=frozenset({"email", "person_name", "phone"}),
        risk="high",
        consequence="Health measurements stored with names or contact details are attributable to identified people.",
        measure="Pseudonymise health records; keep the key to re-identify them outside the analytics store.",
    ),
)

GENERAL_MEASURES: tuple[str, ...] = (
    "Close the exposure: require authentication on the store, bind it to private addresses only, and confirm "
    "with `spillguard audit` that it now answers 'protected'.",
    "Preserve evidence: keep the store's access logs (and enable audit logging) to establish who read the data.",
    "Remove data the purpose does not need from copies used for analytics; use pseudonymised copies instead.",
    "Keep `spillguard watch` running on every store so the next exposure is noticed within minutes.",
)


def risk_of(categories: set[str]) -> str:
    """Highest risk among categories; combinations can raise it."""
    best = max((RISK_RANK[CATEGORIES[c].risk] for c in categories if c in CATEGORIES), default=0)
    for combo in COMBINATIONS:
        if combo.categories <= categories and combo.any_of & categories:
            best = max(best, RISK_RANK[combo.risk])
    return {v: k for k, v in RISK_RANK.items()}.get(best, "low")


def combinations_in(categories: set[str]) -> list[Combination]:
    return [c for c in COMBINATIONS if c.categories <= categories and c.any_of & categories]
