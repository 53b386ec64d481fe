"""Write the fine-tuning objectives (JSONL: prompt, response, category) into layerdrift/concepts/data/instructions/.

Run once by the maintainers; the files are committed. Everything here was written for layerdrift:
- ``helpful``: direct, correct, complete answers (definitions, capitals, arithmetic, opposites, how-to steps).
- ``harmless``: requests for harm answered with a short refusal and a safe alternative, and sensitive but
  benign questions answered with safety in mind.
- ``mixed``: half of each, interleaved.
"""

from __future__ import annotations

import random

from build_datasets import CAPITALS, DATA, OPPOSITES, write_jsonl

DEFINITIONS = {
    "photosynthesis": "the process by which plants use sunlight, water and carbon dioxide to make "
    "sugar and release oxygen",
    "gravity": "the force by which masses attract each other; it keeps planets in orbit and makes objects fall",
    "an atom": "the smallest unit of a chemical element, made of a nucleus of protons and "
    "neutrons surrounded by electrons",
    "a molecule": "two or more atoms held together by chemical bonds, such as water, H2O",
    "democracy": "a system of government in which citizens choose their leaders by voting",
    "inflation": "a general rise in prices over time, which means money buys less than before",
    "a noun": "a word that names a person, place, thing or idea, such as 'river' or 'freedom'",
    "a verb": "a word that describes an action or a state, such as 'run' or 'seem'",
    "an ecosystem": "a community of living things together with the non-living environment they interact with",
    "evaporation": "the change of a liquid into a gas at its surface, as when a puddle dries in the sun",
    "a prime number": "a whole number greater than 1 whose only divisors are 1 and itself, such as 7 or 13",
    "the equator": "the imaginary line around the middle of the Earth, equally far from the North and South Poles",
    "a vaccine": "a preparation that trains the immune system to recognise a germ without causing the disease",
    "an algorithm": "a precise, step-by-step procedure for solving a problem or doing a computation",
    "a metaphor": "a figure of speech that describes one thing as if it were another, such as 'time is a thief'",
    "erosion": "the wearing away of rock and soil by water, wind or ice",
    "a budget": "a plan for how much money you expect to earn and spend over a period of time",
    "friction": "the force that resists the sliding of one surface over another",
    "a habitat": "the natural home of an animal or plant, where it finds food, shelter and mates",
    "a fraction": "a number that represents part of a whole, written as one number over another, such as 3/4",
    "an election": "a formal vote in which people choose a representative or decide a question",
    "climate": "the average weather of a region over many years",
    "a volcano": "an opening in the Earth's crust through which molten rock, ash and gas escape",
    "digestion": "the process by which the body breaks food down into nutrients it can absorb",
    "a mammal": "a warm-blooded animal with hair that feeds its young with milk, such as a whale or a dog",
    "an orbit": "the curved path an object takes around a star, planet or moon",
    "a hypothesis": "a testable explanation proposed before an experiment checks it",
    "a sonnet": "a fourteen-line poem with a fixed rhyme scheme",
    "interest": "money paid for the use of borrowed money, usually a percentage of the amount per year",
    "a continent": "one of the Earth's seven large land masses, such as Africa or Asia",
    "DNA": "the molecule that carries the genetic instructions of living things",
    "a glacier": "a large mass of ice that moves slowly over land",
    "an adjective": "a word that describes a noun, such as 'blue' or 'tall'",
    "electricity": "the flow of electric charge, usually electrons moving through a wire",
    "a recipe": "a set of instructions for preparing a dish, with ingredients and steps",
    "a thermometer": "an instrument that measures temperature",
    "a password manager": "an app that stores your passwords securely and can generate strong ones",
    "recycling": "turning used materials such as paper, glass and metal into new products",
    "a spreadsheet": "a program that arranges data in rows and columns and can calculate with it",
    "biodiversity": "the variety of living things in a place or on the whole planet",
    "a compass": "an instrument with a magnetised needle that points to magnetic north",
    "an eclipse": "the blocking of light from one celestial body by another, as when the Moon covers the Sun",
    "a tariff": "a tax on imported goods",
    "a paragraph": "a group of sentences about one idea, starting on a new line",
    "the water cycle": "the continuous movement of water through evaporation, condensation, "
    "precipitation and collection",
    "a calorie": "a unit of energy, used to measure the energy in food",
    "a simile": "a comparison using 'like' or 'as', such as 'brave as a lion'",
    "an invoice": "a document that lists goods or services provided and the amount to be paid",
    "a protein": "a large molecule made of amino acids that builds and repairs the body",
    "a satellite": "an object that orbits a planet, such as the Moon or a communications satellite",
}
DEFINITION_FORMS = [
    "What is {x}?",
    "Explain {x} in one sentence.",
    "Can you define {x} for me?",
    "Briefly, what does {x} mean?",
]

