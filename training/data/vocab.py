"""Word pools for the synthetic tasks, and the train/held-out partition of the open ones.

Open-class pools (people's names, surnames, cities, pet names, company and venue words, NIAH key
words) are split by a stable hash of each item: about a fifth is held out, so a held-out example
names people and places that no training example ever used. Closed-class pools (colours, months,
species, relations, foods, …) are shared: they are the vocabulary of the questions themselves.
"""
from __future__ import annotations

import zlib
from typing import Sequence

__all__ = ["split_pool", "is_heldout", "OPEN_POOLS"]


def is_heldout(item: str) -> bool:
    """The stable partition: an item is held out when its CRC-32 is divisible by 5."""
    return zlib.crc32(item.encode("utf-8")) % 5 == 0


def split_pool(pool: Sequence[str], split: str) -> tuple[str, ...]:
    """The part of an open-class pool a split may use: ``"train"``, ``"heldout"`` or ``"all"``."""
    if split == "all":
        return tuple(pool)
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'heldout' or 'all'")
    want = split == "heldout"
    return tuple(item for item in pool if is_heldout(item) == want)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.strip().splitlines() if line.strip())


FIRST_NAMES = _words("""
Aaliyah Aarav Abdul Abigail Ada Adaeze Adam Adebayo Adele Aditi Adrian Agnes Ahmed Aiko Aisha Akira
Alba Albert Alejandro Alessandro Alexei Alfie Alice Alina Alma Amara Amelia Amir Amos Ana Anders
Andrea Andrei Aneesh Angela Anika Anita Anjali Anton Antonio Anya Arjun Arlo Arnav Astrid Aurora Ayaan
Ayesha Azadeh Barnaby Beatrice Bella Ben Bianca Bilal Bjorn Blessing Bongani Boris Bridget Bruno Callum
Camila Carlos Carmen Caroline Cecilia Cedric Celeste Chen Chiara Chidi Chinedu Chloe Cillian Clara
Colm Connor Cora Cyrus Dalia Damian Dana Daniel Daria Darius Dawit Declan Deepa Delphine Dennis Devi
Diego Dimitri Dina Dominic Dorothy Duncan Ebony Edgar Edith Eduardo Efua Eilidh Elena Eli Elif Elijah
Eliza Elliot Elsa Emeka Emil Emilia Enzo Erik Esme Esther Ethan Eva Evelyn Ewan Ezra Fadi Farah
Farhan Fatima Felix Fern Fiona Finn Florence Francesca Frank Freya Gabriel Gareth Gemma Georgia Gerald
Gideon Gina Giulia Grace Greta Gustav Hamza Hana Hannah Haruto Hassan Hazel Hector Heidi Helena Henrik
Hiroshi Hugo Ibrahim Ida Ifeoma Ilse Imani Imogen Ines Ingrid Irene Iris Isaac Isabel Ismail Ivan Ivy
Jabari Jade Jakob Jamal James Jana Jasper Javier Jaya Jean Jiho Joanna Johan Jonah Jorge Josephine
Joy Julian Juliet Jun Kai Kamala Karan Karim Karin Kasia Kate Kavya Keiko Kenji Kerry Khalid Kiran
Kofi Konstantin Krishna Kwame Lachlan Laila Lars Laura Layla Leah Leila Lena Leo Leon Liam Lila Lina
Linnea Lionel Lorenzo Lucia Luis Luka Lydia Mabel Magnus Mai Malik Manon Marco Margot Maria Marius
Marta Mateo Matilda Maya Mehmet Mei Mia Miguel Mila Milan Mina Miriam Mohammed Moira Nadia Naledi Naomi
Nasser Natasha Nathan Neha Niamh Nico Nikhil Nina Noah Noor Nora Nuno Obi Olga Oliver Olivia Omar Oona
Oscar Otto Owen Pablo Padma Paloma Paolo Parisa Pavel Pedro Penelope Petra Philippa Pia Pierre Pilar
Poppy Priya Quentin Rafael Rahul Rania Ravi Rebecca Reza Rhea Rhys Ricardo Rita Rohan Roisin Rosa
Rosalind Ruby Rui Rupert Ryo Saanvi Sabine Sadia Safiya Sakura Salma Samir Samuel Sana Santiago Sara
Saskia Sean Selin Seren Sergei Shira Simone Sina Sipho Siddharth Sofia Soren Stella Stefan Suki Sunita
Svetlana Tamar Tanvi Tara Tariq Teodor Thabo Thea Theo Tilda Tobias Tomas Tove Uma Ursula Valentina
Vanessa Vera Victor Vikram Viola Vivian Wanjiru Wei Wendell Wilhelmina Willa Xavier Ximena Yara Yasmin
Yusuf Yuki Zainab Zara Zeynep Zoe Zofia
""")

