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
    #: Other spellings of ``country`` that forms let through.
    spellings: tuple[str, ...] = ()


# fmt: off
LOCALES: tuple[Locale, ...] = (
    Locale(
        country="Ukraine",
        first_names=("Олена", "Андрій", "Оксана", "Тарас", "Ірина", "Дмитро", "Юлія", "Богдан"),
        last_names=(
            "Коваленко", "Шевченко", "Бондаренко", "Мельник", "Ткаченко", "Олійник", "Гнатюк",
        ),
        cities=(("Київ", "", "01001"), ("Львів", "Львівська", "79000"),
                ("Одеса", "Одеська", "65000")),
        streets=("вул. Хрещатик", "вул. Шевченка", "просп. Свободи"),
        weight=22,
    ),
    Locale(
        country="Ukraine",
        first_names=("Olena", "Andrii", "Oksana", "Taras", "Iryna", "Dmytro", "Yuliia", "Bohdan"),
        last_names=("Kovalenko", "Shevchenko", "Bondarenko", "Melnyk", "Tkachenko", "Oliinyk"),
        cities=(("Kyiv", "", "01001"), ("Lviv", "Lviv Oblast", "79000"),
                ("Kharkiv", "Kharkiv Oblast", "61000")),
        streets=("Khreshchatyk St", "Shevchenka St", "Svobody Ave"),
        weight=14,
    ),
    Locale(
        country="Poland",
        first_names=("Zofia", "Łukasz", "Agnieszka", "Paweł", "Małgorzata", "Krzysztof"),
        last_names=("Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Woźniak", "Dąbrowski"),
        cities=(("Warszawa", "Mazowieckie", "00-001"), ("Kraków", "Małopolskie", "30-001"),
                ("Łódź", "Łódzkie", "90-001")),
        streets=("ul. Marszałkowska", "ul. Floriańska", "ul. Długa"),
        weight=14,
        spellings=("poland", "Polska"),
    ),
    Locale(
        country="Lithuania",
        first_names=("Jonas", "Rūta", "Mindaugas", "Eglė", "Žygimantas", "Gintarė"),
        last_names=("Kazlauskas", "Petrauskienė", "Stankevičiūtė", "Žukauskaitė", "Butkus"),
        cities=(("Vilnius", "", "01100"), ("Kaunas", "", "44240"), ("Klaipėda", "", "91100")),
        streets=("Gedimino pr.", "Laisvės al.", "Pilies g."),
        weight=8,
        spellings=("Lietuva",),
    ),
    Locale(
        country="Germany",
        first_names=("Jürgen", "Käthe", "Björn", "Lena", "Matthias", "Sören"),
        last_names=("Müller", "Schäfer", "Groß", "Weiß", "Höfer", "Krüger"),
        cities=(("München", "Bayern", "80331"), ("Köln", "Nordrhein-Westfalen", "50667"),
                ("Berlin", "Berlin", "10115")),
        streets=("Königstraße", "Hauptstraße", "Schloßallee"),
        weight=12,
        spellings=("germany", "GERMANY", "Deutschland"),
    ),
    Locale(
        country="Spain",
        first_names=("José", "María", "Íñigo", "Lucía", "Begoña", "Álvaro"),
        last_names=("Martínez", "Núñez", "Peña", "Fernández", "Ibáñez", "Gómez"),
        cities=(("Madrid", "Madrid", "28001"), ("Sevilla", "Andalucía", "41001"),
                ("A Coruña", "Galicia", "15001")),
        streets=("Calle Mayor", "Gran Vía", "Avenida de la Constitución"),
        weight=10,
        spellings=("España",),
    ),
)

#: Reserved example domains (RFC 2606): the demo never names a real mailbox.
DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example.com")

#: A couple of names with an emoji, as some CRMs end up holding.
EMOJI_NAMES: tuple[tuple[str, str], ...] = (("Sunny ☀️", "Kovalenko"), ("Оксана 🌻", "Мельник"))
# fmt: on
