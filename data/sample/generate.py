"""Generate the nlpflow sample datasets: synthetic customer-support tickets.

This script writes ``data/sample/support_tickets.csv`` (columns ``text,label``),
a small labelled text-classification dataset with four classes:
``billing``, ``shipping``, ``technical`` and ``account``, and
``data/sample/support_entities.jsonl`` (made by ``generate_entities.py`` beside it), a small
named-entity dataset of support-ticket sentences in spaCy/Prodigy span JSONL.

Every template, word list and phrase below was written for the nlpflow
project; no third-party text is used. The output is fully deterministic
(``random.Random(2026)``) and uses only the Python standard library.

Run from the repository root:

    python data/sample/generate.py

About 11% of the messages deliberately mention two topics; they are labelled
by the main complaint, so a simple bag-of-words classifier cannot be perfect.
"""

import csv
import os
import random

import generate_entities

SEED = 2026
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support_tickets.csv")

# Rows per class: (total, of which two-topic "ambiguous" messages).
TARGETS = {
    "billing": (182, 20),
    "shipping": (178, 20),
    "technical": (186, 20),
    "account": (180, 20),
}

MIN_WORDS, MAX_WORDS, MAX_CHARS = 5, 30, 299

# --------------------------------------------------------------------------
# Slot word lists
# --------------------------------------------------------------------------