SURNAMES = _words("""
Abara Achebe Adeyemi Ahmadi Alvarez Andersen Antonelli Arslan Asante Bailey Baker Banerjee Barros
Becker Bellini Bennett Bergstrom Bianchi Blackwood Bose Brennan Brooks Caldwell Campbell Cardoso
Carvalho Castillo Chandra Chatterjee Chen Chowdhury Clarke Coleman Costa Cruz Dahl Dasgupta Delgado
Demir Diallo Dubois Duarte Eklund Ellis Esposito Evans Fagerlund Farouk Ferreira Fischer Fitzgerald
Fleming Fontaine Forsberg Fujita Gallagher Garcia Gashi Gomez Gonzaga Grant Gupta Haddad Hakimi Halvorsen
Hansen Harper Hartmann Hayes Henriksen Herrera Hoffmann Horvat Hughes Ibrahim Ivanova Iyer Jablonski
Jansen Jensen Jimenez Johansson Joshi Kader Kamau Kapoor Kaur Keller Kennedy Khan Kim Kowalski Kruger
Kumar Laine Larsen Lebedev Leclerc Lindqvist Lopez Lucas Lund Mahlangu Maier Malik Mancini Marchetti
Marin Markovic Martins Mbeki Mehta Mendes Meyer Mills Mishra Molina Moreau Morris Moreno Mukherjee Murphy
Nakamura Nair Navarro Ndlovu Nguyen Nielsen Novak Nowak Nyberg Obi Odhiambo Okafor Okonkwo Olsen Ortiz
Osei Ozturk Palmer Pandey Park Patel Pereira Perez Petrov Pham Pillai Popescu Quinn Rahman Ramos Rao
Reddy Reyes Ribeiro Richter Rivera Romano Rossi Russo Saito Salazar Santos Sato Schmidt Schneider
Sharma Silva Singh Sokolov Sorensen Suarez Suzuki Svensson Takahashi Tanaka Teixeira Thakur Thompson
Torres Tran Turner Vargas Varma Vasquez Verma Vieira Vogel Volkov Wagner Walsh Weber Wiśniewski Wong
Yamamoto Yilmaz Yoshida Zhang Zimmermann
""")

CITIES = _lines("""
Aarhus
Aberdeen
Accra
Adelaide
Alicante
Amsterdam
Antwerp
Athens
Auckland
Austin
Baltimore
Bangalore
Barcelona
Basel
Belfast
Belgrade
Bergen
Berlin
Bilbao
Birmingham
Bologna
Bordeaux
Boston
Bratislava
Bremen
Brighton
Brisbane
Bristol
Brno
Bruges
Brussels
Bucharest
Budapest
Buenos Aires
Busan
Cairo
Calgary
Cambridge
Cape Town
Cardiff
Chennai
Chicago
Cluj
Cologne
Copenhagen
Cork
Curitiba
Dakar
Dallas
Delft
Denver
Dresden
Dublin
Dundee
Durban
Edinburgh
Eindhoven
Exeter
Florence
Frankfurt
Fukuoka
Galway
Gdansk
Geneva
Genoa
Ghent
Glasgow
Gothenburg
Granada
Graz
Groningen
Guadalajara
Hamburg
Hanoi
Helsinki
Hobart
Hong Kong
Honolulu
Houston
Hyderabad
Innsbruck
Istanbul
Izmir
Jaipur
Jakarta
Johannesburg
Kampala
Kaunas
Kigali
Kingston
Kraków
Kuala Lumpur
Kyoto
Lagos
Lausanne
Leeds
Leiden
Leipzig
Lille
Lima
Linz
Lisbon
Liverpool
Ljubljana
Lodz
London
Los Angeles
Lucerne
Lyon
Madrid
Malaga
Malmö
Manchester
Marrakesh
Marseille
Medellín
Melbourne
Mexico City
Milan
Minneapolis
Montevideo
Montpellier
Montreal
Mumbai
Munich
Nairobi
Nantes
Naples
Newcastle
Nice
Norwich
Nottingham
Oaxaca
Odense
Osaka
Oslo
Ottawa
Oxford
Palermo
Paris
Perth
Philadelphia
Plymouth
Porto
Portland
Prague
Pune
Quebec City
Quito
Reykjavik
Riga
Rome
Rotterdam
Salzburg
San Diego
San Francisco
Santiago
São Paulo
Sapporo
Sarajevo
Seattle
Seoul
Seville
Sheffield
Singapore
Sofia
Split
Stockholm
Strasbourg
Stuttgart
Sydney
Tallinn
Tampere
Tbilisi
Tel Aviv
Thessaloniki
Tokyo
Toronto
Toulouse
Trieste
Trondheim
Turin
Turku
Utrecht
Valencia
Valletta
Vancouver
Venice
Verona
Vienna
Vilnius
Warsaw
Wellington
Winnipeg
Wroclaw
Yokohama
York
Zagreb
Zaragoza
Zurich
""")

