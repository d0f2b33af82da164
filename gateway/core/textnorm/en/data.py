"""English word lists: months, units, abbreviations, acronyms (data, not number spelling)."""

from __future__ import annotations

from typing import Final

from gateway.core.textnorm.en.common import words

MONTHS: Final = ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")  # fmt: skip
MONTH_ABBREVIATIONS: Final = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9,
    "Sept": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip
WEEKDAY_ABBREVIATIONS: Final = {
    "Mon": "Monday", "Tue": "Tuesday", "Tues": "Tuesday", "Wed": "Wednesday",
    "Thu": "Thursday", "Thur": "Thursday", "Thurs": "Thursday", "Fri": "Friday",
    "Sat": "Saturday", "Sun": "Sunday",
}  # fmt: skip
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                   "Sunday")  # fmt: skip

# Words before a bare two-part "a/b" that make it a date rather than a fraction ("on 3/4").
DATE_CUES: Final = words(
    """on by due until till since from before after through thru dated"""
) | frozenset(day.lower() for day in WEEKDAYS)

# Words before a four-digit number that make it a year, or a quantity.
YEAR_CUES: Final = words(
    """in since by from until till before after during circa ca c year years of the since early
    late mid around spring summer autumn fall winter between to through q1 q2 q3 q4 fy h1 h2"""
)
QUANTITY_CUES: Final = words(
    """about over under nearly almost than approximately exactly roughly only just some total
    all paid cost costs costing sold earned had has have with weighs weighed measuring
    measures scored score counted count number numbered"""
)
# Words after a four-digit number that still leave it a year ("1999 was", "2020 and").
AFTER_YEAR: Final = words(
    """and or to was were is will would had has saw brought marked began begun ended through
    until till onwards onward as when where which that the a an in on at for with by from
    but so then after before election elections census season olympics budget edition model
    models version release cup war crisis recession pandemic"""
)