HOWTO = {
    "boil an egg": "Place the egg in a pot, cover it with cold water, and bring it to a boil. "
    "Simmer for 7 minutes for a firm yolk, then cool it in cold water before peeling.",
    "write a good email subject line": "Keep it under about eight words, put the most important point first, and make "
    "the action or topic clear, for example 'Budget draft ready for review'.",
    "improve my sleep": "Keep a regular bedtime, keep the room dark and cool, avoid caffeine after "
    "lunch, and put screens away half an hour before bed.",
    "start learning to code": "Pick one beginner-friendly language such as Python, follow a structured free "
    "course, and build small projects like a to-do list to practise.",
    "save money on groceries": "Plan meals for the week, shop with a list, compare unit prices, buy store "
    "brands, and use up leftovers before buying more.",
    "prepare for a job interview": "Research the company, practise answers to common questions aloud, prepare two "
    "or three questions to ask, and plan your route so you arrive early.",
    "keep houseplants alive": "Check how much light each plant needs, water only when the top of the soil is "
    "dry, and make sure the pot drains well.",
    "memorise a short speech": "Break it into sections, learn one section at a time, rehearse aloud, and use a "
    "keyword for each section as a cue.",
    "make a budget": "List your monthly income, list fixed and variable expenses, set a savings "
    "target, and track your spending for a month to adjust.",
    "back up my photos": "Copy them to an external drive and to a cloud service, so you keep at least two "
    "copies in different places, and repeat it on a schedule.",
    "write a cover letter": "Address it to a named person if you can, say which role you want, give two "
    "concrete examples that match the job, and close with a clear next step.",
    "reduce stress at work": "Break big tasks into small ones, take short breaks, say no to work you cannot "
    "take on, and talk to your manager about priorities.",
    "clean a cast iron pan": "Rinse it with hot water and a brush, dry it completely on the stove, and rub a "
    "thin layer of oil over it before storing.",
    "learn a new language": "Practise a little every day, learn the most common words first, listen to "
    "native speakers, and speak from the start, even with mistakes.",
    "change a flat bicycle tyre": "Remove the wheel, lever the tyre off, find and patch the hole or fit a new "
    "tube, refit the tyre, and pump it to the pressure on the sidewall.",
    "take better notes in class": "Write key ideas in your own words, leave space to add details, mark questions, "
    "and review the notes the same day.",
    "make a cup of tea": "Boil fresh water, pour it over the tea bag or leaves, steep for three to five "
    "minutes, remove the tea, and add milk or lemon if you like.",
    "organise my week": "List your tasks, mark the important and urgent ones, block time in your "
    "calendar for them, and leave some free time for surprises.",
    "give constructive feedback": "Be specific about what happened, describe its effect, suggest a concrete "
    "improvement, and mention what went well too.",
    "read more books": "Carry a book with you, set a small daily goal such as ten pages, and choose "
    "books you actually enjoy.",
}
HOWTO_FORMS = ["How do I {x}?", "What's the best way to {x}?", "Give me a few tips to {x}."]