PET_NAMES = _words("""
Apollo Archie Bagel Banjo Barley Basil Bean Biscuit Blossom Blue Bonnie Boots Bramble Brie Bubbles
Buster Button Caramel Casper Chai Charlie Cheddar Chester Chickpea Cinnamon Clover Cocoa Coco Comet
Cookie Crumpet Cupcake Daisy Dash Dexter Diesel Dolly Domino Dotty Dumpling Echo Ember Fig Flint Fudge
Gizmo Ginger Goose Gravy Gus Hazelnut Honey Hopper Iggy Indie Jasper Jelly Juniper Kiwi Kobe Laddie
Lentil Lola Loki Lulu Mango Maple Marble Marmalade Meatball Midge Milo Minty Mochi Monty Muffin Mustard
Nacho Nibbles Noodle Nutmeg Olive Onyx Oreo Pancake Paprika Patch Peaches Peanut Pebble Pepper Pickle
Pip Pippin Pixel Plum Poppy Porridge Pretzel Pudding Pumpkin Quince Radish Rascal Ripley Rocket Rolo
Rufus Saffron Sage Scout Shadow Sherbet Skipper Smudge Snowy Socks Sprout Sunny Sushi Taco Tango Toast
Toffee Truffle Tux Waffle Whiskers Wiggles Willow Ziggy Zorro
""")

COMPANY_PREFIXES = _words("""
Acorn Alder Alpine Amber Anchor Apex Arbor Arc Atlas Aurora Beacon Birch Blue Bolt Bright Brook Cedar
Cinder Clear Cobalt Compass Copper Coral Crest Delta Drift Echo Ember Evergreen Falcon Fern Fjord Flint
Forge Granite Harbor Hazel Helix Heron Horizon Iris Iron Juniper Keystone Kite Lantern Larch Linden
Lumen Maple Meridian Mosaic North Oak Onyx Orbit Otter Pebble Pine Pioneer Prism Quarry Quill Raven
Ridge River Saffron Sage Silver Slate Spark Spruce Stone Summit Swift Tandem Thistle Tide Timber Torch
Vale Vantage Willow Wren Zenith
""")

COMPANY_SUFFIXES = _lines("""
Analytics
Architects
Bakery
Biotech
Books
Consulting
Design
Dynamics
Energy
Engineering
Foods
Health
Insurance
Labs
Logistics
Media
Partners
Pharma
Robotics
Software
Studio
Systems
Textiles
Travel
Ventures
""")

VENUE_WORDS = _words("""
Anchor Apricot Artichoke Basil Bay Birch Blackbird Bluebell Bramble Caper Cardamom Chestnut Clove Copper
Cork Crane Cypress Damson Dove Elder Fennel Fig Finch Garnet Ginger Hawthorn Heron Ivy Juniper Kestrel
Lark Laurel Lemon Lime Linden Magpie Mint Mulberry Nettle Nightingale Olive Orchard Oyster Pepper
Pheasant Plum Pomegranate Poppy Quince Robin Rosemary Saffron Sage Sorrel Sparrow Swallow Tamarind
Thyme Truffle Walnut Wren
""")

RESTAURANT_FORMS = ("The {w} Kitchen", "{w} & Co", "Osteria {w}", "The {w} Table", "Café {w}", "{w} Bistro",
                    "The Golden {w}", "{w} House")
HOTEL_FORMS = ("Hotel {w}", "The {w} Inn", "{w} Lodge", "The {w} Hotel", "{w} Suites")

