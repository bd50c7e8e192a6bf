# ruff: noqa: RUF001  (Cyrillic letters are the point of this data)
"""Name, place and address pools for the demo's sample customers.

Real-looking, never real: every e-mail uses a reserved example domain.
Several languages on purpose, because omnisync must carry Cyrillic, Polish,
Lithuanian, German and Spanish letters (and the odd emoji) intact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Locale:
    """People of one country: names in their own script, places, and how the CDP writes them."""

    country: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[tuple[str, str, str], ...]  # (city, state, postal code)
    streets: tuple[str, ...]
    weight: int


# fmt: off
UKRAINE_CYRILLIC = Locale(
    country="Ukraine",
    first_names=(
        "Олена", "Андрій", "Оксана", "Тарас", "Ірина", "Дмитро", "Юлія", "Богдан",
        "Наталія", "Сергій", "Марія", "Олександр", "Софія", "Максим", "Катерина", "Євген",
    ),
    last_names=(
        "Коваленко", "Шевченко", "Бондаренко", "Мельник", "Ткаченко", "Кравченко",
        "Олійник", "Шевчук", "Поліщук", "Лисенко", "Бойко", "Савченко", "Гнатюк", "Яковенко",
    ),
    cities=(
        ("Київ", "", "01001"), ("Львів", "Львівська", "79000"), ("Одеса", "Одеська", "65000"),
        ("Харків", "Харківська", "61000"), ("Дніпро", "Дніпропетровська", "49000"),
    ),
    streets=("вул. Хрещатик", "вул. Шевченка", "просп. Свободи", "вул. Січових Стрільців"),
    weight=22,
)

UKRAINE_LATIN = Locale(
    country="Ukraine",
    first_names=(
        "Olena", "Andrii", "Oksana", "Taras", "Iryna", "Dmytro", "Yuliia", "Bohdan",
        "Nataliia", "Serhii", "Mariia", "Oleksandr", "Sofiia", "Maksym", "Kateryna", "Yevhen",
    ),
    last_names=(
        "Kovalenko", "Shevchenko", "Bondarenko", "Melnyk", "Tkachenko", "Kravchenko",
        "Oliinyk", "Shevchuk", "Polishchuk", "Lysenko", "Boiko", "Savchenko", "Hnatiuk",
    ),
    cities=(
        ("Kyiv", "", "01001"), ("Lviv", "Lviv Oblast", "79000"), ("Odesa", "Odesa Oblast", "65000"),
        ("Kharkiv", "Kharkiv Oblast", "61000"), ("Vinnytsia", "Vinnytsia Oblast", "21000"),
    ),
    streets=("Khreshchatyk St", "Shevchenka St", "Svobody Ave", "Sichovykh Striltsiv St"),
    weight=14,
)

POLAND = Locale(
    country="Poland",
    first_names=(
        "Zofia", "Łukasz", "Agnieszka", "Paweł", "Małgorzata", "Krzysztof", "Katarzyna",
        "Michał", "Joanna", "Wojciech", "Grażyna", "Bartłomiej",
    ),
    last_names=(
        "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Zielińska", "Szymański",
        "Woźniak", "Dąbrowski", "Kozłowska", "Jankowski", "Mazur", "Krawczyk",
    ),
    cities=(
        ("Warszawa", "Mazowieckie", "00-001"), ("Kraków", "Małopolskie", "30-001"),
        ("Gdańsk", "Pomorskie", "80-001"), ("Łódź", "Łódzkie", "90-001"),
        ("Wrocław", "Dolnośląskie", "50-001"),
    ),
    streets=("ul. Marszałkowska", "ul. Floriańska", "ul. Długa", "ul. Piotrkowska"),
    weight=14,
)

LITHUANIA = Locale(
    country="Lithuania",
    first_names=(
        "Jonas", "Rūta", "Mindaugas", "Eglė", "Žygimantas", "Gintarė", "Tomas", "Aušra",
        "Darius", "Jurgita", "Šarūnas", "Ieva",
    ),
    last_names=(
        "Kazlauskas", "Petrauskienė", "Jankauskas", "Stankevičiūtė", "Vasiliauskas",
        "Žukauskaitė", "Butkus", "Paulauskienė", "Urbonas", "Kavaliauskas",
    ),
    cities=(
        ("Vilnius", "", "01100"), ("Kaunas", "", "44240"), ("Klaipėda", "", "91100"),
        ("Šiauliai", "", "76100"),
    ),
    streets=("Gedimino pr.", "Laisvės al.", "Pilies g.", "Didžioji g."),
    weight=8,
)

GERMANY = Locale(
    country="Germany",
    first_names=(
        "Jürgen", "Käthe", "Björn", "Lena", "Matthias", "Sören", "Anna", "Lukas", "Jörg",
        "Mia", "Maximilian", "Hannah",
    ),
    last_names=(
        "Müller", "Schäfer", "Groß", "Weiß", "Höfer", "Krüger", "Schmidt", "Fischer",
        "Köhler", "Becker", "Wagner", "Bäcker",
    ),
    cities=(
        ("München", "Bayern", "80331"), ("Köln", "Nordrhein-Westfalen", "50667"),
        ("Berlin", "Berlin", "10115"), ("Düsseldorf", "Nordrhein-Westfalen", "40213"),
        ("Nürnberg", "Bayern", "90402"),
    ),
    streets=("Königstraße", "Hauptstraße", "Schloßallee", "Bahnhofstraße"),
    weight=12,
)

SPAIN = Locale(
    country="Spain",
    first_names=(
        "José", "María", "Íñigo", "Lucía", "Begoña", "Álvaro", "Sofía", "Martín", "Ramón",
        "Inés", "Jesús", "Nuria",
    ),
    last_names=(
        "Martínez", "Núñez", "Peña", "Fernández", "Ibáñez", "Gómez", "López", "Sánchez",
        "Pérez", "Muñoz", "Jiménez", "Ortiz",
    ),
    cities=(
        ("Madrid", "Madrid", "28001"), ("Sevilla", "Andalucía", "41001"),
        ("A Coruña", "Galicia", "15001"), ("Málaga", "Andalucía", "29001"),
        ("Bilbao", "País Vasco", "48001"),
    ),
    streets=("Calle Mayor", "Gran Vía", "Avenida de la Constitución", "Calle de Alcalá"),
    weight=10,
)

UNITED_KINGDOM = Locale(
    country="United Kingdom",
    first_names=(
        "Emily", "James", "Olivia", "Harry", "Amelia", "George", "Isla", "Oliver", "Chloë",
        "Noah", "Zoë", "Jack",
    ),
    last_names=(
        "Clarke", "O'Connor", "Smith", "Thompson", "Evans", "Walker", "Wright", "Hughes",
        "Robinson", "Wood", "Taylor", "Brontë",
    ),
    cities=(
        ("London", "England", "SW1A 1AA"), ("Manchester", "England", "M1 1AE"),
        ("Edinburgh", "Scotland", "EH1 1YZ"), ("Cardiff", "Wales", "CF10 1EP"),
    ),
    streets=("High Street", "Station Road", "Church Lane", "Victoria Road"),
    weight=8,
)

UNITED_STATES = Locale(
    country="United States",
    first_names=("Ashley", "Michael", "Jessica", "Christopher", "Madison", "Tyler", "Brianna"),
    last_names=("Johnson", "Williams", "Brown", "Miller", "Davis", "Garcia", "Rodriguez"),
    cities=(
        ("Chicago", "IL", "60601"), ("Austin", "TX", "73301"), ("Portland", "OR", "97201"),
        ("Brooklyn", "NY", "11201"),
    ),
    streets=("Main Street", "Oak Avenue", "Maple Drive", "Elm Street"),
    weight=8,
)

LOCALES: tuple[Locale, ...] = (
    UKRAINE_CYRILLIC,
    UKRAINE_LATIN,
    POLAND,
    LITHUANIA,
    GERMANY,
    SPAIN,
    UNITED_KINGDOM,
    UNITED_STATES,
)

#: Reserved example domains (RFC 2606): the demo never names a real mailbox.
DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example.com")

#: A couple of names with an emoji, as some CRMs end up holding.
EMOJI_NAMES: tuple[tuple[str, str], ...] = (("Sunny ☀️", "Kovalenko"), ("Оксана 🌻", "Мельник"))

_CYRILLIC_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "h", "ґ": "g", "д": "d", "е": "e", "є": "ie",
    "ж": "zh", "з": "z", "и": "y", "і": "i", "ї": "i", "й": "i", "к": "k", "л": "l",
    "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
    "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ь": "", "ю": "iu",
    "я": "ia", "'": "",
}

_LATIN_FOLDS = str.maketrans(
    {
        "ą": "a", "ć": "c", "ę": "e", "ł": "l", "ń": "n", "ó": "o", "ś": "s", "ź": "z",
        "ż": "z", "ū": "u", "ė": "e", "į": "i", "ų": "u", "č": "c", "š": "s", "ž": "z",
        "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "á": "a", "é": "e", "í": "i", "ñ": "n",
        "ú": "u", "ë": "e", "'": "",
    }
)
# fmt: on


def ascii_local_part(name: str) -> str:
    """A plausible mailbox name for ``name``: transliterated Cyrillic, folded accents."""
    lowered = name.lower()
    transliterated = "".join(_CYRILLIC_TO_LATIN.get(letter, letter) for letter in lowered)
    folded = transliterated.translate(_LATIN_FOLDS)
    return "".join(letter for letter in folded if letter.isascii() and letter.isalnum())
