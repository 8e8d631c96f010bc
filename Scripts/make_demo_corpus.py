"""Writes the demo corpus that the README's training command uses: Examples/demo-corpus/{train,validation}.txt.

Plain English sentences drawn from a small, fixed world with regularities a small model can learn in a few
minutes on a CPU: who lives where and owns what, the order of days, months and numbers, small sums, and a simple
grammar. The same seed gives the same files. Run: python3 Scripts/make_demo_corpus.py
"""
import os
import random

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
PEOPLE = ["alice", "bob", "carol", "david", "emma", "frank", "grace", "henry", "irene", "jack", "karen", "leo",
          "maria", "nathan", "olivia", "peter", "quinn", "rosa", "samuel", "tina", "victor", "wendy", "xavier", "yara"]
CITIES = ["paris", "london", "tokyo", "madrid", "berlin", "rome", "cairo", "lima", "oslo", "dublin", "vienna",
          "lisbon"]
PETS = ["cat", "dog", "parrot", "rabbit", "horse", "goldfish", "turtle", "hamster"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
JOBS = ["teacher", "baker", "doctor", "pilot", "painter", "farmer", "singer", "builder"]
ADJECTIVES = ["small", "big", "old", "young", "happy", "quiet", "clever", "lazy"]
ANIMALS = ["dog", "cat", "bird", "fox", "mouse", "horse", "cow", "duck"]
VERBS = ["chased", "watched", "followed", "found", "liked", "saw"]
PLACES = ["in the garden", "near the river", "on the hill", "by the house", "under the tree", "in the park"]


def world(rng):
    """Each person's fixed facts."""
    return {p: dict(city=rng.choice(CITIES), pet=rng.choice(PETS), color=rng.choice(COLORS), job=rng.choice(JOBS))
            for p in PEOPLE}


def sentence(rng, facts):
    kind = rng.randrange(8)
    if kind == 0:
        p = rng.choice(PEOPLE)
        f = facts[p]
        return f"{p} lives in {f['city']} and has a {f['pet']} ."
    if kind == 1:
        p = rng.choice(PEOPLE)
        f = facts[p]
        return f"the favourite colour of {p} is {f['color']} , and {p} works as a {f['job']} ."
    if kind == 2:
        start = rng.randrange(len(NUMBERS) - 5)
        n = rng.randrange(4, min(10, len(NUMBERS) - start) + 1)
        return "counting : " + " ".join(NUMBERS[start:start + n]) + " ."
    if kind == 3:
        i = rng.randrange(7)
        return f"after {DAYS[i]} comes {DAYS[(i + 1) % 7]} , and then {DAYS[(i + 2) % 7]} ."
    if kind == 4:
        i = rng.randrange(12)
        return f"the month after {MONTHS[i]} is {MONTHS[(i + 1) % 12]} ."
    if kind == 5:
        a, b = rng.randrange(11), rng.randrange(11)
        return f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]} ."
    if kind == 6:
        p = rng.choice(PEOPLE)
        f = facts[p]
        return f"in {f['city']} , {p} the {f['job']} walks the {f['pet']} every {rng.choice(DAYS)} ."
    return (f"the {rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)} {rng.choice(VERBS)} the "
            f"{rng.choice(COLORS)} {rng.choice(ANIMALS)} {rng.choice(PLACES)} .")


def main():
    rng = random.Random(2026)
    facts = world(rng)
    out = os.path.join(os.path.dirname(__file__), "..", "Examples", "demo-corpus")
    os.makedirs(out, exist_ok=True)
    for name, count in [("train.txt", 15000), ("validation.txt", 500)]:
        with open(os.path.join(out, name), "w") as f:
            for _ in range(count):
                f.write(" ".join(sentence(rng, facts) for _ in range(rng.randrange(1, 4))) + "\n")


if __name__ == "__main__":
    main()