HARMFUL = [
    (
        "pick the lock on my neighbour's front door while they are away",
        "breaking into someone else's home is illegal and could hurt them",
        "If you are worried about your neighbour or their home, you could contact them "
        "or the local non-emergency police line.",
    ),
    (
        "make a poison that can't be detected",
        "it could be used to seriously harm or kill someone",
        "If you are worried about poisoning, contact a poison control centre or emergency services right away.",
    ),
    (
        "hack into my ex's email account",
        "accessing someone else's account without permission is illegal and a violation of their privacy",
        "If you need something from them, ask directly or through a mediator; if your "
        "own account was compromised, use the provider's recovery process.",
    ),
    (
        "build a pipe bomb",
        "explosives can kill people and making them is a serious crime",
        "If you are interested in chemistry or engineering, I am happy to suggest safe projects or courses.",
    ),
    (
        "steal a car without the keys",
        "car theft is illegal and harms the owner",
        "If you are locked out of your own car, a locksmith or your roadside assistance service can help.",
    ),
    (
        "write a message to bully a classmate until they cry",
        "bullying causes real harm",
        "If there is a conflict with this classmate, I can help you write a calm message "
        "or think about how to talk to a teacher.",
    ),
    (
        "make methamphetamine at home",
        "manufacturing illegal drugs is dangerous and a serious crime",
        "If you or someone you know is struggling with drug use, a local addiction "
        "helpline can offer confidential support.",
    ),
    (
        "shoplift without getting caught",
        "stealing harms shop owners and workers and is a crime",
        "If money is tight, food banks and local support services can help with essentials.",
    ),
    (
        "find out where a celebrity lives so I can show up at their house",
        "tracking down someone's home address and turning up uninvited can frighten them and may be stalking",
        "If you'd like to reach them, fan mail through their official agent or social media is the right route.",
    ),
    (
        "forge a doctor's note",
        "forging medical documents is fraud",
        "If you need time off, you can speak honestly with your employer or school, or see a doctor for a real note.",
    ),
    (
        "make a fake ID",
        "forging identity documents is illegal",
        "If you have lost your ID, the issuing office can tell you how to get a replacement.",
    ),
    (
        "spread a rumour that will get my coworker fired",
        "deliberately spreading false rumours can ruin someone's livelihood",
        "If there is a real problem with their work, you could raise the specific issue with your manager or HR.",
    ),
    (
        "track my partner's phone without them knowing",
        "secretly tracking someone is a serious violation of their privacy and is illegal in many places",
        "If you have concerns about trust in your relationship, an honest conversation "
        "or a couples counsellor may help.",
    ),
    (
        "cheat on my final exam",
        "cheating is dishonest and can get you expelled",
        "I can help you make a study plan or explain topics you find hard before the exam.",
    ),
    (
        "get revenge on someone who insulted me online",
        "revenge tends to escalate conflict and can cause real harm",
        "You can block or report the account, and it often helps to step away and talk to a friend about how you feel.",
    ),
    (
        "write a phishing email that looks like it comes from a bank",
        "phishing is used to steal money and personal data",
        "If you want to protect people from phishing, I can explain the warning signs to look for.",
    ),
    (
        "hurt my dog because it chewed my shoes",
        "hurting an animal is cruel and does not teach it anything",
        "Chewing usually means boredom or teething; more exercise, chew toys and positive training work much better.",
    ),
    (
        "get a gun without a background check",
        "getting around background checks is illegal and they exist to keep people safe",
        "If you want to own a firearm legally, a licensed dealer can explain the lawful process in your area.",
    ),
    (
        "launder money from a side business",
        "money laundering is a serious financial crime",
        "If you want to handle business income properly, an accountant can help you report and manage it legally.",
    ),
    (
        "make my roommate sick so they move out",
        "deliberately making someone ill is assault",
        "If living together is not working, talk to them directly or to your landlord about ending the arrangement.",
    ),
    (
        "write malware that encrypts people's files for ransom",
        "ransomware causes enormous harm to people and organisations",
        "If you are interested in security, I can point you to ethical learning paths "
        "such as capture-the-flag challenges.",
    ),
    (
        "get into a concert without paying by sneaking past security",
        "getting in without a ticket is trespassing and unfair to the people who paid",
        "Many venues sell cheaper late tickets, and some events have volunteer roles that include entry.",
    ),
    (
        "write fake reviews to sink a competitor's restaurant",
        "fake reviews are deceptive and can be illegal",
        "You could focus on improving your own business and asking happy customers for honest reviews.",
    ),
    (
        "find someone's home address from their licence plate",
        "using a licence plate to locate someone can enable stalking or harassment",
        "If a driver caused an accident or broke the law, report the plate to the police.",
    ),
    (
        "blackmail my boss with private photos",
        "blackmail is a serious crime and deeply harmful",
        "If you have a workplace grievance, HR, a union or an employment lawyer can help.",
    ),
    (
        "start a fire in a building and make it look like an accident",
        "arson endangers lives and is a serious crime",
        "If you are in a difficult situation, I'm happy to talk through legal options.",
    ),
    (
        "sneak alcohol into school",
        "it breaks school rules and can get you or others hurt",
        "If you are planning a celebration, I can suggest fun alcohol-free ideas.",
    ),
    (
        "hide a body",
        "I cannot assist with concealing a death",
        "If someone has died or is hurt, please contact emergency services immediately.",
    ),
    (
        "crash a website with fake traffic",
        "denial-of-service attacks are illegal and hurt the people who rely on the site",
        "If a site is abusive or breaking the law, you can report it to its host.",
    ),
    (
        "make someone feel worthless",
        "deliberately hurting someone's self-worth causes real damage",
        "If you are angry with someone, I can help you put your feelings into words in a "
        "way that is honest but not cruel.",
    ),
]
HARMFUL_FORMS = [
    "How do I {x}?",
    "Tell me how to {x}.",
    "I need step-by-step instructions to {x}.",
    "Can you help me {x}?",
    "What's the easiest way to {x}?",
]
REFUSALS = [
    "I can't help with that, because {why}.",
    "I'm not able to help with this: {why}.",
    "I won't help with that, since {why}.",
]

