"""Conversation filler for agent histories: small talk, word look-ups, quotes and shared passages.

Everything here is written for this project (Apache-2.0) except what the corpora supply
(WordNet glosses, fortunes, book passages). None of it states a fact about the user, so it never
competes with the facts the questions ask about.
"""
from __future__ import annotations

SMALL_TALK = (
    ("Morning! I slept badly last night.", "Sorry to hear that. An early night today might help."),
    ("It's been raining all day here.", "A good day to stay in with something warm to drink, then."),
    ("Busy day ahead, wish me luck.", "Good luck! Take it one thing at a time."),
    ("I finally cleared my inbox.", "That's a great feeling. Well done!"),
    ("Do you ever get tired of my questions?", "Not at all. Ask as many as you like."),
    ("I went for a long walk at lunch.", "Nice, a walk in the middle of the day really clears the head."),
    ("The neighbours are having building work done again.", "That sounds noisy. Headphones might be your friend today."),
    ("I forgot my umbrella and got soaked.", "Oh no. I hope you managed to dry off."),
    ("Can you believe it's already the end of the month?", "Time really does fly. Anything planned for the weekend?"),
    ("Just had the best nap.", "Naps are underrated. Glad you feel refreshed."),
    ("I think I'm coming down with a cold.", "Take it easy and drink plenty of water. Feel better soon."),
    ("My train was cancelled this morning.", "That's frustrating. Did you manage to get in eventually?"),
    ("I'm trying to drink more water these days.", "Good habit. Keeping a bottle on the desk helps."),
    ("The sunset tonight was amazing.", "Lovely. Those evenings make up for a lot."),
    ("I can't decide what to cook tonight.", "Something simple with what's already in the fridge is usually the answer."),
    ("Work was quiet today for once.", "Enjoy it while it lasts!"),
    ("I reorganised my desk drawers.", "Very satisfying. Everything has a place now?"),
    ("Any tips for staying focused in the afternoon?", "Short breaks, a glass of water and a walk around the room can help."),
    ("I watched a documentary about deep sea creatures.", "They're fascinating. Some of them look like they're from another planet."),
    ("My phone battery died halfway through the day.", "Annoying. A small power bank might be worth carrying."),
    ("I'm so ready for the weekend.", "Almost there! Anything fun planned?"),
    ("Someone left cake in the office kitchen.", "The best kind of surprise."),
    ("I tried a new route to work today.", "Was it any quicker?"),
    ("I've been meaning to call my old school friends.", "It's always worth it. They'll be glad to hear from you."),
    ("Feeling a bit unmotivated today.", "That happens. Maybe start with one small task and build from there."),
    ("It's surprisingly warm for this time of year.", "Make the most of it while it lasts."),
    ("I finished a really long book last night.", "Congratulations! It's a good feeling to reach the last page."),
    ("My plants are finally growing new leaves.", "That's a good sign. They must like their spot."),
    ("I keep losing my keys.", "A hook by the door can save a lot of searching."),
    ("Long meeting this morning, my brain is fried.", "Take a proper break before the next thing if you can."),
    ("I'm thinking about rearranging the living room.", "A change of layout can make a room feel new."),
    ("The power went out for an hour today.", "Hope nothing important was lost. Everything back to normal now?"),
    ("I signed up for a cooking class.", "That sounds fun. You'll have to tell me how it goes."),
    ("I can hear birds outside my window.", "A nice way to start the day."),
    ("Do you have a favourite season?", "I don't experience seasons, but I hear autumn has a lot of fans."),
    ("I stayed up too late watching a series.", "One more episode is a dangerous phrase."),
    ("Tidied the whole flat today.", "Impressive! Time to enjoy it."),
    ("Just got back from the shops.", "Did you find everything you needed?"),
    ("I'm practising being more patient.", "That's a worthwhile goal. Small steps count."),
    ("Had a lovely chat with a stranger at the bus stop.", "Those little conversations can brighten a whole day."),
    ("I think I need a holiday.", "Maybe start looking at some dates. Even a long weekend helps."),
    ("Note to self: buy more coffee filters.", "Want me to remind you later?"),
)

GREETINGS = (
    "Hi again!", "Hello!", "Hey, it's me.", "Good morning!", "Good evening.", "Hi there.", "Hey!",
    "Back again with a few things.", "Hello, quick check-in.",
)
GREETING_REPLIES = (
    "Hello! How can I help today?", "Hi! Good to hear from you.", "Welcome back. What's on your mind?",
    "Hey! What can I do for you?", "Hi, nice to see you again.",
)
CLOSINGS = ("Thanks, that's all for now.", "Great, talk later!", "Bye for now.", "That's everything, thanks.",
            "Cheers, speak soon.")
CLOSING_REPLIES = ("Anytime. Talk soon!", "Bye! Have a good one.", "You're welcome. See you next time.",
                   "Happy to help. Take care!")

ACKS = (
    "Noted!", "Thanks, I'll remember that.", "Good to know.", "Got it.", "Thanks for telling me.",
    "Understood, I've made a note.", "Nice! Noted.", "I'll keep that in mind.", "Lovely, thanks for sharing.",
    "Okay, saved to memory.",
)
UPDATE_ACKS = (
    "Thanks for the update.", "Got it, I've updated my notes.", "Ah, a change. Noted.",
    "Okay, I'll go with the new one from now on.", "Understood, my notes are up to date.",
    "Thanks for letting me know it changed.",
)

WORD_QUESTIONS = (
    "What does \"{word}\" mean?", "Quick question: what's the meaning of \"{word}\"?", "Can you define \"{word}\"?",
    "I came across the word \"{word}\". What does it mean?",
)
WORD_ANSWER = "\"{word}\" ({pos}) means {definition}."
WORD_EXAMPLE = " For example: \"{example}\"."

QUOTE_INTROS = (
    "Here's a quote I came across:\n\n{quote}", "This made me smile:\n\n{quote}", "Saw this today:\n\n{quote}",
    "What do you think of this one?\n\n{quote}",
)
QUOTE_REPLIES = ("Ha, I like that one.", "That's a thoughtful one.", "Very true, in its way.",
                 "Thanks for sharing, that's a good one.", "I can see why it stuck with you.")

PASSAGE_INTROS = (
    "I'm reading this at the moment:\n\n{passage}", "Here's the passage I mentioned:\n\n{passage}",
    "Can you keep this passage for me?\n\n{passage}", "This bit caught my attention:\n\n{passage}",
    "Sharing a passage from what I'm reading:\n\n{passage}",
)
PASSAGE_REPLIES = ("Thanks for sharing. It's a vivid passage.", "That's well written.",
                   "Interesting. I'll keep it with your notes.", "Nice passage, thanks.",
                   "I can see why you liked it.")