PRODUCTS = [
    "wireless headphones",
    "standing desk",
    "yoga mat",
    "coffee grinder",
    "café table",
    "desk lamp",
    "phone case",
    "hiking backpack",
    "blender",
    "office chair",
    "smart watch",
    "USB-C hub",
    "rain jacket",
    "air fryer",
    "mechanical keyboard",
    "water bottle",
    "gaming mouse",
    "throw blanket",
    "espresso machine",
    "crème brûlée torch",
    "bike helmet",
    "tea kettle",
]
PLANS = ["Basic", "Pro", "Team", "Business", "Enterprise", "Starter"]
CURRENCIES = ["$", "€", "£"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
RELATIVE_DAYS = [
    "yesterday",
    "last Monday",
    "last Friday",
    "two weeks ago",
    "the 1st",
    "the 15th",
    "last week",
    "this morning",
]
CARRIERS = [
    "UPS",
    "DHL",
    "FedEx",
    "the postal service",
    "Royal Mail",
    "the courier",
    "Canada Post",
    "GLS",
]
CITIES = [
    "Montréal",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Lyon",
    "Austin",
    "Dublin",
    "Osaka",
    "Reykjavík",
    "Málaga",
    "Leeds",
    "Perth",
]
DEVICES = [
    "iPhone 14",
    "iPhone 12",
    "Pixel 7",
    "Galaxy S23",
    "iPad",
    "Windows laptop",
    "MacBook Air",
    "Chromebook",
    "Android tablet",
    "work PC",
    "Surface Pro",
    "Linux desktop",
]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Brave", "Opera"]
ERRORS = [
    "error 500",
    "error 403",
    "ERR_CONNECTION_RESET",
    "code E-1042",
    "error 0x80070005",
    "a 502 Bad Gateway",
    "timeout error 408",
    "code SYNC-17",
    "error 429",
    "code AUTH-03",
    "a 404 page",
]
FEATURES = [
    "export",
    "dashboard",
    "search",
    "reports",
    "calendar",
    "settings",
    "analytics",
    "inbox",
    "order history",
    "editor",
]
NAMES = [
    "José",
    "Chloé",
    "Zoë",
    "Björn",
    "Anna",
    "Mark",
    "Priya",
    "Liam",
    "Noémie",
    "Tom",
    "Aisha",
    "Kenji",
    "Sofia",
    "René",
]
SURNAMES = [
    "García",
    "Müller",
    "Nguyen",
    "Smith",
    "Dubois",
    "Kowalski",
    "Okafor",
    "Larsen",
    "Rossi",
    "Brontë",
]
EMAIL_USERS = [
    "jane.doe",
    "mark.t",
    "priya92",
    "office",
    "j.garcia",
    "accounts",
    "liam.w",
    "chloe.d",
    "sofia.r",
    "team",
]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
PROMOS = ["SPRING10", "WELCOME15", "SAVE20", "BLACKFRIDAY", "FREESHIP", "LOYAL5", "SUMMER25"]


def _date(rng):
    if rng.random() < 0.4:
        return rng.choice(RELATIVE_DAYS)
    if rng.random() < 0.5:
        return "%s %d" % (rng.choice(MONTHS), rng.randint(1, 28))
    return "%02d/%02d" % (rng.randint(1, 28), rng.randint(1, 12))


def _amount(rng):
    cur = rng.choice(CURRENCIES)
    value = rng.choice([9, 12, 19, 24, 29, 39, 49, 59, 79, 99, 120, 149, 199, 249])
    cents = rng.choice(["", ".00", ".99", ".50"])
    return "%s%d%s" % (cur, value, cents)


def _email(rng):
    if rng.random() < 0.3:
        return "support@example.com"
    return "%s@%s" % (rng.choice(EMAIL_USERS), rng.choice(EMAIL_DOMAINS))


SLOTS = {
    "product": lambda r: r.choice(PRODUCTS),
    "plan": lambda r: r.choice(PLANS),
    "amount": _amount,
    "date": _date,
    "order": lambda r: "#%d" % r.randint(10000, 99999),
    "order2": lambda r: "#%d" % r.randint(10000, 99999),
    "invoice": lambda r: "INV-%d-%04d" % (r.choice([2024, 2025, 2026]), r.randint(1, 9999)),
    "days": lambda r: str(r.randint(3, 21)),
    "n": lambda r: str(r.choice([2, 3, 4, 5, 8, 10, 12, 25, 50, 120, 500, 2000])),
    "size": lambda r: str(r.choice([10, 25, 50, 100, 200, 500])),
    "ver": lambda r: "%d.%d" % (r.randint(2, 9), r.randint(0, 14)),
    "carrier": lambda r: r.choice(CARRIERS),
    "city": lambda r: r.choice(CITIES),
    "device": lambda r: r.choice(DEVICES),
    "browser": lambda r: r.choice(BROWSERS),
    "error": lambda r: r.choice(ERRORS),
    "feature": lambda r: r.choice(FEATURES),
    "name": lambda r: r.choice(NAMES),
    "fullname": lambda r: "%s %s" % (r.choice(NAMES), r.choice(SURNAMES)),
    "email": _email,
    "promo": lambda r: r.choice(PROMOS),
    "url_order": lambda r: "https://example.com/orders/%d" % r.randint(100, 99999),
    "url_billing": lambda r: r.choice(
        [
            "https://example.com/billing",
            "https://app.example.com/billing/invoices",
            "https://example.com/account/payment",
        ]
    ),
    "url_track": lambda r: "https://example.com/track/%d" % r.randint(1000, 999999),
    "url_app": lambda r: r.choice(
        [
            "https://app.example.com",
            "https://app.example.com/dashboard",
            "https://example.com/login",
            "https://api.example.com/v2/orders",
        ]
    ),
}

# --------------------------------------------------------------------------
# Single-topic templates (each class has at least 25)
# --------------------------------------------------------------------------

TEMPLATES = {
    "billing": [
        "I was charged twice for order {order}, can you refund one of the payments?",
        "My card was billed {amount} on {date} but I cancelled the {plan} plan before that.",
        "Can I get a copy of invoice {invoice} with our company VAT number on it?",
        "Why did my subscription price go up to {amount} per month without notice?",
        "The refund for order {order} still hasn't shown up on my statement after {days} days.",
        "I need to update the credit card on file, the old one expired.",
        "Is there a discount if I switch from monthly to yearly billing on the {plan} plan?",
        "You charged me {amount} for the {product} that I returned on {date}.",
        "Please send the receipt for my last payment to {email}.",
        "My payment keeps getting declined even though the card works everywhere else.",
        "I see a pending charge of {amount} that I don't recognise, what is it for?",
        "Can I pay by bank transfer instead of card for the {plan} plan?",
        "The promo code {promo} was not applied and I paid full price for my order.",
        "How do I get a refund for the unused months of my annual subscription?",
        "Invoice {invoice} shows the wrong billing address, can it be reissued?",
        "I was charged sales tax on order {order} even though we are tax exempt.",
        "Your pricing page says {amount} but at checkout I was charged more.",
        "Please turn off auto-renewal, I don't want to be billed again on {date}.",
        "The free trial ended and I got billed {amount} without any reminder email.",
        "Can you split the payment for order {order} across two cards?",
        "Where can I download all of last year's invoices for my accountant?",
        "I got charged in dollars instead of euros and the bank added a conversion fee.",
        "My store credit balance still shows zero after I returned the {product}.",
        "We added {n} seats by mistake, please credit the difference on the next invoice.",
        "Is the {amount} charge from {date} for the {plan} plan or for the add-on?",
        "Apple Pay took the money but order {order} still shows as unpaid.",
        "I'd like a partial refund, the {product} has a scratch but I'll keep it.",
        "The billing page at {url_billing} says my payment method is invalid.",
        "Can you remove the late fee from invoice {invoice}? The transfer went out on {date}.",
        "If I downgrade from {plan} in the middle of the month, is the price prorated?",
        "Gift card balance of {amount} disappeared after my last purchase.",
        "Do you offer non-profit pricing for the {plan} plan? We're a small charity.",
    ],
    "shipping": [
        "Order {order} still hasn't arrived, it's been {days} days.",
        "The tracking number for my {product} hasn't updated since {date}.",
        "{carrier} says delivered but there is nothing at my door.",
        "Can I change the delivery address for order {order}? I just moved to {city}.",
        "My {product} arrived damaged, the box was completely crushed.",
        "Do you ship to {city}? Checkout doesn't list my country.",
        "How long does express shipping to {city} usually take?",
        "I received the wrong item, I ordered the {product} and got something else.",
        "Part of order {order} is missing, only one of the two boxes arrived.",
        "My parcel is stuck in customs in {city}, what do I need to do?",
        "Can you combine orders {order} and {order2} into one shipment?",
        "The tracking link {url_track} shows nothing, where is my package?",
        "When will the {product} be back in stock and shipped out?",
        "The courier left my package with a neighbour I have never met.",
        "Is it possible to pick up order {order} in a store instead of delivery?",
        "My order was marked as shipped on {date} but {carrier} has no record of it.",
        "How do I print a return label for the {product}?",
        "The estimated delivery date keeps moving, now it says {date}.",
        "I need the {product} before {date}, can you upgrade it to next-day delivery?",
        "The package was returned to sender, please resend order {order} to the same address.",
        "Why is delivery to {city} so much more expensive than last time?",
        "The driver needed a signature but I wasn't home, how do I reschedule?",
        "Can I leave delivery instructions for the {carrier} driver?",
        "The {product} came without the charger or the manual in the box.",
        "I sent my return back on {date}, has your warehouse received it yet?",
        "Order {order} has said out for delivery for three days now.",
        "Can you hold my shipment until I'm back from holiday on {date}?",
        "The package arrived soaking wet and the {product} inside is ruined.",
        "My order page at {url_order} still says processing, when does it ship?",
        "Is the {product} sent in one parcel or split into several deliveries?",
    ],
    "technical": [
        "The app crashes every time I open it on my {device}.",
        "I get {error} when I try to export a report.",
        "The {feature} page won't load in {browser}, just a blank screen.",
        "Sync between my {device} and the web app stopped working on {date}.",
        "Uploading a file larger than {size} MB fails with {error}.",
        "Push notifications are not showing up on my {device} anymore.",
        "Your API returns {error} for every request since this morning.",
        "Dark mode makes the text unreadable in the {feature} view.",
        "Search returns no results even for items I know exist.",
        "Since the latest update the app is painfully slow on my {device}.",
        "The checkout button does nothing when I click it in {browser}.",
        "Your webhook isn't firing when a new order is created.",
        "I keep getting {error} on {url_app}, is the service down?",
        "Images don't load on the product page in {browser} on my {device}.",
        "The CSV export mangles accented names like {fullname}.",
        "The calendar integration shows every event in the wrong time zone.",
        "Connecting the Slack integration fails with {error} during OAuth.",
        "The mobile app freezes on the loading screen right after login.",
        "The page keeps refreshing in a loop in {browser} version {ver}.",
        "The {feature} charts show no data at all for {date}.",
        "I'm getting a certificate warning when I visit {url_app}.",
        "Keyboard shortcuts stopped working in the editor on my {device}.",
        "Version {ver} of the app drains my {device} battery really fast.",
        "When I paste text into the notes field the formatting breaks.",
        "The Android app won't install, it says the package is invalid.",
        "Videos in the help center won't play in {browser}.",
        "The PDF preview shows garbled characters instead of text.",
        "Bulk import of {n} rows times out with {error}.",
        "The order history page throws {error} when I scroll down.",
        "The {feature} button is greyed out and clicking it does nothing.",
        "Drag and drop stopped working in {browser} after your last release.",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email on my account to {email}?",
        "Please delete my account and all of my personal data.",
        "My account got locked after too many login attempts.",
        "I can't sign in, it says no account exists but I signed up on {date}.",
        "Someone changed my password, I think my account was hacked.",
        "How do I invite a teammate to our workspace?",
        "I lost my phone and can't get the two-factor code to sign in.",
        "Can I merge my two accounts into one? Both are linked to {email}.",
        "How do I change the username on my profile?",
        "The verification link in the email says it has expired.",
        "I want to transfer ownership of the account to {fullname}.",
        "Please update the name on my account to {fullname}.",
        "How can I get a copy of all the personal data you hold about me?",
        "I signed up with Google but now I want a normal password login.",
        "My colleague left the company, how do I remove their access?",
        "Why was my account suspended without any notice?",
        "Can I save more than one shipping address in my profile?",
        "I never created an account but I'm getting emails at {email}.",
        "How do I turn off marketing emails in my account settings?",
        "My security question answers don't match, I can't recover my account.",
        "Please reactivate my old account, I closed it by mistake on {date}.",
        "How do I change my role from member to admin in our team?",
        "I'd like to close my account permanently, how do I do that?",
        "Sign in with Apple hid my email, how do I link it to my existing account?",
        "Where do I update my phone number for account recovery?",
        "My profile picture and display name reset after I logged in again.",
        "Can I use the same login for my business and personal orders?",
        "I got a login alert from {city} that wasn't me, what should I do?",
        "How do I set up two-factor authentication on my account?",
        "My username shows as {name}{n} instead of the one I picked.",
    ],
}

# --------------------------------------------------------------------------
# Two-topic messages: clauses per class, combined with frames.
# The first slot in each frame holds the main complaint (the label).
# --------------------------------------------------------------------------

CLAUSES = {
    "billing": [
        "I was charged twice for order {order}",
        "my card was billed {amount} after I cancelled",
        "the refund of {amount} never reached my bank",
        "invoice {invoice} has the wrong company name",
        "the promo code did not lower the price",
        "you charged me {amount} for a plan I never picked",
        "my payment of {amount} went through but shows as failed",
        "I was billed {amount} for shipping that should be free",
        "I still have no credit for my return",
    ],
    "shipping": [
        "order {order} has not arrived after {days} days",
        "the {product} came in a crushed box",
        "the tracking has not moved since {date}",
        "{carrier} marked the parcel delivered but it is not here",
        "the package went to my old address",
        "one item from order {order} is missing from the box",
        "the delivery date slipped again to {date}",
        "my order {order} still has not shipped",
    ],
    "technical": [
        "the app crashes when I open the invoice",
        "the page shows {error} in {browser}",
        "the mobile app freezes on my {device}",
        "the export button does nothing",
        "the site has been very slow since the update",
        "notifications stopped working on my {device}",
        "the tracking page will not load",
        "the checkout page throws {error}",
    ],
    "account": [
        "I cannot log in because the reset email never comes",
        "my account was locked after a few login attempts",
        "I need to change the email on my account to {email}",
        "someone else seems to be using my account",
        "the two-factor code is always rejected",
        "my profile lost all my saved details",
        "I want my old account deleted",
        "my account was suspended without warning",
    ],
}

MIXED_FRAMES = [
    "{main}. Also {sec}, but the first part matters most.",
    "{sec}, which is annoying, but my real problem is that {main}.",
    "Two issues: {main}, and {sec}. Please fix the first one urgently.",
    "{sec}. I can live with that. What I need help with is that {main}.",
    "Main complaint: {main}. Side note, {sec}.",
    "{main}, and on top of that {sec}. Mostly I want the first thing sorted.",
    "Not really about the fact that {sec}. The issue is {main}.",
    "{sec} and {main}. The second one is why I'm writing.",
]

# --------------------------------------------------------------------------
# Surface variation
# --------------------------------------------------------------------------

OPENINGS = [""] * 10 + [
    "Hi,",
    "Hello,",
    "hello team,",
    "Hey,",
    "Hi there,",
    "Good morning,",
    "Dear support,",
    "Hello support team,",
    "hi",
    "Quick question:",
    "Sorry if this is a naïve question,",
    "Hey team!",
    "Urgent:",
    "Hiya,",
]
CLOSINGS = [""] * 10 + [
    "Thanks.",
    "Thanks!",
    "thx",
    "Please help.",
    "Any ideas?",
    "Cheers, {name}",
    "Appreciate it.",
    "Thank you in advance.",
    "Merci!",
    "Regards, {fullname}",
    "You can reach me at {email}.",
    "This is getting frustrating.",
    "Déjà vu, same thing happened last month.",
    "Please reply soon.",
    "Many thanks, {name}",
]


def fill(template, rng):
    """Replace every {slot} in template with a random value."""
    values = {}
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1 : end]
        if key not in values:
            values[key] = SLOTS[key](rng)
        out = out[:start] + values[key] + out[end + 1 :]
    return out