# Units after a number: symbol -> (singular, plural). Case-sensitive.
UNITS: Final[dict[str, tuple[str, str]]] = {
    # length
    "mm": ("millimeter", "millimeters"), "cm": ("centimeter", "centimeters"),
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"),
    "µm": ("micrometer", "micrometers"), "μm": ("micrometer", "micrometers"),
    "nm": ("nanometer", "nanometers"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "yds": ("yard", "yards"), "mi": ("mile", "miles"), "in.": ("inch", "inches"),
    # mass
    "mg": ("milligram", "milligrams"), "g": ("gram", "grams"), "kg": ("kilogram", "kilograms"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    # volume
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "cl": ("centiliter", "centiliters"), "L": ("liter", "liters"), "l": ("liter", "liters"),
    "gal": ("gallon", "gallons"), "fl oz": ("fluid ounce", "fluid ounces"),
    # speed
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour",
    "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"),
    # temperature
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "℉": ("degree Fahrenheit",
    "degrees Fahrenheit"), "°C": ("degree Celsius", "degrees Celsius"),
    "℃": ("degree Celsius", "degrees Celsius"), "°": ("degree", "degrees"),
    # data
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"), "PB": ("petabyte", "petabytes"),
    "KiB": ("kibibyte", "kibibytes"), "MiB": ("mebibyte", "mebibytes"),
    "GiB": ("gibibyte", "gibibytes"), "TiB": ("tebibyte", "tebibytes"),
    "Kb": ("kilobit", "kilobits"), "Mb": ("megabit", "megabits"), "Gb": ("gigabit", "gigabits"),
    "kbps": ("kilobit per second", "kilobits per second"),
    "Mbps": ("megabit per second", "megabits per second"),
    "Gbps": ("gigabit per second", "gigabits per second"),
    "MB/s": ("megabyte per second", "megabytes per second"),
    "GB/s": ("gigabyte per second", "gigabytes per second"),
    # frequency, power, energy, electricity
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "W": ("watt", "watts"), "kW": ("kilowatt", "kilowatts"), "MW": ("megawatt", "megawatts"),
    "GW": ("gigawatt", "gigawatts"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "MWh": ("megawatt hour", "megawatt hours"), "V": ("volt", "volts"),
    "mAh": ("milliamp hour", "milliamp hours"), "mA": ("milliamp", "milliamps"),
    "J": ("joule", "joules"), "kJ": ("kilojoule", "kilojoules"),
    "kcal": ("kilocalorie", "kilocalories"), "cal": ("calorie", "calories"),
    # time
    "ms": ("millisecond", "milliseconds"), "µs": ("microsecond", "microseconds"),
    "ns": ("nanosecond", "nanoseconds"), "s": ("second", "seconds"),
    "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"), "h": ("hour", "hours"),
    "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    # area
    "m²": ("square meter", "square meters"), "m2": ("square meter", "square meters"),
    "km²": ("square kilometer", "square kilometers"), "cm²": ("square centimeter",
    "square centimeters"), "sq ft": ("square foot", "square feet"),
    "ft²": ("square foot", "square feet"), "ha": ("hectare", "hectares"),
    "m³": ("cubic meter", "cubic meters"),
    # other
    "dB": ("decibel", "decibels"), "px": ("pixel", "pixels"), "rpm": ("R-P-M", "R-P-M"),
    "psi": ("P-S-I", "P-S-I"), "bpm": ("beat per minute", "beats per minute"),
    "fps": ("frame per second", "frames per second"), "pt": ("point", "points"),
    "ppm": ("part per million", "parts per million"),
    "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"),
}  # fmt: skip
# Units that must touch the number ("5m", not "5 m": a lone letter after a number is too
# often something else), or need a space-free context; spaced, they are units before "of"
# ("2 L of water").
UNITS_TOUCHING_ONLY: Final = frozenset({"m", "g", "s", "h", "l", "L", "J", "in."})
# "per X" after a unit or an amount: "$5/month", "10 km/day".
PER_UNITS: Final = {
    "s": "second", "sec": "second", "min": "minute", "h": "hour", "hr": "hour",
    "hour": "hour", "day": "day", "d": "day", "wk": "week", "week": "week", "mo": "month",
    "month": "month", "yr": "year", "year": "year", "person": "person", "user": "user",
    "seat": "seat", "kg": "kilogram", "lb": "pound", "unit": "unit", "night": "night",
    "GB": "gigabyte", "item": "item", "serving": "serving",
}  # fmt: skip

