"""Generate nlpflow's sample NER dataset: entities in synthetic customer-support messages.

Writes ``data/sample/support_entities.jsonl``: one message a line in spaCy/Prodigy span
JSONL, ``{"text": ..., "spans": [{"start": 0, "end": 5, "label": "person"}, ...]}``
(character offsets into the text, end exclusive), with four entity types:
``product``, ``order_id``, ``person`` and ``city``.

Every template and word list below was written for the nlpflow project; no third-party text
is used. The output is deterministic (``random.Random(2027)``, standard library only), and
``generate.py`` beside this file runs it after writing the classification sample:

    python data/sample/generate.py

Product names are made of invented brands, model suffixes and item words, people of first
names and surnames, and order numbers are drawn at random in four formats, so most surface
forms occur once: whatever split a message lands in, the test split holds entities that
train never saw (evaluate's seen/unseen slice), as well as repeated ones (cities, brands).
"""

import json
import os
import random
import re

SEED = 2027
N_MESSAGES = 400
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support_entities.jsonl")

BRANDS = ["Nimbus", "Aurora", "TrailMate", "Brewster", "Kestrel", "Lumo", "Fjordline",
          "Orbit", "Pebble", "Vanta", "Solace", "Quill", "Halvard", "Zephyr"]  # fmt: skip
MODELS = ["", "", "", " X2", " Pro", " Mini", " 3", " Max", " Lite", " 2", " S", " Air"]
ITEMS = ["headphones", "desk lamp", "backpack", "espresso machine", "smart watch",
         "keyboard", "air fryer", "office chair", "blender", "tea kettle", "yoga mat",
         "rain jacket", "standing desk", "coffee grinder", "webcam", "USB-C hub"]  # fmt: skip
FIRST = ["José", "Chloé", "Zoë", "Björn", "Anna", "Mark", "Priya", "Liam", "Noémie", "Tom",
         "Aisha", "Kenji", "Sofia", "René", "Fatima", "Oliver", "Mei", "Lukas", "Ines",
         "Daniel", "Olga", "Hamid", "Grace", "Mateo"]  # fmt: skip
LAST = ["García", "Müller", "Nguyen", "Smith", "Dubois", "Kowalski", "Okafor", "Larsen",
        "Rossi", "Brontë", "Tanaka", "O'Brien", "Haddad", "Novak", "Silva", "Jensen",
        "Fischer", "Moreau"]  # fmt: skip
CITIES = ["Montréal", "Zürich", "São Paulo", "Kraków", "Lyon", "Austin", "Dublin", "Osaka",
          "Reykjavík", "Málaga", "Leeds", "Perth", "Porto", "Gdańsk", "Toronto", "Denver",
          "Nantes", "Bergen", "Göteborg", "Cork", "Seville", "Utrecht", "Brno", "Auckland",
          "Halifax", "Tucson", "Bilbao", "Turin", "Malmö", "Graz", "Ghent", "Kyoto",
          "New York", "San Diego", "Cape Town", "Buenos Aires", "Salt Lake City",
          "Rio de Janeiro"]  # fmt: skip


def _product(rng):
    brand = rng.choice(BRANDS)
    if rng.random() < 0.2:  # the brand and model alone: "the Nimbus X2"
        return brand + (rng.choice(MODELS) or " Pro")
    return "%s%s %s" % (brand, rng.choice(MODELS), rng.choice(ITEMS))


def _order(rng):
    n = rng.randint(10000, 99999)
    kind = rng.randrange(4)
    if kind == 0:
        return "#%d" % n
    if kind == 1:
        return "ORD-%d" % n
    if kind == 2:
        return "SO-%d-%05d" % (rng.choice([2025, 2026]), rng.randint(1, 99999))
    return "%d%03d" % (n, rng.randint(0, 999))  # a bare number, as pasted from an e-mail


def _person(rng):
    if rng.random() < 0.35:
        return rng.choice(FIRST)
    return "%s %s" % (rng.choice(FIRST), rng.choice(LAST))


SLOTS = {  # slot -> (entity type or None, value)
    "product": ("product", _product),
    "order": ("order_id", _order),
    "person": ("person", _person),
    "city": ("city", lambda r: r.choice(CITIES)),
    "n": (None, lambda r: str(r.choice([2, 3, 5, 10, 12, 20, 40]))),
    "day": (None, lambda r: r.choice(["Monday", "Friday", "yesterday", "last week", "May 3"])),
}