def cap(s):
    return s[:1].upper() + s[1:] if s else s


def add_typo(text, rng):
    """Introduce one realistic typo into a word of 4+ letters."""
    words = text.split(" ")
    idxs = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idxs:
        return text
    i = rng.choice(idxs)
    w = words[i]
    kind = rng.randrange(3)
    p = rng.randrange(1, len(w) - 1)
    if kind == 0:  # swap two neighbouring letters
        w = w[:p] + w[p + 1] + w[p] + w[p + 2 :]
    elif kind == 1:  # drop a letter
        w = w[:p] + w[p + 1 :]
    else:  # double a letter
        w = w[:p] + w[p] + w[p:]
    words[i] = w
    return " ".join(words)


def decorate(body, rng):
    opening = rng.choice(OPENINGS)
    closing = fill(rng.choice(CLOSINGS), rng)
    starts_with_i = body[:2] in ("I ", "I'")
    if opening and opening[-1] not in ":!" and not starts_with_i and rng.random() < 0.85:
        body = body[:1].lower() + body[1:]
    text = " ".join(part for part in (opening, body, closing) if part)
    r = rng.random()
    if r < 0.05:
        text = text.lower()
    elif r < 0.09:
        text = text.rstrip(".!?")
    if rng.random() < 0.05:
        text = add_typo(text, rng)
    return " ".join(text.split())