CURRENCIES: Final = {
    # symbol or code -> (singular, plural, minor singular, minor plural)
    "$": ("dollar", "dollars", "cent", "cents"),
    "US$": ("US dollar", "US dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"),
    "₹": ("rupee", "rupees", "paisa", "paise"),
    "₩": ("won", "won", "jeon", "jeon"),
    "₽": ("ruble", "rubles", "kopeck", "kopecks"),
    "USD": ("US dollar", "US dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "JPY": ("yen", "yen", "sen", "sen"),
    "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "AUD": ("Australian dollar", "Australian dollars", "cent", "cents"),
    "CHF": ("Swiss franc", "Swiss francs", "centime", "centimes"),
    "INR": ("rupee", "rupees", "paisa", "paise"),
}
SCALES: Final = {
    "k": "thousand", "K": "thousand", "thousand": "thousand",
    "m": "million", "M": "million", "mn": "million", "million": "million",
    "b": "billion", "B": "billion", "bn": "billion", "billion": "billion",
    "t": "trillion", "T": "trillion", "tn": "trillion", "trillion": "trillion",
}  # fmt: skip

# Abbreviations. ``dot``: "required" (only with a dot), "optional".
# ``terminal``: the dot may also end a sentence ("etc."), so it is kept when a capital follows.
LATIN: Final = {
    # lower-cased key (dots included) -> reading; matched case-insensitively
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "etc": "et cetera",
    "vs.": "versus", "vs": "versus", "v.": "versus", "approx.": "approximately",
    "approx": "approximately", "cf.": "compare", "viz.": "namely", "ca.": "circa",
    "a.k.a.": "also known as", "aka": "also known as", "et al.": "et al",
    "incl.": "including", "esp.": "especially", "est.": "established", "max.": "maximum",
    "min.": "minimum", "misc.": "miscellaneous", "govt.": "government",
    "w/": "with", "w/o": "without", "b/c": "because", "p.s.": "P-S", "n.b.": "note",
    "r.i.p.": "rest in peace", "a.m.": "A-M", "p.m.": "P-M",
}  # fmt: skip
TERMINAL_LATIN: Final = frozenset({"etc.", "et al.", "a.m.", "p.m.", "est.", "misc."})
TITLES: Final = {
    # case-sensitive, before a name; the dot is optional for the first group
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Mx": "Mix", "Dr": "Doctor",
    "St": "Saint", "Prof": "Professor", "Jr": "Junior", "Sr": "Senior",
}  # fmt: skip
TITLES_DOT_OPTIONAL: Final = frozenset({"Mr", "Mrs", "Ms", "Mx", "Dr", "St"})
CAPITAL_ABBREVIATIONS: Final = {
    # case-sensitive, dot required
    "Mt": "Mount", "Ft": "Fort", "Ave": "Avenue", "Blvd": "Boulevard", "Rd": "Road",
    "Ln": "Lane", "Hwy": "Highway", "Apt": "Apartment", "Dept": "Department",
    "Univ": "University", "Gov": "Governor", "Sen": "Senator", "Rep": "Representative",
    "Gen": "General", "Capt": "Captain", "Lt": "Lieutenant", "Sgt": "Sergeant",
    "Col": "Colonel", "Rev": "Reverend", "Hon": "Honorable", "Messrs": "Messieurs",
    "Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation", "Co": "Company",
    "Bros": "Brothers", "Est": "Established", "Jan": "January", "Feb": "February",
    "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July", "Aug": "August",
    "Sep": "September", "Sept": "September", "Oct": "October", "Nov": "November",
    "Dec": "December",
}  # fmt: skip
TERMINAL_CAPITALS: Final = frozenset(
    {"Inc", "Ltd", "Corp", "Co", "Bros"} | set(MONTH_ABBREVIATIONS)
)
# Before a number only: "No. 5" -> "number five", "p. 12" -> "page twelve".
NUMBER_ABBREVIATIONS: Final = {
    "No": "number", "no": "number", "Nos": "numbers", "Fig": "figure", "fig": "figure",
    "Vol": "volume", "vol": "volume", "Ch": "chapter", "ch": "chapter", "p": "page",
    "pp": "pages", "Sec": "section", "sec": "section", "Art": "article", "Ex": "example",
    "Eq": "equation", "eq": "equation", "Ref": "reference", "Pt": "part", "pt": "part",
}  # fmt: skip

# Capitalized words read as words, and read letter by letter (extendable by settings).
ACRONYMS: Final = words(
    """NASA NATO UNESCO UNICEF LASER RADAR SCUBA SONAR RAM ROM GIF NAND LAN WAN PIN SIM AIDS
    COVID OPEC FIFA UEFA NAFTA JSON YAML CAPTCHA ZIP WIFI TOEFL IKEA LEGO NASDAQ UNIX LINUX
    POSIX SWAT FEMA OSHA DARPA CERN ESA SPAC REST CRUD WYSIWYG NIMBY YOLO FOMO ASAP SARS
    MERS PAC MASH"""
)
INITIALISMS: Final = words(
    """FBI CIA NSA IRS HTTP HTTPS API URL URI HTML CSS XML PDF CPU GPU TPU RAM USB DVD CD TV PC
    AI ML LLM NLP TTS ASR OCR IBM BBC CNN CEO CFO CTO COO HR PR IT ID IP TCP UDP DNS SSH SSL
    TLS VPN LCD LED OLED SMS MMS GPS DNA RNA FAQ UK US USA EU UN WHO NBA NFL NHL MLB UFC MIT
    UCLA NYU NYC LA DC SF AWS GCP SDK IDE CLI CI CD QA UX UI PHP VR AR XR ATM PIN PhD MBA
    BMW VW HP IoT RSS SEO ROI KPI B2B B2C ETA FYI DIY IQ EQ OK PS PPS RSVP TBD TBA AKA BC AD
    BCE CE EST PST CST MST GMT UTC EDT PDT CDT MDT BST CET IPO GDP CPI ESG SUV EV NGO SQL
    PNG DOJ DOE DOD NIH SEC GOP POV WIP LOL HIV BMI DUI RPG NIC VAT GED SOS SAT"""
) - {"RAM", "PIN", "OK"}
# Readings that are neither words nor plain letters.
SPECIAL_CAPITALS: Final = {
    "IEEE": "I triple E", "AAA": "triple A", "NAACP": "N double A C P", "WWII": "World War Two",
    "WWI": "World War One", "WW2": "World War Two", "WW1": "World War One",
    "AT&T": "A-T and T", "R&D": "R and D", "Q&A": "Q and A", "P&L": "P and L",
    "B&B": "B and B", "M&A": "M and A", "CI/CD": "C-I C-D", "I/O": "I-O", "TCP/IP": "T-C-P I-P",
    "OK": "okay",
}  # fmt: skip
# Short capitalized words that are plain English when a text is shouted ("IT IS").
CAPS_STOPWORDS: Final = words(
    """A I AN AS AT BE BY DO GO HE IF IN IS IT ME MY NO OF ON OR SO TO UP US WE AM OH OX HI YES
    ALL AND ARE BUT CAN FOR GET HAS HAD HER HIM HIS HOW ITS LET MAY NEW NOT NOW OFF OLD ONE
    OUR OUT OWN SAY SEE SHE THE TOO TWO USE WAS WAY WHO WHY YET YOU"""
)
# Words before a Roman numeral read as a cardinal ("Part IV" -> "Part four").
ROMAN_CARDINAL_CUES: Final = words(
    """Part Chapter Volume Book Act Scene Phase Stage Level War Episode Season Type Class Title
    Article Section Round Grade Tier Appendix Annex Figure Table Vol Vatican"""
)

# Top-level domains read as a word; others of two letters are spelled.
TLD_WORDS: Final = words(
    """com org net edu gov mil info biz app dev io co me tv ai xyz online site tech store blog
    cloud news"""
)
TLD_SPELLED: Final = frozenset({"io", "ai", "tv", "edu"})
BARE_DOMAIN_TLDS: Final = words(
    """com org net edu gov io ai dev app co uk de fr jp ca au us info me tv ly gg xyz"""
)
CODE_LANGUAGES: Final = {
    "py": "Python", "python": "Python", "js": "JavaScript", "javascript": "JavaScript",
    "ts": "TypeScript", "typescript": "TypeScript", "sh": "shell", "bash": "shell",
    "shell": "shell", "zsh": "shell", "console": "shell", "rs": "Rust", "rust": "Rust",
    "go": "Go", "java": "Java", "c": "C", "cpp": "C++", "c++": "C++", "cs": "C#",
    "csharp": "C#", "rb": "Ruby", "ruby": "Ruby", "json": "JSON", "yaml": "YAML",
    "yml": "YAML", "toml": "TOML", "sql": "SQL", "html": "HTML", "css": "CSS", "md": "Markdown",
    "markdown": "Markdown", "kotlin": "Kotlin", "swift": "Swift", "php": "PHP", "r": "R",
    "text": "", "txt": "", "plaintext": "", "diff": "diff",
}  # fmt: skip
# Symbols read in running text (between spaces, or around numbers).
SYMBOL_WORDS: Final = {
    "&": "and", "+": "plus", "=": "equals", "×": "times", "÷": "divided by", "±": "plus or minus",
    "≈": "approximately", "≠": "is not equal to", "≤": "less than or equal to",
    "≥": "greater than or equal to", "<": "less than", ">": "greater than", "@": "at",
    "→": "to", "~": "about", "#": "number", "§": "section", "¶": "paragraph", "°": "degrees",
}  # fmt: skip
