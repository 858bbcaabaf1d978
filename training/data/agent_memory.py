"""Agent-memory QA: multi-session histories of a synthetic person, and questions about them.

A history is a list of role-tagged messages (``user``, ``assistant``, ``tool``) in sessions with
timestamps. The user mentions facts about themselves and the people around them (names,
relations, places, jobs, preferences, dates, codes), asks the assistant to use tools (bookings,
parcel tracking) whose outputs hold further facts, and chats in between (small talk, word
look-ups, quotes, passages from books). Some facts change later; the question always asks for
the latest value and the earlier values stay in the history as decoys. Each question's
``metadata["decoy_spans"]`` lists those and the same slot's values about other people or bookings,
with the message stating each (hard negatives for the router).

Every answer string occurs, as a whole word, in exactly one message (the evidence), which also
means an answer never occurs in filler: paragraphs that contain any value are skipped.

``split="heldout"`` draws people's names, cities, pet names and company/venue words from a
partition no ``"train"`` example uses (:mod:`.vocab`), and half of its questions use paraphrases
reserved for it (the last template of each question list).

>>> ex = agent_memory(seed=7, target_tokens=1500)
>>> q = ex.questions[0]
>>> q.answer in ex.message(q.evidence_message_ids[0]).content
True
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from . import chatter, vocab
from .corpora import Gloss
from .dialogue import Exchange, looks_personal
from .records import Example, Message, Question
from .text import Filler, TextSource, fit_length, make_source, trim_to_tokens

__all__ = ["agent_memory", "SLOTS", "TOOL_SLOTS"]


_WORD = re.compile(r"\w+")


def _words(text: str) -> str:
    """Lower-case words between single spaces: ``v in _words(t)`` is a whole-word match, punctuation aside."""
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def _article(phrase: str) -> str:
    first = phrase.split()[0]
    vowel_sound = first[0].lower() in "aeio" or first.isupper() and first[0] in "AEFHILMNORSX"
    if first.lower().startswith(("uni", "use", "eu", "one")) or first.startswith("UX"):
        vowel_sound = False
    return f"{'an' if vowel_sound else 'a'} {phrase}"


@dataclass(frozen=True)
class Slot:
    """A kind of fact: how to draw a value, say it, change it and ask about it.

    Templates use ``{value}``, ``{a_value}`` (with its article), ``{old}`` and the slot's context
    fields. The last question template is reserved for held-out examples.
    """

    name: str
    category: str
    draw: str
    intro: tuple[str, ...]
    questions: tuple[str, ...]
    response: str
    update: tuple[str, ...] = ()
    subject: str = "user"
    repeatable: bool = False
    context: tuple[str, ...] = ()


SLOTS: tuple[Slot, ...] = (
    Slot("home_city", "location", "city",
         ("I live in {value}.", "Home for me is {value} these days.", "I'm based in {value}.",
          "We've been living in {value} for a few years now."),
         ("Which city do I live in now?", "Where am I living these days?", "What city am I based in at the moment?",
          "Where is home for me currently?"),
         "You live in {value}.",
         ("Big news: I've moved from {old} to {value}.", "I just moved to {value}!",
          "Quick update: I relocated to {value} last week.", "I don't live in {old} anymore; I'm in {value} now.")),
    Slot("employer", "work", "company",
         ("I work at {value}.", "My employer is {value}.", "I've been at {value} for a while now."),
         ("Where do I work now?", "Which company am I working for?", "Who is my current employer?",
          "What company employs me at present?"),
         "You work at {value}.",
         ("I started a new job at {value} this week.", "I left {old} and joined {value}.",
          "Update: I'm working at {value} now.")),
    Slot("job_title", "work", "job",
         ("I'm {a_value}.", "I work as {a_value}.", "By profession I'm {a_value}."),
         ("What do I do for a living?", "What's my job?", "What is my profession?", "What line of work am I in now?"),
         "You work as {a_value}.",
         ("I've changed careers and I'm {a_value} now.", "I retrained, so now I work as {a_value}.")),
    Slot("favourite_food", "preference", "food",
         ("My favourite food is {value}.", "I could eat {value} every day.", "Nothing beats {value} for me."),
         ("What's my favourite food?", "Which dish do I like most these days?", "What food do I love most right now?",
          "What is my go-to favourite dish?"),
         "Your favourite food is {value}.",
         ("I've gone off {old}; these days my favourite is {value}.", "New favourite food: {value}.")),
    Slot("favourite_drink", "preference", "drink",
         ("My favourite drink is {value}.", "I always order {value}.", "I can't start the day without {value}."),
         ("What's my favourite drink?", "What do I usually order to drink?", "Which drink do I like best lately?",
          "What drink am I into at the moment?"),
         "Your favourite drink is {value}.",
         ("I've switched from {old} to {value}.", "These days I'm all about {value}.")),
    Slot("favourite_colour", "preference", "colour",
         ("My favourite colour is {value}.", "I love anything in {value}."),
         ("What's my favourite colour?", "Which colour do I like most?", "What colour do I love these days?",
          "What is my preferred colour?"),
         "Your favourite colour is {value}.",
         ("I'm more into {value} than {old} now.", "My favourite colour has changed to {value}.")),
    Slot("sport", "preference", "sport",
         ("I play {value} every week.", "My sport is {value}.", "I do {value} to stay fit."),
         ("Which sport do I do regularly?", "What sport am I into?", "What do I do to stay fit?",
          "What's my regular sport these days?"),
         "You do {value}.",
         ("I've taken up {value} instead of {old}.", "I gave up {old}; now I do {value}.")),
    Slot("hobby", "preference", "hobby",
         ("My main hobby is {value}.", "In my free time I do {value}.", "I've really got into {value}."),
         ("What's my hobby?", "What do I do in my free time?", "What pastime am I into?",
          "Which hobby keeps me busy lately?"),
         "Your hobby is {value}.",
         ("I've dropped {old} and started {value}.", "My new hobby is {value}.")),
    Slot("language", "preference", "language",
         ("I'm learning {value}.", "I've started {value} lessons.", "I practise {value} every evening."),
         ("Which language am I learning?", "What language am I studying?", "What language lessons am I taking?",
          "Which language am I working on now?"),
         "You are learning {value}.",
         ("I've switched from {old} to learning {value}.", "I'm learning {value} now instead.")),
    Slot("instrument", "preference", "instrument",
         ("I play the {value}.", "I've played the {value} since I was a kid."),
         ("What instrument do I play?", "Which instrument have I played since childhood?",
          "Which instrument can I play?"),
         "You play the {value}."),
    Slot("allergy", "health", "allergen",
         ("I'm allergic to {value}.", "Just so you know, I have an allergy to {value}."),
         ("What am I allergic to?", "What allergy do I have?", "Which allergy should you remember for me?"),
         "You are allergic to {value}."),
    Slot("car", "possession", "car",
         ("I drive a {value}.", "My car is a {value}."),
         ("What car do I drive now?", "What's my car?", "Which car do I have at the moment?",
          "What am I driving these days?"),
         "You drive a {value}.",
         ("I sold the {old} and bought a {value}.", "New car! It's a {value}.")),
    Slot("pet", "possession", "pet_name",
         ("I have a {species} called {value}.", "My {species} is named {value}.", "Our {species}, {value}, is adorable."),
         ("What's my {species}'s name?", "What is my {species} called?", "What did I name my {species}?",
          "What name does my {species} have?"),
         "Your {species} is called {value}.", context=("species",)),
    Slot("locker_code", "code", "code4",
         ("My gym locker code is {value}.", "The code for my locker at the gym is {value}."),
         ("What's my gym locker code?", "What is the code for my gym locker?", "Which code opens my locker at the gym?",
          "What number opens my gym locker now?"),
         "Your locker code is {value}.",
         ("I changed my locker code to {value}.", "New locker code at the gym: {value}.")),
    Slot("wifi_password", "code", "password",
         ("The wifi password at home is {value}.", "Our home wifi password is {value}."),
         ("What's the wifi password at home?", "What is our home wifi password?", "Which password does the home wifi use?",
          "What do I type to join my home wifi?"),
         "The home wifi password is {value}.",
         ("We changed the wifi password to {value}.", "New wifi password at home: {value}.")),
    Slot("birthday", "date", "date",
         ("My birthday is on {value}.", "I was born on {value}."),
         ("When is my birthday?", "What's the date of my birthday?", "On what day do I celebrate my birthday?"),
         "Your birthday is on {value}."),
    Slot("appointment", "date", "date",
         ("My {event} is on {value}.", "I've booked my {event} for {value}.", "Don't let me forget: {event} on {value}."),
         ("When is my {event}?", "What date is my {event}?", "What day did I book my {event} for?",
          "On which date is my {event} now?"),
         "Your {event} is on {value}.",
         ("My {event} got moved to {value}.", "They rescheduled my {event} to {value}.",
          "Change of plan: the {event} is now on {value}."),
         repeatable=True, context=("event",)),
    Slot("deadline", "date", "date",
         ("I need to finish the {project} by {value}.", "The {project} is due on {value}."),
         ("When is the {project} due?", "What's the deadline for the {project}?", "By what date must I finish the {project}?",
          "When do I have to hand in the {project}?"),
         "The {project} is due on {value}.",
         ("The deadline for the {project} moved to {value}.", "Good news: the {project} is now due on {value}."),
         repeatable=True, context=("project",)),
    Slot("person_name", "relation", "first_name",
         ("My {rel} is called {value}.", "{value} is my {rel}.", "Have I mentioned my {rel}, {value}?"),
         ("What's my {rel}'s name?", "What is my {rel} called?", "Who is my {rel}?", "What name does my {rel} go by?"),
         "Your {rel} is {value}.", subject="person", repeatable=True, context=("rel",)),
    Slot("person_city", "person", "city",
         ("My {rel} lives in {value}.", "My {rel} is based in {value}."),
         ("Where does my {rel} live now?", "Which city is my {rel} in?", "Where is my {rel} based these days?",
          "In which city does my {rel} live at the moment?"),
         "Your {rel} lives in {value}.",
         ("My {rel} moved to {value}.", "My {rel} has relocated from {old} to {value}."),
         subject="person", repeatable=True, context=("rel",)),
    Slot("person_job", "person", "job",
         ("My {rel} works as {a_value}.", "My {rel} is {a_value}."),
         ("What does my {rel} do for a living?", "What's my {rel}'s job?", "What is my {rel}'s profession?",
          "What work does my {rel} do now?"),
         "Your {rel} works as {a_value}.",
         ("My {rel} changed jobs and is {a_value} now.",),
         subject="person", repeatable=True, context=("rel",)),
    Slot("person_birthday", "person", "date",
         ("My {rel}'s birthday is on {value}.", "My {rel} was born on {value}."),
         ("When is my {rel}'s birthday?", "What date is my {rel}'s birthday?", "On which day is my {rel}'s birthday?"),
         "Your {rel}'s birthday is on {value}.", subject="person", repeatable=True, context=("rel",)),
)


@dataclass(frozen=True)
class ToolSlot:
    """A tool whose output holds the answer: the request, the JSON result and questions on one field."""

    name: str
    tool: str
    requests: tuple[str, ...]
    change_requests: tuple[str, ...]
    done: tuple[str, ...]
    questions: dict[str, tuple[str, ...]]
    responses: dict[str, str]
    context: tuple[str, ...]


TOOL_SLOTS: tuple[ToolSlot, ...] = (
    ToolSlot(
        "flight", "book_flight",
        ("Can you book me a flight to {city} on {date}?", "Please book a flight to {city} for {date}.",
         "I need a flight to {city} on {date}, can you sort it?"),
        ("Can you move my {city} flight to a later one?", "Please rebook my flight to {city}, the time doesn't work."),
        ("Done, your flight to {city} is booked.", "All set, you're flying to {city}.", "Booked! Have a good trip."),
        {"confirmation": ("What's the confirmation code for my flight to {city}?",
                          "What is the booking reference of my {city} flight?",
                          "Which confirmation code did I get for the {city} flight?",
                          "What code confirms my flight to {city}?"),
         "flight": ("What's my flight number to {city}?", "Which flight am I taking to {city}?",
                    "What flight did you book me on to {city}?", "What is the number of my flight to {city}?")},
        {"confirmation": "Your confirmation code is {value}.", "flight": "You're on flight {value}."},
        ("city", "date"),
    ),
    ToolSlot(
        "restaurant", "reserve_table",
        ("Could you reserve a table at {restaurant} for {party} on {weekday}?",
         "Book {restaurant} for {party} people on {weekday}, please.",
         "Can you get us a table for {party} at {restaurant} on {weekday}?"),
        ("Can you change my booking at {restaurant} to a different time?", "Please move the {restaurant} reservation."),
        ("Your table is reserved.", "Done, the table is booked.", "Reservation confirmed, enjoy your meal!"),
        {"reference": ("What's the reference for my booking at {restaurant}?",
                       "What reservation number did {restaurant} give me?",
                       "Which booking reference do I have at {restaurant}?",
                       "What is the reservation reference at {restaurant}?"),
         "time": ("What time is my table at {restaurant}?", "When is my reservation at {restaurant}?",
                  "At what time should I arrive at {restaurant}?", "What time did you book {restaurant} for?")},
        {"reference": "The reference is {value}.", "time": "Your table is at {value}."},
        ("restaurant", "party", "weekday"),
    ),
    ToolSlot(
        "parcel", "track_parcel",
        ("Where's my {item} order?", "Can you track the {item} I ordered?", "Any news on my {item} delivery?"),
        ("Can you check on the {item} delivery again?", "Is there an update on my {item}?"),
        ("Here's the latest on your parcel.", "I've checked the tracking for you.", "That's the current status."),
        {"tracking_number": ("What's the tracking number for my {item}?", "Which tracking number does my {item} order have?",
                             "What number tracks my {item} parcel?", "What is the parcel tracking number of the {item}?"),
         "eta": ("When is my {item} expected to arrive?", "What's the delivery date for my {item}?",
                 "On what day should my {item} arrive?", "When will the {item} be delivered?")},
        {"tracking_number": "The tracking number is {value}.", "eta": "It should arrive on {value}."},
        ("item",),
    ),
    ToolSlot(
        "hotel", "book_hotel",
        ("Please book {hotel} in {city} for {nights} nights from {date}.",
         "Can you get me a room at {hotel} in {city} from {date}, {nights} nights?"),
        ("Can you change my {hotel} booking?", "Please rebook {hotel}, my dates moved."),
        ("Your room is booked.", "Done, the hotel is confirmed.", "All booked, enjoy your stay."),
        {"confirmation": ("What's my confirmation number at {hotel}?", "Which confirmation number did {hotel} send?",
                          "What number confirms my stay at {hotel}?", "What is the booking number for {hotel}?")},
        {"confirmation": "Your confirmation number is {value}."},
        ("hotel", "city", "date", "nights"),
    ),
)

CARRIERS = ("DHL", "UPS", "FedEx", "DPD", "GLS", "Royal Mail", "PostNL", "Evri")
PARCEL_STATUS = ("in transit", "out for delivery", "at the local depot", "awaiting collection", "delayed")


class _World:
    """Draws values for one history: split-aware pools and no value reused or overlapping."""

    def __init__(self, rng: random.Random, split: str):
        self.rng = rng
        self.split = split
        self.claimed: list[str] = []
        self._claimed_words: list[str] = []
        self.first_names = vocab.split_pool(vocab.FIRST_NAMES, split)
        self.cities = vocab.split_pool(vocab.CITIES, split)
        self.pet_names = vocab.split_pool(vocab.PET_NAMES, split)
        self.company_prefixes = vocab.split_pool(vocab.COMPANY_PREFIXES, split)
        self.venue_words = vocab.split_pool(vocab.VENUE_WORDS, split)

    def claim(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            value = make()
            words = _words(value)
            if not any(words in other or other in words for other in self._claimed_words):
                self.claimed.append(value)
                self._claimed_words.append(words)
                return value
        raise RuntimeError("ran out of distinct values; the pools are too small for this many facts")

    def code(self, alphabet: str, length: int) -> str:
        while True:
            code = "".join(self.rng.choice(alphabet) for _ in range(length))
            if any(c.isdigit() for c in code) and any(c.isalpha() for c in code) or alphabet.isdigit():
                return code

    def draw(self, kind: str) -> str:
        rng = self.rng
        makers: dict[str, Callable[[], str]] = {
            "city": lambda: rng.choice(self.cities),
            "company": lambda: f"{rng.choice(self.company_prefixes)} {rng.choice(vocab.COMPANY_SUFFIXES)}",
            "job": lambda: rng.choice(vocab.JOBS),
            "food": lambda: rng.choice(vocab.FOODS),
            "drink": lambda: rng.choice(vocab.DRINKS),
            "colour": lambda: rng.choice(vocab.COLOURS),
            "sport": lambda: rng.choice(vocab.SPORTS),
            "hobby": lambda: rng.choice(vocab.HOBBIES),
            "language": lambda: rng.choice(vocab.LANGUAGES),
            "instrument": lambda: rng.choice(vocab.INSTRUMENTS),
            "allergen": lambda: rng.choice(vocab.ALLERGENS),
            "car": lambda: f"{rng.choice(vocab.CAR_COLOURS)} {rng.choice(vocab.CAR_MAKES)}",
            "pet_name": lambda: rng.choice(self.pet_names),
            "first_name": lambda: rng.choice(self.first_names),
            "code4": lambda: str(rng.randrange(1000, 10000)),
            "password": lambda: f"{rng.choice(vocab.KEY_NOUNS)}{rng.randrange(10, 100)}",
            "date": lambda: f"{rng.randrange(1, 29)} {rng.choice(vocab.MONTHS)}",
            "species": lambda: rng.choice(vocab.SPECIES),
            "event": lambda: rng.choice(vocab.APPOINTMENTS),
            "project": lambda: rng.choice(vocab.PROJECTS),
            "rel": lambda: rng.choice(vocab.RELATIONS),
            "item": lambda: rng.choice(vocab.PARCEL_ITEMS),
            "restaurant": lambda: rng.choice(vocab.RESTAURANT_FORMS).format(w=rng.choice(self.venue_words)),
            "hotel": lambda: rng.choice(vocab.HOTEL_FORMS).format(w=rng.choice(self.venue_words)),
            "confirmation": lambda: self.code("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6),
            "flight": lambda: f"{rng.choice(vocab.AIRLINE_CODES)} {rng.randrange(100, 10000)}",
            "reference": lambda: f"R-{rng.randrange(10000, 100000)}",
            "time": lambda: f"{rng.randrange(12, 23)}:{rng.choice(['00', '15', '30', '45'])}",
            "tracking_number": lambda: f"{rng.choice(['JD', 'TR', 'PK', 'ZX'])}{rng.randrange(10**9, 10**10)}",
            "eta": lambda: f"{rng.choice(vocab.WEEKDAYS)} {rng.randrange(1, 29)} {rng.choice(vocab.MONTHS)}",
            "hotel_confirmation": lambda: str(rng.randrange(10**7, 10**8)),
        }
        if kind not in makers:
            raise KeyError(kind)
        return self.claim(makers[kind])


@dataclass
class _Fact:
    slot: Slot | ToolSlot
    context: dict[str, str]
    values: list[str]
    tool_field: str = ""
    # tool facts: every field of each output
    outputs: list[dict[str, str]] = field(default_factory=list)
    # filled when messages are laid out: the id of the message stating each value
    message_ids: list[str] = field(default_factory=list)


@dataclass
class _Episode:
    """Messages that stay together (a statement and its acknowledgement, a tool call)."""

    messages: list[tuple[str, str]]  # (role, content)
    fact: _Fact | None = None
    value_index: int = -1
    # which message of the episode holds the value
    holder: int = 0
    kind: str = "fact"


def _fill(template: str, fact: _Fact, index: int) -> str:
    value = fact.values[index]
    fields = dict(fact.context, value=value, a_value=_article(value))
    if index > 0:
        fields["old"] = fact.values[index - 1]
    return template.format(**fields)


def _make_facts(world: _World, n_facts: int, update_rate: float) -> list[_Fact]:
    rng = world.rng
    facts: list[_Fact] = []
    used_slots: set[str] = set()
    relations: list[str] = []
    single = [s for s in SLOTS if not s.repeatable]
    attempts = 0
    while len(facts) < n_facts and attempts < 50 * n_facts:
        attempts += 1
        roll = rng.random()
        if roll < 0.15:
            facts.append(_tool_fact(world, rng.choice(TOOL_SLOTS), update_rate))
            continue
        if roll < 0.40:
            slot = rng.choice([s for s in SLOTS if s.subject == "person"])
            # a person is introduced by name before anything else about them is said
            if slot.name != "person_name" and not relations:
                slot = next(s for s in SLOTS if s.name == "person_name")
            if slot.name == "person_name":
                rel = world.draw("rel")
                relations.append(rel)
                context = {"rel": rel}
            else:
                context = {"rel": rng.choice(relations)}
                if f"{slot.name}:{context['rel']}" in used_slots:
                    continue
            used_slots.add(f"{slot.name}:{context['rel']}")
        elif roll < 0.55:
            slot = rng.choice([s for s in SLOTS if s.repeatable and s.subject == "user"])
            context = {name: world.draw(name) for name in slot.context}
        else:
            candidates = [s for s in single if s.name not in used_slots]
            if not candidates:
                continue
            slot = rng.choice(candidates)
            used_slots.add(slot.name)
            context = {name: world.draw(name) for name in slot.context}
        n_values = 1
        if slot.update:
            while n_values < 3 and rng.random() < update_rate:
                n_values += 1
        values = [world.draw(slot.draw) for _ in range(n_values)]
        facts.append(_Fact(slot, context, values))
    return facts


def _tool_fact(world: _World, slot: ToolSlot, update_rate: float) -> _Fact:
    rng = world.rng
    context: dict[str, str] = {}
    for name in slot.context:
        if name == "party":
            context[name] = str(rng.randrange(2, 9))
        elif name == "nights":
            context[name] = str(rng.randrange(2, 8))
        elif name == "weekday":
            context[name] = rng.choice(vocab.WEEKDAYS)
        else:
            context[name] = world.draw(name)
    field_name = rng.choice(sorted(slot.questions))
    n_outputs = 2 if rng.random() < update_rate else 1
    outputs = []
    for _ in range(n_outputs):
        if slot.name == "flight":
            outputs.append({"confirmation": world.draw("confirmation"), "flight": world.draw("flight")})
        elif slot.name == "restaurant":
            outputs.append({"reference": world.draw("reference"), "time": world.draw("time")})
        elif slot.name == "parcel":
            outputs.append({"tracking_number": world.draw("tracking_number"), "eta": world.draw("eta"),
                            "carrier": rng.choice(CARRIERS), "status": rng.choice(PARCEL_STATUS)})
        else:
            outputs.append({"confirmation": world.draw("hotel_confirmation")})
    if slot.name == "parcel" and n_outputs == 2:
        # a parcel keeps its tracking number; only the status and date move
        outputs[1]["tracking_number"] = outputs[0]["tracking_number"]
        if field_name == "tracking_number":
            outputs = outputs[:1]
    fact = _Fact(slot, context, [o[field_name] for o in outputs], tool_field=field_name)
    fact.outputs = outputs
    return fact


def _tool_episodes(rng: random.Random, fact: _Fact) -> list[_Episode]:
    slot = fact.slot
    assert isinstance(slot, ToolSlot)
    episodes = []
    for index, output in enumerate(fact.outputs):
        requests = slot.requests if index == 0 else slot.change_requests
        request = rng.choice(requests).format(**fact.context)
        result = {"tool": slot.tool, "status": "ok"}
        result.update({k: v for k, v in fact.context.items() if k in ("city", "date", "restaurant", "item", "hotel")})
        result.update(output)
        messages = [
            ("user", request),
            ("assistant", rng.choice(("On it.", "Let me take care of that.", "One moment.", "Sure, checking now."))),
            ("tool", json.dumps(result, ensure_ascii=False)),
            ("assistant", rng.choice(slot.done).format(**fact.context)),
        ]
        episodes.append(_Episode(messages, fact, index, holder=2))
    return episodes


def _fact_episodes(rng: random.Random, fact: _Fact) -> list[_Episode]:
    if isinstance(fact.slot, ToolSlot):
        return _tool_episodes(rng, fact)
    episodes = []
    for index in range(len(fact.values)):
        templates = fact.slot.intro if index == 0 else fact.slot.update
        acks = chatter.ACKS if index == 0 else chatter.UPDATE_ACKS
        text = _fill(rng.choice(templates), fact, index)
        episodes.append(_Episode([("user", text), ("assistant", rng.choice(acks))], fact, index))
    return episodes


class _Chatter:
    """An endless, seeded stream of filler episodes (small talk, words, quotes, passages)."""

    def __init__(self, seed: int, source: TextSource, glosses: Sequence[Gloss] | None,
                 quotes: Sequence[str] | None, avoid: Callable[[str], bool],
                 dialogues: Sequence[Exchange] | None = None):
        self.rng = random.Random(f"agent_memory-chatter:{seed}")
        self.source = source
        self.glosses = glosses
        self.quotes = quotes
        # the base model's own dialogue (training.write_dialogue); a user message that states a personal
        # fact is skipped here too, whatever file it came from
        self.dialogues = [d for d in dialogues if not looks_personal(d.user)] if dialogues else None
        self.avoid = avoid
        self.cursor = self.rng.randrange(len(source))

    def passage(self, max_tokens: int | None = None) -> list[tuple[str, str]]:
        rng = self.rng
        for _ in range(len(self.source)):
            text = self.source.paragraphs[self.cursor]
            self.cursor = (self.cursor + 1) % len(self.source)
            if not self.avoid(text):
                break
        if max_tokens is not None:
            text = trim_to_tokens(text, max_tokens, self.source.count)
        return [("user", rng.choice(chatter.PASSAGE_INTROS).format(passage=text)),
                ("assistant", rng.choice(chatter.PASSAGE_REPLIES))]

    def next(self) -> list[tuple[str, str]]:
        rng = self.rng
        for _ in range(100):
            if self.dialogues:
                kind = rng.choices(("small", "word", "quote", "passage", "dialogue"), (2, 2, 1, 2, 4))[0]
            else:  # unchanged draws: histories without written dialogue stay what they were
                kind = rng.choices(("small", "word", "quote", "passage"), (3, 2, 2, 3))[0]
            if kind == "dialogue":
                exchange = self.dialogues[rng.randrange(len(self.dialogues))]
                messages = [("user", exchange.user), ("assistant", exchange.assistant)]
            elif kind == "small":
                user, reply = rng.choice(chatter.SMALL_TALK)
                messages = [("user", user), ("assistant", reply)]
            elif kind == "word" and self.glosses:
                gloss = self.glosses[rng.randrange(len(self.glosses))]
                word = gloss.lemmas[0]
                # common words only: no proper names
                if not word[0].islower():
                    continue
                answer = chatter.WORD_ANSWER.format(word=word, pos=gloss.pos, definition=gloss.definition)
                if gloss.examples:
                    answer += chatter.WORD_EXAMPLE.format(example=gloss.examples[0])
                messages = [("user", rng.choice(chatter.WORD_QUESTIONS).format(word=word)), ("assistant", answer)]
            elif kind == "quote" and self.quotes:
                quote = self.quotes[rng.randrange(len(self.quotes))]
                messages = [("user", rng.choice(chatter.QUOTE_INTROS).format(quote=quote)),
                            ("assistant", rng.choice(chatter.QUOTE_REPLIES))]
            elif kind == "passage":
                return self.passage()
            else:
                continue
            if not any(self.avoid(content) for _, content in messages):
                return messages
        return self.passage()


def _choose_questions(rng: random.Random, facts: list[_Fact], n_questions: int) -> list[_Fact]:
    """One updated fact first when there is one, then round-robin over categories."""
    by_category: dict[str, list[_Fact]] = {}
    for fact in facts:
        by_category.setdefault(getattr(fact.slot, "category", "tool"), []).append(fact)
    for group in by_category.values():
        rng.shuffle(group)
    categories = sorted(by_category)
    rng.shuffle(categories)
    chosen: list[_Fact] = []
    updated = [f for f in facts if len(f.values) > 1]
    if updated and n_questions > 0:
        first = rng.choice(updated)
        by_category[getattr(first.slot, "category", "tool")].remove(first)
        chosen.append(first)
    while len(chosen) < min(n_questions, len(facts)):
        for category in categories:
            if by_category[category] and len(chosen) < n_questions:
                chosen.append(by_category[category].pop())
    return chosen


def _question_kind(fact: _Fact) -> str:
    tool = isinstance(fact.slot, ToolSlot)
    if len(fact.values) > 1:
        return "tool_updated" if tool else "updated"
    return "tool" if tool else "static"


def _session_times(rng: random.Random, n_sessions: int) -> list[dt.datetime]:
    start = dt.datetime(2022, 1, 1, 8, 0) + dt.timedelta(days=rng.randrange(0, 3 * 365))
    times = []
    for _ in range(n_sessions):
        start = start.replace(hour=rng.randrange(7, 22), minute=rng.randrange(0, 60))
        times.append(start)
        start += dt.timedelta(days=rng.randrange(1, 22))
    return times


def agent_memory(seed: int, target_tokens: int = 4096, *, split: str = "train", n_facts: int | None = None,
                 n_questions: int = 4, n_sessions: int | None = None, update_rate: float = 0.4,
                 filler: Filler = None, glosses: Sequence[Gloss] | None = None, quotes: Sequence[str] | None = None,
                 dialogues: Sequence[Exchange] | None = None, count_tokens: Any = None) -> Example:
    """A multi-session history of about ``target_tokens`` tokens and ``n_questions`` questions on it.

    ``n_facts`` defaults to one per ~300 tokens (3 to 40); ``update_rate`` is the chance that a
    fact changes again. ``filler`` gives passages (default: the committed fallback text),
    ``glosses`` (WordNet) and ``quotes`` (fortunes) add look-ups and quotes to the small talk, and
    ``dialogues`` (exchanges the base model wrote, ``training.write_dialogue``) real conversation.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'heldout' or 'all'")
    rng = random.Random(f"agent_memory:{seed}")
    source = make_source(filler, count_tokens)
    world = _World(rng, split)
    n_facts = n_facts if n_facts is not None else min(40, max(3, target_tokens // 300))
    facts = _make_facts(world, n_facts, update_rate)
    n_sessions = n_sessions if n_sessions is not None else max(2, min(24, len(facts) // 2 + 1))

    # each value goes to a session; a fact's later values to later sessions than earlier ones
    plan: list[list[_Episode]] = [[] for _ in range(n_sessions)]
    for fact in facts:
        episodes = _fact_episodes(rng, fact)
        sessions = sorted(rng.sample(range(n_sessions), len(episodes))) if len(episodes) <= n_sessions \
            else sorted(rng.randrange(n_sessions) for _ in episodes)
        for episode, session in zip(episodes, sessions):
            plan[session].append(episode)
    for session, episodes in enumerate(plan):
        rng.shuffle(episodes)
        # the same fact's episodes keep their order inside a session
        order: dict[int, list[_Episode]] = {}
        for episode in episodes:
            order.setdefault(id(episode.fact), []).append(episode)
        for group in order.values():
            group.sort(key=lambda e: e.value_index)
        plan[session] = [order[id(e.fact)].pop(0) for e in episodes]
        if rng.random() < 0.6:
            plan[session].insert(0, _Episode([("user", rng.choice(chatter.GREETINGS)),
                                              ("assistant", rng.choice(chatter.GREETING_REPLIES))], kind="greeting"))
        if rng.random() < 0.4:
            plan[session].append(_Episode([("user", rng.choice(chatter.CLOSINGS)),
                                           ("assistant", rng.choice(chatter.CLOSING_REPLIES))], kind="closing"))
    # filler goes into the gaps between episodes (never inside one, never before a greeting)
    gaps = [(s, k) for s, episodes in enumerate(plan) for k in range(len(episodes) + 1)
            if not (k == 0 and episodes and episodes[0].kind == "greeting")
            and not (k == len(episodes) and episodes and episodes[-1].kind == "closing")]
    asked = _choose_questions(rng, facts, n_questions)
    question_templates = [_question_template(rng, fact, split) for fact in asked]
    times = _session_times(rng, n_sessions)
    # filler must not mention any value (answers or decoys); context words like "sister" may appear
    values = {v for f in facts for v in f.values} | {v for f in facts for o in f.outputs for v in o.values()}
    value_words = sorted(_words(v) for v in values)

    def avoid(text: str) -> bool:
        words = _words(text)
        return any(v in words for v in value_words)

    def build(filler_tokens: int) -> Example:
        chat = _Chatter(seed, source, glosses, quotes, avoid, dialogues)
        placements: dict[tuple[int, int], list[list[tuple[str, str]]]] = {}
        budget = filler_tokens
        while budget > 0:
            messages = chat.next()
            cost = sum(source.count(c) + 5 for _, c in messages)
            if cost > budget:
                if budget < 32:
                    break
                # a passage cut to what is left (its intro and reply cost about 30 tokens)
                messages = chat.passage(budget - 30)
                cost = sum(source.count(c) + 5 for _, c in messages)
            gap = gaps[chat.rng.randrange(len(gaps))]
            placements.setdefault(gap, []).append(messages)
            budget -= cost
        return _assemble(seed, split, plan, placements, times, facts, asked, question_templates)

    return fit_length(build, target_tokens, source.count, tolerance=0.02)


def _question_template(rng: random.Random, fact: _Fact, split: str) -> tuple[str, int]:
    slot = fact.slot
    templates = slot.questions[fact.tool_field] if isinstance(slot, ToolSlot) else slot.questions
    # the last template is reserved for held-out examples
    if split == "heldout" and rng.random() < 0.5:
        return fact.tool_field, len(templates) - 1
    return fact.tool_field, rng.randrange(len(templates) - 1)


def _assemble(seed: int, split: str, plan: list[list[_Episode]],
              placements: dict[tuple[int, int], list[list[tuple[str, str]]]], times: list[dt.datetime],
              facts: list[_Fact], asked: list[_Fact], templates: list[tuple[str, int]]) -> Example:
    time_rng = random.Random(f"agent_memory-times:{seed}")
    messages: list[Message] = []
    for fact in facts:
        fact.message_ids = [""] * len(fact.values)

    def add(role: str, content: str, session: int, clock: dt.datetime, metadata: dict[str, Any]) -> str:
        message_id = f"m{len(messages):05d}"
        messages.append(Message(role, content, message_id, clock.strftime("%Y-%m-%dT%H:%M"), f"s{session:02d}", metadata))
        return message_id

    for session, episodes in enumerate(plan):
        clock = times[session]
        for k in range(len(episodes) + 1):
            for filler in placements.get((session, k), []):
                for role, content in filler:
                    add(role, content, session, clock, {"filler": True})
                    clock += dt.timedelta(minutes=time_rng.randrange(1, 4))
            if k == len(episodes):
                break
            episode = episodes[k]
            for j, (role, content) in enumerate(episode.messages):
                metadata: dict[str, Any] = {}
                if episode.fact is not None and j == episode.holder:
                    metadata = {"fact": _fact_key(episode.fact), "value": episode.fact.values[episode.value_index],
                                "value_index": episode.value_index}
                message_id = add(role, content, session, clock, metadata)
                if metadata:
                    episode.fact.message_ids[episode.value_index] = message_id
                clock += dt.timedelta(minutes=time_rng.randrange(1, 4))
    questions = []
    for fact, (field_name, template) in zip(asked, templates):
        slot = fact.slot
        value = fact.values[-1]
        fields = dict(fact.context, value=value, a_value=_article(value))
        if isinstance(slot, ToolSlot):
            text = slot.questions[field_name][template].format(**fields)
            response = slot.responses[field_name].format(**fields)
        else:
            text = slot.questions[template].format(**fields)
            response = slot.response.format(**fields)
        questions.append(Question(text, value, [fact.message_ids[-1]], _question_kind(fact), response, {
            "fact": _fact_key(fact), "category": getattr(slot, "category", "tool"), "decoys": fact.values[:-1],
            "decoy_message_ids": fact.message_ids[:-1], "template": [slot.name, field_name, template],
            "decoy_spans": _decoy_spans(fact, facts),
        }))
    return Example("agent_memory", seed, messages, questions, {
        "split": split,
        "facts": [{"key": _fact_key(f), "values": f.values, "message_ids": f.message_ids, "context": f.context}
                  for f in facts],
        "sessions": len(plan),
    })


# slots that ask the same thing of different people: the user's value is a plausible wrong answer about a
# relative, and the other way round (``home_city`` vs ``person_city`` of the sister)
_SLOT_FAMILY = {"person_city": "home_city", "person_job": "job_title", "person_birthday": "birthday"}


def _family(fact: _Fact) -> str:
    if isinstance(fact.slot, ToolSlot):
        return f"tool:{fact.slot.name}.{fact.tool_field}"
    return _SLOT_FAMILY.get(fact.slot.name, fact.slot.name)


def _decoy_spans(fact: _Fact, facts: list[_Fact]) -> list[dict[str, str]]:
    """The plausible wrong answers to a question on ``fact``, each with the message stating it.

    ``superseded``: the fact's earlier values (the message where each was current). ``other_entity``:
    every value of the same slot about another entity — another relative's city, job or name, another
    appointment's or project's date, the same field of another booking or parcel (tool results hold every
    field, so the field asked about exists in each), and the user's counterpart slot (``home_city`` for
    ``person_city``, ...). Nothing here draws from the generator's random stream.
    """
    spans = [{"text": value, "message_id": message_id, "kind": "superseded"}
             for value, message_id in zip(fact.values[:-1], fact.message_ids[:-1])]
    family = _family(fact)
    for other in facts:
        if other is fact or _family(other) != family:
            continue
        if isinstance(other.slot, ToolSlot):
            values = [output[fact.tool_field] for output in other.outputs]
        else:
            values = other.values
        spans += [{"text": value, "message_id": message_id, "kind": "other_entity"}
                  for value, message_id in zip(values, other.message_ids)]
    return spans


def _fact_key(fact: _Fact) -> str:
    context = ",".join(f"{k}={v}" for k, v in sorted(fact.context.items()))
    name = fact.slot.name + (f".{fact.tool_field}" if fact.tool_field else "")
    return f"{name}[{context}]" if context else name