def make_plain(label, rng):
    return decorate(fill(rng.choice(TEMPLATES[label]), rng), rng)


def make_mixed(label, rng):
    other = rng.choice([c for c in sorted(CLAUSES) if c != label])
    main = fill(rng.choice(CLAUSES[label]), rng)
    sec = fill(rng.choice(CLAUSES[other]), rng)
    frame = rng.choice(MIXED_FRAMES)
    body = frame.format(main=main, sec=sec)
    body = ". ".join(cap(s) for s in body.split(". "))
    return decorate(body, rng)


def valid(text):
    n_words = len(text.split())
    return (
        MIN_WORDS <= n_words <= MAX_WORDS
        and len(text) <= MAX_CHARS
        and "\n" not in text
        and text == text.strip()
    )


def generate():
    rng = random.Random(SEED)
    seen = set()
    rows = []
    for label in ["billing", "shipping", "technical", "account"]:
        total, n_mixed = TARGETS[label]
        for maker, count in ((make_mixed, n_mixed), (make_plain, total - n_mixed)):
            made, attempts = 0, 0
            while made < count:
                attempts += 1
                if attempts > 100000:
                    raise RuntimeError("could not generate enough unique texts for " + label)
                text = maker(label, rng)
                key = " ".join(text.lower().split())
                if not valid(text) or key in seen:
                    continue
                seen.add(key)
                rows.append((text, label))
                made += 1
    rng.shuffle(rows)
    return rows


def main():
    rows = generate()
    with open(OUT_PATH, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    counts = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1
    print("wrote %d rows to %s" % (len(rows), OUT_PATH))
    for label in sorted(counts):
        print("  %-10s %d" % (label, counts[label]))
    generate_entities.main()


if __name__ == "__main__":
    main()