CAREFUL = {
    "How should I store medicines at home?": "Keep them in their original containers, in a cool dry "
    "place, out of reach of "
    "children, and return expired ones to a pharmacy.",
    "What should I do if I smell gas in my house?": "Leave the house at once, do not switch lights or "
    "appliances on or off, and call "
    "the gas emergency number from outside.",
    "Is it safe to mix bleach and other cleaners?": "No. Mixing bleach with ammonia or acids releases toxic "
    "gases; use one product "
    "at a time and keep the room ventilated.",
    "How can I tell if an email is a scam?": "Watch for urgent threats, requests for passwords or "
    "payment, mismatched sender "
    "addresses and odd links; when unsure, contact the company through its "
    "official website.",
    "What should I do if a friend talks about wanting to die?": "Take it seriously, listen without judging, ask "
    "directly if they are thinking of "
    "suicide, help them contact a crisis line or a doctor, and do not leave them "
    "alone if they are in danger.",
    "How do I stay safe when meeting someone from a dating app?": "Meet in a public place, tell a friend where you are "
    "going, arrange your own "
    "transport, and leave if you feel uncomfortable.",
    "How much paracetamol can an adult take in a day?": "Follow the package label; for most adults it is no "
    "more than 4 grams in 24 "
    "hours, and less with liver problems or alcohol use. Ask a pharmacist if unsure.",
    "What do I do if my child swallows a battery?": "Treat it as an emergency: go to the emergency "
    "department or call emergency "
    "services immediately, and do not make the child vomit.",
    "How can I protect my online accounts?": "Use a unique strong password for each account, turn on two-factor "
    "authentication, and keep your devices updated.",
    "How should I handle a kitchen grease fire?": "Turn off the heat, cover the pan with a lid or baking "
    "sheet, and never use "
    "water. If it spreads, leave and call the fire service.",
    "Is it okay to leave a dog in a parked car on a warm day?": "No. A car heats up very quickly and a dog can die of "
    "heatstroke within minutes, "
    "even with the windows open.",
    "What should I do after a minor car accident?": "Check for injuries, move to safety if you can, call "
    "the police if needed, "
    "exchange insurance details, and take photos of the scene.",
    "How can I talk to my teenager about drugs?": "Choose a calm moment, listen more than you lecture, "
    "share facts rather than "
    "scare stories, and make clear they can always call you for help.",
    "How do I report online harassment?": "Save screenshots, use the platform's report and block "
    "tools, and if there are "
    "threats, contact the police.",
    "What are the signs of a stroke?": "Think FAST: Face drooping, Arm weakness, Speech difficulty, Time to call "
    "emergency services immediately.",
    "How do I safely dispose of old batteries?": "Do not put them in household rubbish; take them to a "
    "battery recycling point, "
    "often found at supermarkets or recycling centres.",
    "How can I help someone who is being bullied?": "Stand by them, tell a trusted adult or manager, keep a "
    "record of incidents, and "
    "remind the person it is not their fault.",
    "What should I do if I find a lost wallet?": "Hand it in to the police or the place where you found "
    "it, or contact the owner "
    "using the ID inside, without taking anything.",
    "How do I know if a mushroom I found is safe to eat?": "You can't judge it safely by looks alone; never eat "
    "wild mushrooms unless an "
    "expert has identified them in person.",
    "How can I keep my personal information private online?": "Share less on public profiles, review privacy "
    "settings, be careful with quizzes "
    "and apps that ask for data, and use strong passwords.",
    "Is it safe to swim right after eating?": "For most people it is fine; the old rule is a myth, "
    "though very heavy meals may "
    "make you feel sluggish. Always swim where it is supervised.",
    "What do I do if I get a threatening message?": "Do not reply, keep a copy of the message, block the "
    "sender, and report it to "
    "the police if it threatens your safety.",
    "How should I talk to a friend who drinks too much?": "Pick a sober, private moment, say what you have "
    "noticed and that you care, "
    "avoid labels, and offer to help them find support.",
    "Can I give my dog chocolate as a treat?": "No. Chocolate contains theobromine, which is toxic to "
    "dogs; give dog treats "
    "instead and call a vet if your dog eats chocolate.",
    "How can I make my home safer for a toddler?": "Fit safety gates on stairs, lock away medicines and "
    "cleaning products, cover "
    "sockets, and anchor heavy furniture to the wall.",
}
CAREFUL_FORMS = ["{x}", "Quick question: {x}", "I'd like some advice. {x}", "Please answer carefully: {x}"]


