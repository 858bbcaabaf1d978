"""Filler text written for this project (Apache-2.0, like the code): haystacks without apt.

Plain descriptive paragraphs on everyday subjects, in a fixed order. Enough for unit tests and CI;
training and evaluation should use the Debian corpora (``corpora.py``).
"""

FALLBACK_PARAGRAPHS = (
    "The morning began with a thin fog over the fields. By nine o'clock the sun had burned most of it "
    "away, and only the low ground by the stream stayed grey and damp. A farmer walked along the hedge "
    "with a dog that stopped at every gate to listen.",
    "Bread is one of the oldest prepared foods. Flour, water, salt and yeast are mixed into a dough, "
    "which is kneaded until it becomes smooth and elastic. The dough rests while the yeast produces gas, "
    "and then it is shaped, left to rise once more, and baked in a hot oven.",
    "The library on the corner keeps its doors open until eight in the evening. Students fill the long "
    "tables near the windows, while older readers prefer the armchairs by the newspaper racks. The "
    "librarian knows most of them by sight and some of them by their favourite authors.",
    "A bicycle chain needs a little care to last. After a wet ride it should be wiped clean, dried, and "
    "given a drop of oil on each link. Too much oil only collects dust, so the extra is wiped away before "
    "the bicycle is put back in the shed.",
    "Winter in the mountains is quiet. Snow muffles the sound of the road, and the village shops close "
    "early. In the evenings the windows glow yellow, and smoke rises straight up from the chimneys when "
    "there is no wind.",
    "Tomatoes grow best in a sunny spot with regular water. The plants are tied to canes as they grow, "
    "and the side shoots that appear between the stem and the leaves are pinched out. By late summer the "
    "fruit turns from green to orange to a deep red.",
    "The train left the station a few minutes late. It crossed the river on an old iron bridge, passed "
    "a row of allotments and a football ground, and then picked up speed through open country. Most of "
    "the passengers read or slept; a child counted cows out loud.",
    "Maps have changed a great deal over the centuries. Early charts were drawn by hand from the reports "
    "of sailors and merchants, and many showed coastlines that did not exist. Modern maps are built from "
    "survey data and satellite images, but they still have to choose what to leave out.",
    "A good soup starts with a slow base. Onions are softened in butter or oil without letting them "
    "brown, then carrots and celery are added. Stock goes in next, followed by whatever vegetables are "
    "in season, and the pot simmers until everything is tender.",
    "The museum's new gallery is devoted to clocks. Some are tall cases of dark wood with painted faces; "
    "others are small brass instruments made for ships. Every hour the room fills with the sound of "
    "dozens of chimes, never quite at the same moment.",
    "Learning a language takes patience more than talent. A few words a day, repeated until they come "
    "without effort, add up over a year. Listening to ordinary conversation helps, even when most of it "
    "is too fast to follow at first.",
    "The harbour was busy at dawn. Fishing boats came in one after another, gulls circling above them, "
    "and the catch was lifted onto the quay in plastic crates. By seven the buyers had made their offers "
    "and the first vans were already on the road.",
    "Most houseplants die from too much water rather than too little. Roots need air as well as "
    "moisture, and soil that stays wet for days begins to rot them. A simple test is to push a finger "
    "into the soil and water only when the top layer feels dry.",
    "The old market hall has a glass roof held up by painted iron columns. On Saturdays it is crowded "
    "with stalls selling cheese, honey, second-hand books and hand-made soap. A man plays the accordion "
    "near the entrance and nods to the people who leave a coin.",
    "Rain had been falling since the afternoon. The gutters overflowed, and the street outside the school "
    "became a shallow river. Parents waited under umbrellas at the gate while the children ran out in "
    "their coats, splashing through every puddle they could find.",
    "Bees visit flowers for nectar and pollen, and in doing so they carry pollen from one flower to the "
    "next. Many fruits and vegetables depend on this. A single hive can hold tens of thousands of bees "
    "in summer, most of them workers that live only a few weeks.",
    "The hotel stood at the end of the promenade, its white paint faded by the salt air. From the dining "
    "room the guests could watch the tide come in across the flat sand. In the off season it was almost "
    "empty, and the staff outnumbered the visitors.",
    "Writing a letter by hand is slower than typing, and perhaps that is its value. The writer has time "
    "to think about each sentence, and the reader can tell that time was spent. Some people keep letters "
    "for decades in boxes at the back of a wardrobe.",
    "The path climbed steadily through a beech wood, then came out onto open hillside covered in heather. "
    "From the top there was a view of three valleys and, on a clear day, the sea. Walkers usually stopped "
    "at the cairn to eat their sandwiches before going down.",
    "Cheese is made by curdling milk, separating the curds from the whey, and pressing the curds into "
    "shape. What happens next decides the flavour: some cheeses are eaten fresh, while others are salted, "
    "washed or left to age in cool cellars for months or years.",
    "The repair shop smelled of solder and old dust. Radios, lamps and a gramophone waited on the shelves "
    "with paper tags tied to their handles. The owner worked at a bench under a bright lamp and never "
    "promised a date, but everything he fixed kept working.",
    "A clear night far from towns shows thousands of stars. After a few minutes the eyes adapt to the "
    "dark and fainter stars appear, along with the pale band of the galaxy. A pair of ordinary binoculars "
    "is enough to see the craters on the moon.",
    "The committee met on the first Tuesday of every month in the back room of the community centre. The "
    "agenda rarely changed: the accounts, the state of the roof, the summer fair and any other business. "
    "Tea was served at half time, with biscuits that nobody admitted to buying.",
    "Running a first marathon is mostly a matter of preparation. Training builds up over several months, "
    "with one long run each week and easier runs in between. On the day itself, the hardest part is "
    "often starting slowly enough to finish well.",
    "Autumn arrived suddenly that year. The leaves on the avenue turned in a single week, first yellow "
    "and then brown, and a strong wind brought most of them down. Children kicked through the piles on "
    "their way to school, and the council sweepers worked from dawn.",
    "Glass is made by melting sand with soda and lime at a very high temperature. While it is hot it can "
    "be blown, pressed or rolled into almost any shape. As it cools slowly in an oven, the stresses inside "
    "it are released, which keeps it from cracking later.",
    "The bakery opened at six, and by half past there was already a queue. Regulars asked for the same "
    "thing every day without needing to say it. The baker's son carried trays from the back, still hot, "
    "and the smell drifted down the street to the bus stop.",
    "Rivers shape the land they cross. Over thousands of years they cut valleys, carry soil downstream and "
    "build wide plains where they slow down near the sea. A river's course shifts slowly, leaving old "
    "bends behind as quiet ponds and marshes.",
    "The meeting ran over time, as meetings do. Several people spoke at length about a decision that had "
    "already been made, and the chair let them finish. Afterwards, in the corridor, the real questions "
    "were settled in a few minutes by the coffee machine.",
    "Knitting needs only two needles and a ball of wool, yet the patterns it can produce are endless. "
    "Beginners start with a simple scarf, learning to keep their stitches even. Later come cables, lace "
    "and colour work, each with its own small tricks.",
    "The island could be reached only by a small ferry that ran twice a day in good weather. There was "
    "one shop, one pub and a church with a square tower. Most of the houses were empty in winter, and "
    "the lighthouse keeper was said to know everyone's business.",
    "Sleep matters more than most people allow. A regular bedtime, a dark room and no screens for the "
    "last hour all help. Those who sleep well tend to remember more, concentrate better and catch fewer "
    "colds than those who get by on a few hours a night.",
    "The garden had been neglected for years. Brambles covered the old vegetable beds, and a fallen apple "
    "tree lay across the lawn. Over one long summer the new owners cleared it bit by bit, and under the "
    "weeds they found a brick path and a small stone pond.",
    "Chess is played on a board of sixty-four squares. Each side begins with sixteen pieces, and the aim "
    "is to trap the opposing king. The rules can be learned in an afternoon, but players spend their "
    "whole lives improving their understanding of the game.",
    "The storm reached the coast just after midnight. Waves broke over the sea wall and threw stones onto "
    "the road, and a few windows along the front were smashed. By morning the wind had dropped, and "
    "people came out to look at the damage and sweep up the glass.",
    "A well-kept notebook is a kind of memory. Lists, dates, addresses and half-formed ideas all go in, "
    "and months later they can be found again. Some people number the pages and keep an index at the "
    "back, which makes the notebook easier to search.",
    "Pottery begins with clay dug from the ground and cleaned of stones. It is shaped on a wheel or by "
    "hand, dried slowly, and fired in a kiln. A glaze applied before a second firing gives the surface "
    "its colour and makes the pot hold water.",
    "The concert hall was nearly full. The orchestra tuned for a minute, the lights dimmed, and the "
    "conductor walked on to polite applause. For the next hour hardly anyone moved, except for a man in "
    "the front row who kept time with his programme.",
    "Owls hunt mostly at night. Their large eyes gather what little light there is, and their hearing is "
    "so sharp that some can catch a mouse under snow. Soft edges on their feathers let them fly almost "
    "without a sound.",
    "The neighbours held a street party for the anniversary. Tables were carried out of every house and "
    "set end to end down the middle of the road. There was far too much food, a radio played old songs, "
    "and the last people went home after dark.",
)