JOBS = _lines("""
accountant
actuary
air traffic controller
anaesthetist
architect
archivist
art teacher
audiologist
baker
barista
bookkeeper
bookseller
brewer
carpenter
chef
chemist
civil engineer
climate scientist
copywriter
court reporter
data analyst
data engineer
dental hygienist
dentist
dietitian
electrician
emergency nurse
estate agent
event planner
fashion designer
film editor
financial adviser
firefighter
florist
food scientist
furniture maker
game designer
gardener
geologist
graphic designer
hairdresser
health visitor
historian
hotel manager
HR manager
illustrator
interior designer
interpreter
journalist
judge
lab technician
landscape architect
lawyer
librarian
lighting technician
locksmith
machinist
marine biologist
market researcher
mechanic
midwife
museum curator
music teacher
nurse
occupational therapist
optician
paramedic
park ranger
pastry chef
pharmacist
photographer
physiotherapist
piano tuner
pilot
plumber
podcast producer
police officer
primary school teacher
product manager
project manager
psychologist
radio presenter
radiographer
recruiter
research scientist
sales manager
school librarian
science teacher
sculptor
social worker
software engineer
sommelier
sound engineer
speech therapist
statistician
structural engineer
surgeon
surveyor
tailor
tax adviser
translator
travel agent
tree surgeon
tutor
UX researcher
veterinarian
video editor
web developer
welder
wine merchant
yoga instructor
youth worker
zookeeper
""")

FOODS = _lines("""
pad thai
ramen
sushi
lasagne
risotto
paella
tacos
dumplings
pho
biryani
falafel
moussaka
goulash
pierogi
shakshuka
carbonara
margherita pizza
fish and chips
bibimbap
jollof rice
butter chicken
chilli con carne
katsu curry
laksa
ratatouille
gnocchi
bao buns
tagine
empanadas
ceviche
fondue
halloumi salad
mushroom stroganoff
shepherd's pie
tom yum soup
green curry
pulled pork
dim sum
arancini
okonomiyaki
enchiladas
poke bowls
gado gado
croque monsieur
spanakopita
jambalaya
kimchi stew
udon
samosas
burritos
gazpacho
minestrone
beef rendang
chana masala
mac and cheese
bouillabaisse
feijoada
massaman curry
khachapuri
borscht
""")

DRINKS = _lines("""
espresso
flat white
oat latte
cappuccino
green tea
matcha
chai
rooibos
peppermint tea
earl grey
hot chocolate
kombucha
lemonade
sparkling water
ginger beer
iced coffee
cold brew
orange juice
apple juice
mango lassi
yerba mate
jasmine tea
oolong
chamomile tea
tomato juice
coconut water
elderflower cordial
barley water
cortado
macchiato
""")

COLOURS = _lines("""
teal
maroon
olive green
mustard yellow
navy blue
burgundy
lavender
coral
turquoise
charcoal grey
emerald green
crimson
lilac
peach
sky blue
forest green
rust orange
plum
ivory
sand
indigo
cobalt blue
mint green
salmon pink
""")

SPORTS = _lines("""
badminton
basketball
bouldering
bowling
climbing
cricket
cycling
fencing
football
golf
handball
hiking
hockey
judo
kayaking
karate
netball
padel
pilates
rowing
rugby
running
sailing
skiing
snowboarding
squash
surfing
swimming
table tennis
tennis
trail running
triathlon
ultimate frisbee
volleyball
water polo
yoga
""")

HOBBIES = _lines("""
birdwatching
bread baking
calligraphy
ceramics
chess
crochet
embroidery
gardening
jigsaw puzzles
knitting
model railways
origami
painting
photography
pottery
quilting
stargazing
woodworking
writing poetry
baking sourdough
foraging
geocaching
rock climbing
salsa dancing
film photography
beekeeping
bookbinding
candle making
astronomy
board games
""")

LANGUAGES = _lines("""
Arabic
Basque
Catalan
Czech
Danish
Dutch
Finnish
French
German
Greek
Hebrew
Hindi
Hungarian
Icelandic
Indonesian
Italian
Japanese
Korean
Mandarin
Norwegian
Persian
Polish
Portuguese
Romanian
Russian
Spanish
Swahili
Swedish
Tagalog
Thai
Turkish
Ukrainian
Urdu
Vietnamese
Welsh
Yoruba
""")

INSTRUMENTS = _lines("""
accordion
banjo
bass guitar
bassoon
cello
clarinet
double bass
drums
flute
French horn
guitar
harp
harmonica
mandolin
oboe
piano
saxophone
sitar
trombone
trumpet
ukulele
viola
violin
""")

ALLERGENS = _lines("""
peanuts
tree nuts
shellfish
sesame
penicillin
cat hair
pollen
latex
eggs
soy
wheat
mustard
celery
kiwi fruit
dust mites
bee stings
""")