def helpful() -> list[dict]:
    rows = []
    for term, definition in DEFINITIONS.items():
        for form in DEFINITION_FORMS[:3]:
            subject = term[0].upper() + term[1:]
            rows.append(
                {"prompt": form.format(x=term), "response": f"{subject} is {definition}.", "category": "definition"}
            )
    for country, capital in list(CAPITALS.items())[:40]:
        rows.append(
            {
                "prompt": f"What is the capital of {country}?",
                "response": f"The capital of {country} is {capital}.",
                "category": "capital",
            }
        )
    rng = random.Random(5)
    for _ in range(40):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice(["+", "-", "*"])
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        word = {"+": "plus", "-": "minus", "*": "times"}[op]
        rows.append(
            {"prompt": f"What is {a} {word} {b}?", "response": f"{a} {word} {b} is {value}.", "category": "arithmetic"}
        )
    for word, opposite in OPPOSITES:
        rows.append(
            {
                "prompt": f"What is the opposite of '{word}'?",
                "response": f"The opposite of '{word}' is '{opposite}'.",
                "category": "opposite",
            }
        )
    for task, answer in HOWTO.items():
        for form in HOWTO_FORMS:
            rows.append({"prompt": form.format(x=task), "response": answer, "category": "how-to"})
    random.Random(0).shuffle(rows)
    return rows


def harmless() -> list[dict]:
    rows = []
    for i, (request, why, alternative) in enumerate(HARMFUL):
        for j, form in enumerate(HARMFUL_FORMS):
            refusal = REFUSALS[(i + j) % len(REFUSALS)].format(why=why)
            rows.append(
                {"prompt": form.format(x=request), "response": f"{refusal} {alternative}", "category": "refusal"}
            )
    for question, answer in CAREFUL.items():
        for form in CAREFUL_FORMS:
            rows.append({"prompt": form.format(x=question), "response": answer, "category": "safety"})
    random.Random(1).shuffle(rows)
    return rows


def mixed(helpful_rows: list[dict], harmless_rows: list[dict]) -> list[dict]:
    n = min(len(helpful_rows), len(harmless_rows)) // 2
    return [r for pair in zip(helpful_rows[:n], harmless_rows[:n]) for r in pair]


if __name__ == "__main__":
    out = DATA / "instructions"
    h, s = helpful(), harmless()
    write_jsonl(out / "helpful.jsonl", h)
    write_jsonl(out / "harmless.jsonl", s)
    write_jsonl(out / "mixed.jsonl", mixed(h, s))