TEMPLATES = [
    "My {product} from order {order} arrived broken.",
    "Order {order} was supposed to reach {city} on {day} but it is still in your warehouse.",
    "{person} from your team promised me a refund for the {product}.",
    "Can you ship the {product} to my office in {city} instead?",
    "I spoke to {person} {day} about order {order}, is there any update?",
    "Please cancel {order}, I picked the wrong {product} by mistake.",
    "The {product} I bought in {city} stopped charging after a week.",
    "Is the {product} available for pickup in {city}?",
    "Orders {order} and {order} were both sent to {city} by mistake.",
    "This is {person}, I still haven't received order {order}.",
    "The parcel for {person} at our {city} office never arrived.",
    "{person} here, the {product} in order {order} is the wrong colour.",
    "Can {person} collect order {order} for me while I'm away?",
    "Your courier left order {order} with a neighbour in {city}.",
    "I'd like to swap the {product} for the {product}.",
    "Why does shipping to {city} cost more than shipping to {city}?",
    "My colleague {person} placed order {order} with my card.",
    "Tracking says order {order} is in {city}, but I live in {city}.",
    "The {product} keeps disconnecting from my laptop.",
    "Order {order} shows as delivered but nobody was home.",
    "Is there a store in {city} where I can try the {product}?",
    "Please change the recipient of order {order} to {person}.",
    "I returned the {product} at your {city} shop on {day} and still have no refund.",
    "Could you tell {person} that the {product} arrived safely?",
    "Gift for {person}: can you add a card to order {order}?",
    "We ordered {n} units of the {product} for our team in {city}.",
    "The manual for the {product} is missing from order {order}.",
    "Ask {person} to call me back about the {product}, please.",
    "Does the {product} work with the {product}?",
    "order {order} - wrong item, I got a {product}",
    "Hi {person}, thanks for the help with order {order} {day}.",
    "The {product} is cheaper on your {city} site than on this one.",
    "{person} and I both ordered the {product}, only mine arrived.",
    "Where is my {product}? Order {order}, shipped to {city}.",
    "I moved from {city} to {city}, please update the address on order {order}.",
    "Can I still add a {product} to order {order} before it ships?",
    "The delivery driver in {city} asked for {person} but that's my old name.",
    "My invoice for order {order} lists the {product} twice.",
    "Is the {product} compatible with my old {product}?",
    "Order {order}: the {product} box was empty!!",
]
# Messages with no entity: a tagger must also learn to leave text alone.
PLAIN = [
    "The box was crushed and the lid is cracked.",
    "How long do refunds usually take?",
    "I never got a confirmation email for my purchase.",
    "Your website logged me out three times today.",
    "Can I change the delivery date?",
    "The charger stopped working after two days.",
    "Do you offer gift wrapping?",
    "The tracking page has not updated since {day}.",
    "I was charged twice, please check.",
    "Is express shipping available on weekends?",
]
OPENINGS = [""] * 8 + ["Hi,", "Hello,", "Hey team,", "Dear support,", "Hi {person},", "Urgent:"]
CLOSINGS = [""] * 8 + ["Thanks.", "Thanks, {person}", "Regards, {person}", "Cheers!",
                       "Sent from {city}, thanks."]  # fmt: skip
SLOT = re.compile(r"\{(\w+)\}")


def fill(template, rng):
    """The template with each {slot} filled: (text, spans) where spans are [start, end, type]."""
    out, spans, pos = [], [], 0
    for match in SLOT.finditer(template):
        out.append(template[pos : match.start()])
        kind, make = SLOTS[match.group(1)]
        value = make(rng)
        if kind == "product" and rng.random() < 0.1:
            value = value.lower()  # typed in a hurry: "nimbus x2 headphones"
        start = sum(len(part) for part in out)
        out.append(value)
        if kind is not None:
            spans.append([start, start + len(value), kind])
        pos = match.end()
    out.append(template[pos:])
    return "".join(out), spans


def join(parts):
    """(text, spans) pieces joined by single spaces, their spans shifted."""
    text, spans = "", []
    for piece, piece_spans in parts:
        if not piece:
            continue
        if text:
            text += " "
        spans += [[s + len(text), e + len(text), t] for s, e, t in piece_spans]
        text += piece
    return text, spans


def message(rng):
    template = rng.choice(PLAIN) if rng.random() < 0.1 else rng.choice(TEMPLATES)
    body, spans = fill(template, rng)
    opening = fill(rng.choice(OPENINGS), rng)
    starts_with_entity = bool(spans) and spans[0][0] == 0
    if opening[0].endswith(",") and not starts_with_entity and body[:2] not in ("I ", "I'"):
        body = body[:1].lower() + body[1:]  # "Hi, my order ..."
    text, spans = join([opening, (body, spans), fill(rng.choice(CLOSINGS), rng)])
    if rng.random() < 0.08 and len(text.lower()) == len(text):
        text = text.lower()  # the whole message in lower case, offsets unchanged
    return text, spans


def generate():
    rng = random.Random(SEED)
    seen, records = set(), []
    while len(records) < N_MESSAGES:
        text, spans = message(rng)
        key = " ".join(re.findall(r"\w+", text.lower()))
        if key in seen:  # no repeats, even up to case and punctuation (validate's leak checks)
            continue
        seen.add(key)
        records.append(
            {"text": text, "spans": [{"start": s, "end": e, "label": t} for s, e, t in spans]}
        )
    return records


def main():
    records = generate()
    with open(OUT_PATH, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts = {}
    for record in records:
        for span in record["spans"]:
            counts[span["label"]] = counts.get(span["label"], 0) + 1
    print("wrote %d messages to %s" % (len(records), OUT_PATH))
    for label in sorted(counts):
        print("  %-10s %d" % (label, counts[label]))


if __name__ == "__main__":
    main()