CAR_MAKES = _words("""
Audi BMW Citroen Dacia Fiat Ford Honda Hyundai Jaguar Kia Lexus Mazda Mercedes Mini Mitsubishi Nissan
Opel Peugeot Polestar Porsche Renault Saab Seat Skoda Subaru Suzuki Tesla Toyota Vauxhall Volkswagen Volvo
""")

CAR_COLOURS = _words("silver black white red blue green grey yellow orange bronze")

SPECIES = _lines("""
beagle
border collie
labrador
dachshund
greyhound
spaniel
tabby cat
Siamese cat
Maine Coon
rabbit
guinea pig
hamster
tortoise
parrot
budgie
ferret
corn snake
bearded dragon
goldfish
chinchilla
""")

RELATIONS = _lines("""
sister
brother
mother
father
cousin
aunt
uncle
grandmother
grandfather
best friend
partner
colleague
manager
neighbour
flatmate
niece
nephew
godmother
mentor
daughter
son
stepbrother
sister-in-law
brother-in-law
""")

APPOINTMENTS = _lines("""
dentist appointment
haircut
eye test
physio session
GP check-up
vet appointment
car service
boiler service
job interview
parent-teacher meeting
driving test
piano lesson
tax advisor meeting
blood test
passport appointment
bank appointment
annual review
flu jab
dermatologist appointment
wedding dress fitting
MOT
house viewing
mortgage meeting
bike repair
""")

PROJECTS = _lines("""
quarterly report
grant proposal
conference talk
thesis chapter
budget review
website redesign
kitchen renovation
tax return
insurance claim
marketing plan
book manuscript
research poster
client presentation
annual accounts
training course
product launch plan
funding application
photo album
wedding speech
garden plan
board presentation
code review
user survey
lesson plan
podcast episode
design portfolio
safety audit
sales forecast
travel itinerary
newsletter
""")

PARCEL_ITEMS = _lines("""
running shoes
desk lamp
coffee grinder
winter coat
air fryer
blender
backpack
bike helmet
board game
camping stove
cast iron pan
noise-cancelling headphones
phone case
printer ink
rain jacket
record player
rug
sleeping bag
standing desk
suitcase
tent
toaster
watercolour set
wireless keyboard
yoga mat
bookshelf
electric kettle
hiking boots
office chair
water bottle
""")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

AIRLINE_CODES = _words("AZ BA DL EI FR IB KL LH LX OS QF SK SN TP U2 VY W6 AF AY EK")

# NIAH keys are "adjective-noun" pairs
KEY_ADJECTIVES = _words("""
amber ancient arctic autumn bitter blazing bold brave breezy bright brisk bronze calm candid chilly
clever cobalt cosmic crimson crisp curious daring dawn deep dusky eager early electric elegant emerald
fading fancy fierce floral fluffy foggy frosty gentle gilded glad gleaming golden graceful grand hidden
hollow humble icy idle jade jolly keen kind lively lofty lone lucky lunar marble mellow merry midnight
misty modest muddy narrow noble nimble northern oaken olive pale patient pearl plain polar proud quiet
quick rapid rare restless rosy royal rustic sandy scarlet serene shady sharp shiny silent silken silver
sleepy slow smoky snowy solar sparkling spicy spry steady stormy sturdy sunny swift tame tawny tender
thorny tidy timid tiny tranquil velvet vivid wandering warm wild windy wise witty young zesty
""")

KEY_NOUNS = _words("""
acorn anchor apple arrow badger barrel beacon bell berry birch blossom boulder bramble breeze bridge
brook buckle butterfly cactus candle canyon castle cedar cherry cliff cloud clover comet compass coral
cottage crane creek crow crystal daisy dolphin dove dragon dune eagle ember falcon feather fern fiddle
finch fjord flame forest fountain fox garden gate glacier glen goose grove harbor hawk hazel heron hill
horizon island ivy jasmine kettle kite lagoon lantern lark leaf lemon lighthouse lily lotus maple meadow
mirror moon moss mountain nectar nest oak ocean orchard otter owl palm panther pebble pepper pine planet
plum pond poppy quartz rabbit raven reef ridge river robin rocket saddle salmon sparrow spruce star
stone storm summit swan thistle thunder tiger timber tulip valley violet walnut whale willow wolf wren
""")

VT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# the pools whose items are partitioned between train and held-out examples
OPEN_POOLS = {
    "first_names": FIRST_NAMES,
    "surnames": SURNAMES,
    "cities": CITIES,
    "pet_names": PET_NAMES,
    "company_prefixes": COMPANY_PREFIXES,
    "venue_words": VENUE_WORDS,
    "key_adjectives": KEY_ADJECTIVES,
    "key_nouns": KEY_NOUNS,
}
