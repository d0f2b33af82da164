"""English readings, category by category: the reading, the replaced source spans and (for
some) the per-word readings; every case also passes the offset checks of tests.helpers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.textnorm_cases import Case, case, run_case

MONEY: list[Any] = [
    case("It costs $5.", "It costs five dollars.", {"$5": "five dollars"}),
    case("$1", "one dollar"),
    case("$1,234.56", "one thousand two hundred thirty-four dollars and fifty-six cents",
         words={"$1,234.56": "one thousand two hundred thirty-four dollars and fifty-six cents"}),
    case("$0.99", "ninety-nine cents"),
    case("$0.01", "one cent"),
    case("$3.00", "three dollars"),
    case("$1.01", "one dollar and one cent"),
    case("$4.50 each", "four dollars and fifty cents each"),
    case("£1.01", "one pound and one penny"),
    case("£3.50", "three pounds and fifty pence"),
    case("€1,200", "one thousand two hundred euros"),
    case("€1", "one euro"),
    case("¥100", "one hundred yen"),
    case("₹500", "five hundred rupees"),
    case("$5M", "five million dollars"),
    case("$2.5 billion", "two point five billion dollars",
         {"$2.5": "two point five", "billion": "billion dollars"}),
    case("$3bn deal", "three billion dollars deal"),
    case("$10k salary", "ten thousand dollars salary"),
    case("$5-$10", "five to ten dollars"),
    case("$5-10", "five to ten dollars"),
    case("$9.99/month", "nine dollars and ninety-nine cents per month"),
    case("$20/hr", "twenty dollars per hour"),
    case("-$5", "minus five dollars"),
    case("500 EUR", "five hundred euros", {"500": "five hundred", "EUR": "euros"}),
    case("USD 20", "twenty US dollars"),
    case("US$5", "five US dollars"),
    case("$1,000,000", "one million dollars"),
    case("$0.005", "zero point zero zero five dollars"),
    case("Pay $12.", "Pay twelve dollars."),
    case("($5)", "(five dollars)"),
    case("$5.50-$7.25", "five dollars and fifty cents to seven dollars and twenty-five cents"),
    case("a $5 b", "a five dollars b", id="lone letter is not a scale"),
    case("$4.2B in FY2023", "four point two billion dollars in F-Y twenty twenty-three"),
    case("It costs €50 per person.", "It costs fifty euros per person."),
]  # fmt: skip

DATES: list[Any] = [
    case("2024-12-05", "December fifth twenty twenty-four"),
    case("On 2024-12-05 we met", "On December fifth twenty twenty-four we met",
         {"2024-12-05": "December fifth twenty twenty-four"}),
    case("2024-12-05", "the fifth of December twenty twenty-four", date_order="dmy",
         id="iso dmy"),
    case("12/05/2024", "December fifth twenty twenty-four"),
    case("12/05/2024", "the twelfth of May twenty twenty-four", date_order="dmy", id="dmy"),
    case("13/05/2024", "May thirteenth twenty twenty-four", id="only dmy valid"),
    case("5/13/2024", "the thirteenth of May twenty twenty-four", date_order="dmy",
         id="only mdy valid"),
    case("12/05/24", "December fifth twenty-four"),
    case("01/02/05", "January second oh five"),
    case("2024/12/05", "December fifth twenty twenty-four"),
    case("12.05.2024", "the twelfth of May twenty twenty-four", date_order="dmy",
         id="dotted dmy"),
    case("05-12-2024", "May twelfth twenty twenty-four"),
    case("31/31/2024", "thirty-one/thirty-one/two thousand twenty-four", id="invalid date"),
    case("2023-02-29 is not a date", "twenty twenty-three-zero two-twenty-nine is not a date",
         id="invalid iso"),
    case("2024-02-29", "February twenty-ninth twenty twenty-four"),
    case("Dec 5, 2024", "December fifth, twenty twenty-four",
         {"Dec": "December", "5": "fifth", "2024": "twenty twenty-four"}),
    case("Dec. 5, 2024", "December fifth, twenty twenty-four"),
    case("December 5, 2024", "December fifth, twenty twenty-four"),
    case("December 5th", "December fifth"),
    case("on March 3rd", "on March third"),
    case("Sept 1", "September first"),
    case("5 December 2024", "the fifth of December twenty twenty-four",
         {"5": "the fifth of", "2024": "twenty twenty-four"}),
    case("5th of December", "the fifth of December"),
    case("1 Jan 2000", "the first of January two thousand"),
    case("December 2024", "December twenty twenty-four"),
    case("in Jan 2019", "in January twenty nineteen"),
    case("Mon, Dec 5, 2024", "Monday, December fifth, twenty twenty-four"),
    case("Dec 5, 2024", "December the fifth, twenty twenty-four", language="en-gb",
         id="en-gb month first"),
    case("on 3/4 we meet", "on March fourth we meet", {"3/4": "March fourth"}),
    case("due 12/1", "due December first"),
    case("on 3/4", "on the third of April", date_order="dmy", id="cue dmy"),
    case("Feb 30", "Feb thirty", id="invalid day"),
    case("May 5", "May fifth"),
    case("June 2020 and July 4th", "June twenty twenty and July fourth"),
    case("2024-05", "May twenty twenty-four", id="year-month"),
    case("The 12/05/2024 meeting", "The December fifth twenty twenty-four meeting"),
    case("12/05/2024", "December fifth twenty twenty-four", language="en-us", id="en-us"),
    case("12/05/2024", "the twelfth of May twenty twenty-four", language="en-GB", id="en-GB"),
    case("12/05/2024", "the twelfth of May twenty twenty-four", language="en_AU", id="en_AU"),
    case("1/1/2000", "January first two thousand"),
]  # fmt: skip

TIMES: list[Any] = [
    case("3:30 pm", "three thirty P-M", {"3:30": "three thirty", "pm": "P-M"}),
    case("3.30 pm", "three thirty P-M", {"3.30": "three thirty", "pm": "P-M"}),
    case("at 10.45 a.m. sharp", "at ten forty-five A-M sharp", {"10.45": "ten forty-five"}),
    case("2.50 apples", "two point five zero apples"),  # no am/pm: a decimal
    case("It's 5 p.m.", "It's five P-M.", {"5": "five", "p.m": "P-M"}),
    case("at 5 p.m. today", "at five P-M today", {".": ""}),
    case("15:45", "fifteen forty-five"),
    case("15:00", "fifteen hundred"),
    case("3:00", "three o'clock"),
    case("3:05", "three oh five"),
    case("9am", "nine A-M", words={"9am": "nine A-M"}),
    case("9AM", "nine A-M"),
    case("11 A.M. sharp", "eleven A-M sharp"),
    case("12pm", "twelve P-M"),
    case("3:30:15", "three thirty and fifteen seconds"),
    case("0:30", "zero thirty"),
    case("00:00", "zero hundred"),
    case("24:00", "twenty-four hundred"),
    case("9am-5pm", "nine A-M to five P-M", words={"9am-5pm": "nine A-M to five P-M"}),
    case("9 am - 5 pm", "nine A-M to five P-M"),
    case("9-11am", "nine to eleven A-M"),
    case("9:00-17:00", "nine o'clock to seventeen hundred"),
    case("10:30 to 11:45", "ten thirty to eleven forty-five"),
    case("from 9:30am–1pm", "from nine thirty A-M to one P-M"),
    case("At 5:00 PM EST", "At five P-M E-S-T"),
    case("25:30", "twenty-five thirty", id="duration"),
    case("125:00", "one hundred twenty-five to zero zero", id="invalid hour"),
    case("13pm", "thirteen pm", id="invalid meridiem hour"),
    case("3:75", "three to seventy-five", id="invalid minutes"),
    case("at 7:15.", "at seven fifteen."),
    case("The 6:45 train", "The six forty-five train"),
    case("12:00 noon", "twelve o'clock noon"),
    case("4:20 p.m. EST", "four twenty P-M E-S-T"),
    case("ratio 3:2", "ratio three to two", id="ratio not a time"),
    case("16:9 screens", "sixteen to nine screens"),
]  # fmt: skip

ORDINALS: list[Any] = [
    case("1st", "first"),
    case("2nd place", "second place"),
    case("3rd", "third"),
    case("4th", "fourth"),
    case("11th", "eleventh"),
    case("22nd", "twenty-second"),
    case("the 21st century", "the twenty-first century"),
    case("101st", "one hundred first"),
    case("1,000th", "one thousandth"),
    case("1ST", "first"),
    case("on the 5th", "on the fifth"),
    case("1st, 2nd and 3rd", "first, second and third"),
]  # fmt: skip

FRACTIONS: list[Any] = [
    case("1/2", "one half"),
    case("3/4", "three quarters"),
    case("1/4", "one quarter"),
    case("2/3", "two thirds"),
    case("1/3", "one third"),
    case("5/8", "five eighths"),
    case("1/8 inch", "one eighth inch"),
    case("1/100", "one one hundredth"),
    case("7/3", "seven over three"),
    case("1 1/2 cups", "one and a half cups", {"1": "one and", "1/2": "a half"}),
    case("2 3/4", "two and three quarters"),
    case("24/7", "twenty-four seven"),
    case("50/50", "fifty fifty"),
    case("½", "one half"),
    case("2½", "two and a half"),
    case("¾ cup", "three quarters cup"),
    case("3/4 of the 12/05/2024 meeting",
         "three quarters of the December fifth twenty twenty-four meeting",
         {"3/4": "three quarters", "12/05/2024": "December fifth twenty twenty-four"}),
    case("3/4 of the 12/05/2024 meeting",
         "three quarters of the the twelfth of May twenty twenty-four meeting",
         date_order="dmy", id="tricky dmy"),
    case("1/200", "one over two hundred"),
    case("about 2/3 of them", "about two thirds of them"),
    case("1/2 tsp salt", "one half teaspoon salt", {"tsp": "teaspoon"}),
    case("1 1/2 tbsp oil", "one and a half tablespoons oil"),
    case("He scored 98/100.", "He scored ninety-eight out of one hundred."),
    case("A score of 7.5/10", "A score of seven point five out of ten"),
]  # fmt: skip

PERCENTAGES: list[Any] = [
    case("50%", "fifty percent", words={"50%": "fifty percent"}),
    case("3.5%", "three point five percent"),
    case("-2%", "minus two percent"),
    case("+5%", "plus five percent"),
    case("100 %", "one hundred percent"),
    case("10-15%", "ten to fifteen percent", words={"10-15%": "ten to fifteen percent"}),
    case("0.1%", "zero point one percent"),
    case("1%", "one percent"),
    case("up 12% today", "up twelve percent today"),
    case("(25%)", "(twenty-five percent)"),
    case("±2%", "plus or minus two percent"),
]  # fmt: skip

UNITS: list[Any] = [
    case("5 km", "five kilometers", {"5": "five", "km": "kilometers"},
         words={"5": "five", "km": "kilometers"}),
    case("1 km", "one kilometer"),
    case("0.5 km", "zero point five kilometers"),
    case("5km", "five kilometers", words={"5km": "five kilometers"}),
    case("72°F",
         "seventy-two degrees Fahrenheit", words={"72°F": "seventy-two degrees Fahrenheit"}),
    case("72 °F", "seventy-two degrees Fahrenheit"),
    case("-5°C", "minus five degrees Celsius"),
    case("1°C", "one degree Celsius"),
    case("37 ℃", "thirty-seven degrees Celsius"),
    case("90°", "ninety degrees"),
    case("3 GB", "three gigabytes"),
    case("1 TB", "one terabyte"),
    case("512MB", "five hundred twelve megabytes"),
    case("10 kg", "ten kilograms"),
    case("10kg", "ten kilograms"),
    case("2 lbs", "two pounds"),
    case("8 oz", "eight ounces"),
    case("100 mph", "one hundred miles per hour"),
    case("60 km/h", "sixty kilometers per hour"),
    case("9.8 m/s", "nine point eight meters per second"),
    case("500 ml", "five hundred milliliters"),
    case("2L", "two liters"),
    case("2 L", "two L", id="lone letter unit needs no space"),
    case("3m", "three meters"),
    case("3 m", "three m", id="lone m after space"),
    case("2 L of water", "two liters of water", id="lone letter unit before of"),
    case("500 g of flour", "five hundred grams of flour"),
    case("1 m of cable", "one meter of cable"),
    case("Plan 9 s offer", "Plan nine s offer", id="of only as a word"),
    case("5 GHz", "five gigahertz"),
    case("10 Mbps", "ten megabits per second"),
    case("100 W", "one hundred watts"),
    case("5 V", "five volts"),
    case("60W", "sixty watts"),
    case("50 kWh", "fifty kilowatt hours"),
    case("5 mg", "five milligrams"),
    case("250 ms", "two hundred fifty milliseconds"),
    case("30 min", "thirty minutes"),
    case("2 hrs", "two hours"),
    case("5 ft", "five feet"),
    case("1 ft", "one foot"),
    case("10 cm", "ten centimeters"),
    case("20 sq ft", "twenty square feet"),
    case("100 m²", "one hundred square meters"),
    case("85 dB", "eighty-five decibels"),
    case("1920 px", "one thousand nine hundred twenty pixels"),
    case("5 mi", "five miles"),
    case("5'11\"", "five feet eleven inches", {"5'": "five feet", "11\"": "eleven inches"}),
    case("6'2\" tall", "six feet two inches tall"),
    case("6′", "six feet"),
    case("6' tall", "six feet tall"),
    case("'5' is a digit", "'five' is a digit", id="quoted digit not feet"),
    case("12″", "twelve inches"),
    case("~5 km", "about five kilometers"),
    case("5 km/day", "five kilometers per day"),
    case("3 GB/s", "three gigabytes per second"),
    case("4K video", "four K video"),
]  # fmt: skip

PHONES: list[Any] = [
    case("Call 555-123-4567", "Call five five five, one two three, four five six seven",
         {"555": "five five five", "123": "one two three", "4567": "four five six seven"},
         words={"555-123-4567": "five five five, one two three, four five six seven"}),
    case("(555) 123-4567", "five five five, one two three, four five six seven",
         words={"555": "five five five", "123-4567": "one two three, four five six seven"}),
    case("555.123.4567", "five five five, one two three, four five six seven"),
    case("+1 555-123-4567", "plus one, five five five, one two three, four five six seven"),
    case("1-800-555-1234", "one, eight zero zero, five five five, one two three four"),
    case("555-1234", "five five five, one two three four"),
    case("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
    case("+33 1 23 45 67 89", "plus three three, one, two three, four five, six seven, eight nine"),
    case("Call (555) 123-4567.", "Call five five five, one two three, four five six seven."),
    case("Call 911", "Call nine hundred eleven", id="short number"),
    case("ext. 555-0100", "ext. five five five, zero one zero zero"),
    case("+1 (555) 123-4567", "plus one, five five five, one two three, four five six seven"),
    case("555-123-45678", "five hundred fifty-five-one hundred twenty-three-forty-five "
                          "thousand six hundred seventy-eight", id="not a phone"),
    case("tel: 555-123-4567", "tel: five five five, one two three, four five six seven"),
    case("+49 30 12345678", "plus four nine, three zero, one two three four five six seven eight"),
]  # fmt: skip

YEARS: list[Any] = [
    case("in 1999", "in nineteen ninety-nine", {"1999": "nineteen ninety-nine"}),
    case("1999 people", "one thousand nine hundred ninety-nine people"),
    case("1999 was a great year.", "nineteen ninety-nine was a great year."),
    case("since 2005", "since two thousand five"),
    case("in 2000", "in two thousand"),
    case("in 2010", "in twenty ten"),
    case("in 1905", "in nineteen oh-five"),
    case("in 1800", "in eighteen hundred"),
    case("in 1066", "in ten sixty-six"),
    case("The 2024 election", "The twenty twenty-four election"),
    case("We sold 1500 units in 2020.",
         "We sold one thousand five hundred units in twenty twenty."),
    case("about 1200 people", "about one thousand two hundred people"),
    case("It cost 1500 dollars", "It cost one thousand five hundred dollars"),
    case("by 2030", "by twenty thirty"),
    case("from 1939 to 1945", "from nineteen thirty-nine to nineteen forty-five"),
    case("500 BC", "five hundred B-C"),
    case("1200 AD", "twelve hundred A-D"),
    case("Windows 2000", "Windows two thousand"),
    case("2099", "twenty ninety-nine"),
    case("2100 people", "two thousand one hundred people"),
    case("3000 years", "three thousand years"),
    case("in the summer of 1969", "in the summer of nineteen sixty-nine"),
    case("over 2000 cars", "over two thousand cars"),
    case("1999.", "nineteen ninety-nine."),
    case("in 1999 and 2001", "in nineteen ninety-nine and two thousand one"),
    case("2,024 votes", "two thousand twenty-four votes"),
    case("The year is 2024 and", "The year is twenty twenty-four and"),
    case("The total is 1500 people.", "The total is one thousand five hundred people."),
    case("Q3 2024 revenue", "Q three twenty twenty-four revenue", id="quarter cue"),
    case("FY24 results", "F-Y twenty-four results"),
    case("The RTX 4090 has", "The R-T-X forty ninety has", id="model number"),
    case("GTX 1080", "G-T-X ten eighty"),
    case("in 1999", "in nineteen ninety-nine", speller="inflect", id="inflect year"),
    case("2005", "two thousand and five", language="en-gb", id="en-gb and"),
]  # fmt: skip

DECADES: list[Any] = [
    case("The 1990s", "The nineteen nineties", {"1990s": "nineteen nineties"}),
    case("the '80s", "the eighties", words={"'80s": "eighties"}),
    case("the ’80s", "the eighties"),
    case("the 90s", "the nineties"),
    case("the 1900s", "the nineteen hundreds"),
    case("the 2000s", "the two thousands"),
    case("the 2010s", "the twenty tens"),
    case("1960's music", "nineteen sixties music"),
    case("in their 40s", "in their forties"),
]  # fmt: skip

RANGES: list[Any] = [
    case("2019-2021", "twenty nineteen to twenty twenty-one",
         {"2019": "twenty nineteen", "-": "to", "2021": "twenty twenty-one"}),
    case("2019–2021", "twenty nineteen to twenty twenty-one"),
    case("1939 – 1945", "nineteen thirty-nine to nineteen forty-five"),
    case("2019-21", "twenty nineteen to twenty-one"),
    case("5-10 km", "five to ten kilometers", words={"5-10": "five to ten", "km": "kilometers"}),
    case("5-10km", "five to ten kilometers"),
    case("pages 10-20", "pages ten to twenty"),
    case("3-2 win", "three to two win"),
    case("1.5-2.5 kg", "one point five to two point five kilograms"),
    case("10-15%", "ten to fifteen percent"),
    case("ages 18-25", "ages eighteen to twenty-five"),
    case("1-2 hours", "one to two hours"),
    case("100-200 W", "one hundred to two hundred watts"),
    case("1,000-2,000", "one thousand to two thousand"),
    case("20-30°C", "twenty to thirty degrees Celsius"),
    case("20°C–25°C", "twenty degrees Celsius to twenty-five degrees Celsius"),
    case("5 km-10 km", "five kilometers to ten kilometers"),
]  # fmt: skip

NUMBERS: list[Any] = [
    case("version 2.0.1",
         "version two point zero point one", {"2.0.1": "two point zero point one"}),
    case("v2.0.1",
         "version two point zero point one", words={"v2.0.1": "version two point zero point one"}),
    case("v1.10", "version one point ten"),
    case("Python 3.11", "Python three point eleven"),
    case("iOS 17.2", "eye O-S seventeen point two"),
    case("3.11", "three point one one"),
    case("3.14", "three point one four"),
    case("0.5", "zero point five"),
    case(".5", "point five"),
    case("1.50", "one point five zero"),
    case("Version 2.0.1-beta", "Version two point zero point one-beta"),
    case("v2 is out", "version two is out"),
    case("192.168.1.1", "one nine two dot one six eight dot one dot one"),
    case("10.0.0.1:8080", "one zero dot zero dot zero dot one port eight thousand eighty"),
    case("1,234,567", "one million two hundred thirty-four thousand five hundred sixty-seven"),
    case("42", "forty-two"),
    case("0", "zero"),
    case("007", "zero zero seven"),
    case("1234567890", "one two three four five six seven eight nine zero"),
    case("-5", "minus five"),
    case("+3", "plus three"),
    case("~10", "about ten"),
    case("<5", "less than five"),
    case("over >10 items", "over more than ten items"),
    case(">10", "ten", id="line-start quote mark"),
    case("#1", "number one"),
    case("1920x1080", "one thousand nine hundred twenty by one thousand eighty"),
    case("3x faster", "three times faster"),
    case("2 x 4", "two by four"),
    case("x86", "x eighty-six"),
    case("COVID-19", "COVID-nineteen"),
    case("GPT-4", "G-P-T-four"),
    case("mp3", "mp three"),
    case("H2O", "H two O"),
    case("3D", "three D"),
    case("Go 2. Then", "Go two. Then"),
    case("1, 2, 3", "one, two, three"),
    case("2*3", "two times three"),
    case("2 * 3", "two times three"),
    case("1.5x", "one point five times"),
    case("70B parameters", "seventy billion parameters"),
    case("1.8T tokens", "one point eight trillion tokens"),
    case("5M users", "five million users"),
    case("Ratio 1:1000.", "Ratio one to one thousand."),
    case("Ages 18+ only", "Ages eighteen plus only"),
    case("Python 3.10+", "Python three point ten plus"),
    case("No. 5", "number five", {"No": "number"}),
    case("p. 12", "page twelve"),
    case("Fig. 3", "figure three"),
]  # fmt: skip

ABBREVIATIONS: list[Any] = [
    case("Dr. Smith lives on Elm St.", "Doctor Smith lives on Elm Street.",
         {"Dr": "Doctor", "St": "Street"}, words={"Dr": "Doctor", "St": "Street", "Elm": None}),
    case("St. Louis", "Saint Louis"),
    case("on St. Mark's Place", "on Saint Mark's Place"),
    case("Main St. and Oak Ave.", "Main Street and Oak Avenue."),
    case("Sunset Dr. is closed", "Sunset Drive is closed"),
    case("Mr. Smith", "Mister Smith"),
    case("Mrs. Jones", "Missus Jones"),
    case("Ms. Lee", "Miz Lee"),
    case("Mr Smith", "Mister Smith"),
    case("Prof. Xavier", "Professor Xavier"),
    case("John Smith Jr. is here", "John Smith Junior is here"),
    case("Mt. Everest", "Mount Everest"),
    case("e.g. this", "for example this", {"e.g": "for example", ".": ""}),
    case("E.g. this", "For example this"),
    case("i.e. that", "that is that"),
    case("apples, pears, etc.", "apples, pears, et cetera."),
    case("apples, etc. and more", "apples, et cetera and more"),
    case("etc. The end", "et cetera. The end"),
    case("cats vs. dogs", "cats versus dogs"),
    case("cats vs dogs", "cats versus dogs"),
    case("approx. 5 km", "approximately five kilometers"),
    case("cf. chapter two", "compare chapter two"),
    case("a.k.a. Bob", "also known as Bob"),
    case("Smith et al. found", "Smith et al found"),
    case("U.S. troops", "U-S troops"),
    case("the U.S.", "the U-S."),
    case("U.S.A.", "U-S-A."),
    case("a Ph.D. student", "a P-H-D student"),
    case("a PhD", "a P-H-D"),
    case("Acme Inc. makes", "Acme Incorporated makes"),
    case("Acme Inc.", "Acme Incorporated."),
    case("Jan. is cold", "January is cold"),
    case("w/ sugar and w/o milk", "with sugar and without milk"),
    case("Dept. of Energy", "Department of Energy"),
    case("Gen. Patton", "General Patton"),
    case("the Mr.", "the Mr.", id="title with no name"),
    case("Dr Who", "Doctor Who"),
    case("Mr. & Mrs. Smith", "Mister and Missus Smith"),
    case("The 3rd of May", "The third of May", id="no doubled article"),
    case("Born 12 March 1990 in London.", "Born the twelfth of March nineteen ninety in London."),
]  # fmt: skip

CAPITALS: list[Any] = [
    case("e.g. NASA and the FBI", "for example NASA and the F-B-I",
         {"e.g": "for example", "FBI": "F-B-I"},
         words={"NASA": None, "FBI": "F-B-I", "e.g": "for example"}),
    case("NATO", "NATO"),
    case("HTTP", "H-T-T-P"),
    case("the API", "the A-P-I"),
    case("APIs", "A-P-I's"),
    case("the FBI's", "the F-B-I's"),
    case("CPUs", "C-P-U's"),
    case("LLMs", "L-L-M's"),
    case("CIA", "C-I-A"),
    case("CSV", "C-S-V", id="unknown no vowel"),
    case("XYZ", "X-Y-Z", id="unknown three letters"),
    case("QWERT", "Q-W-E-R-T", id="unknown unpronounceable"),
    case("ZORBA", "ZORBA", id="unknown pronounceable"),
    case("UNIX", "UNIX"),
    case("UCLA", "U-C-L-A"),
    case("IEEE", "I triple E"),
    case("AT&T", "A-T and T"),
    case("R&D", "R and D"),
    case("Q&A", "Q and A"),
    case("OK", "okay"),
    case("THIS IS VERY IMPORTANT NEWS", "THIS IS VERY IMPORTANT NEWS", id="shouting"),
    case("THE IT TEAM IS HERE NOW", "THE IT TEAM IS HERE NOW", id="shouted stopword"),
    case("the IT team", "the I-T team"),
    case("US and UK", "U-S and U-K"),
    case("World War II", "World War two"),
    case("Henry VIII", "Henry the eighth"),
    case("Part IV", "Part four"),
    case("Super Bowl LVII", "Super Bowl fifty-seven"),
    case("Elizabeth II", "Elizabeth the second"),
    case("MP3", "M-P three"),
    case("HTML and CSS", "H-T-M-L and C-S-S"),
    case("SQL", "S-Q-L"),
    case("JSON", "JSON"),
    case("GIF", "GIF"),
    case("The CEO of IBM", "The C-E-O of I-B-M"),
    case("FAQ", "F-A-Q"),
    case("NASA", "N-A-S-A", initialisms=frozenset({"NASA"}), id="user initialism"),
    case("GNU", "GNU", acronyms=frozenset({"GNU"}), id="user acronym"),
    case("FBI", "F B I", letter_style="space", id="space letters"),
    case("I and A", "I and A", id="single letters"),
    case("iPhone", "iPhone"),
    case("THE END.", "THE END.", id="three-letter word"),
    case("TED talks", "TED talks"),
    case("The DOJ", "The D-O-J"),
    case("The RTX card", "The R-T-X card"),
    case("AI-powered", "A-I-powered"),
    case("Do it ASAP", "Do it ASAP"),
]  # fmt: skip

WEB: list[Any] = [
    case("See https://www.example.com/docs/api?x=1 now",
         "See example dot com slash docs slash api now",
         {"https://www.example.com/docs/api?x=1": "example dot com slash docs slash api"},
         words={"https://www.example.com/docs/api?x=1": "example dot com slash docs slash api"}),
    case("https://example.com", "example dot com"),
    case("Visit https://example.com.", "Visit example dot com."),
    case("http://a.b.example.org/x", "a dot b dot example dot org slash x"),
    case("www.python.org", "python dot org"),
    case("github.com", "github dot com"),
    case("see openai.com/blog.", "see openai dot com slash blog."),
    case("example.io", "example dot I-O"),
    case("bbc.co.uk", "bbc dot co dot U-K"),
    case("https://en.wikipedia.org/wiki/Foo_(bar)",
         "en dot wikipedia dot org slash wiki slash Foo (bar)"),
    case("(see https://x.org)", "(see x dot org)"),
    case("https://example.com/a/b/c/d", "example dot com slash a slash b"),
    case("https://example.com/report.pdf", "example dot com slash report dot pdf"),
    case("localhost:8000", "localhost port eight thousand"),
    case("http://localhost:54321/x", "localhost port five four three two one slash x"),
    case("https://my-site.dev/blog-post", "my site dot dev slash blog post"),
    case("Mail jane.doe@example.com", "Mail jane dot doe at example dot com",
         {"jane.doe@example.com": "jane dot doe at example dot com"}),
    case("bob_smith+news@mail.example.org",
         "bob underscore smith plus news at mail dot example dot org"),
    case("Write to info@acme.io.", "Write to info at acme dot I-O."),
    case("user123@x.com", "user one two three at x dot com"),
    case("mailto:a@b.com", "a at b dot com"),
    case("[the docs](https://example.com/docs)", "the docs", words={"the": None, "docs": None}),
    case("![a cat](cat.png)", "image a cat"),
    case("<https://x.org>", "x dot org"),
    case("[](https://x.org)", "x dot org"),
    case("file.txt and e.g. this", "file.txt and for example this", id="not domains"),
    case("Node.js", "Node.js"),
]  # fmt: skip

EMOJI: list[Any] = [
    case("Great job 👍", "Great job", {"👍": ""}, words={"👍": ""}),
    case("Great job 👍", "Great job thumbs up", {"👍": "thumbs up"}, emoji="name",
         words={"👍": "thumbs up"}),
    case("👍🏽", "thumbs up", emoji="name", id="skin tone"),
    case("🚀🚀", "rocket rocket", emoji="name"),
    case("Launch🚀now", "Launch rocket now", emoji="name"),
    case("Launch🚀now", "Launch now", id="dropped between words"),
    case("❤️ it", "red heart it", emoji="name"),
    case("1️⃣ first", "keycap one first", emoji="name"),
    case("🇺🇸 flag", "United States flag", emoji="name"),
    case("👨‍👩‍👧", "family man woman girl", emoji="name"),
    case("Wow 😀!", "Wow grinning face!", emoji="name"),
    case("Wow 😀!", "Wow !"),
    case("© 2024 Acme", "twenty twenty-four Acme", id="copyright dropped"),
]  # fmt: skip

MARKDOWN: list[Any] = [
    case("**Bold** move", "Bold move", words={"Bold": None, "move": None}),
    case("*italic* and _it_", "italic and it"),
    case("~~gone~~", "gone"),
    case("***both***", "both"),
    case("2*3 and snake_case", "two times three and snake_case"),
    case("# Title", "Title"),
    case("### Sub heading ###", "Sub heading"),
    case("- item one", "item one"),
    case("* item two", "item two"),
    case("+ item three", "item three"),
    case("- [x] done", "done"),
    case("1. First step", "one. First step"),
    case("> quoted text", "quoted text"),
    case("---", ""),
    case("Line one\n\n***\n\nLine two", "Line one Line two"),
    case("| Name | Age |", "Name, Age", words={"Name": None, "Age": None}),
    case("|---|---|", ""),
    case("| :--- | ---: |", ""),
    case("| Apple | $1.50 |", "Apple, one dollar and fifty cents"),
    case("| Name | Age |\n|------|-----|\n| Bob | 42 |", "Name, Age Bob, forty-two"),
    case("| a | b | c |", "a, b, c"),
    case("Use `pip install foo`", "Use pip install foo"),
    case("Call `os.path.join(a, b)` now", "Call os dot path dot join a b now"),
    case("Set `MAX_RETRIES = 5`", "Set MAX RETRIES equals five"),
    case("The `__init__` method", "The init method"),
    case("- **Step 1:** Install", "Step one: Install"),
    case("1. Open\n2. Edit line 42\n3. Save", "one. Open two. Edit line forty-two three. Save"),
    case("## Results (2024)", "Results (twenty twenty-four)"),
    case("> **Note**: see [docs](https://x.org).", "Note: see docs."),
    case("| GPT-4 | 1.8T | 86.4% |",
         "G-P-T-four, one point eight trillion, eighty-six point four percent"),
    case("`snake_case_name`", "snake case name", words={"snake_case_name": "snake case name"}),
    case("`getUser()`", "get User"),
    case("`a.b`", "a dot b"),
    case("`x == 1`", "x equals equals one"),
    case("`--verbose`", "dash dash verbose"),
    case("`python3`", "python three"),
    case("```python\nprint(1)\n```", "Python code block", words={
        "```python\nprint(1)\n```": "Python code block"}),
    case("```python\nprint(1)\n```", "", code_blocks="skip", id="fence skipped"),
    case("Here:\n```\nls -la\n```\nDone.", "Here: code block Done."),
    case("```js\nlet x = 1;", "JavaScript code block", id="unclosed fence"),
    case("```", "", id="lone fence"),
    case("~~~bash\necho hi\n~~~", "shell code block"),
    case("Text with <b>bold</b> tag", "Text with bold tag"),
    case("A footnote[^1].", "A footnote."),
    case("# 5 Tips for 2024", "five Tips for twenty twenty-four"),
]  # fmt: skip

SYMBOLS: list[Any] = [
    case("A & B", "A and B"),
    case("2 + 2 = 4", "two plus two equals four"),
    case("and/or", "and or"),
    case("yes/no", "yes no"),
    case("@alice said", "at alice said"),
    case("x → y", "x to y"),
    case("a ≠ b", "a is not equal to b"),
    case("5 ± 1", "five plus or minus one"),
    case("Tom & Jerry", "Tom and Jerry"),
    case("price = $5", "price equals five dollars"),
]  # fmt: skip

MIXED: list[Any] = [
    case("Send $1,234.56 to jane@x.com by Dec 5, 2024.",
         "Send one thousand two hundred thirty-four dollars and fifty-six cents to jane at x dot"
         " com by December fifth, twenty twenty-four."),
    case("The price is 10-15% higher, i.e. $5M.",
         "The price is ten to fifteen percent higher, that is five million dollars."),
    case("Meet Dr. Lee at 3:30 pm on 12/05/2024 in Room 101.",
         "Meet Doctor Lee at three thirty P-M on December fifth twenty twenty-four in Room one"
         " hundred one."),
    case("In 1999, 1,500 people paid $20 each.",
         "In nineteen ninety-nine, one thousand five hundred people paid twenty dollars each."),
    case("NASA's budget grew 5% in 2020.", "NASA's budget grew five percent in twenty twenty."),
    case("It's 72°F and sunny.", "It's seventy-two degrees Fahrenheit and sunny."),
    case("**Note:** call 555-1234 before 5pm.",
         "Note: call five five five, one two three four before five P-M."),
    case("- Buy 2 kg of apples (about $5)",
         "Buy two kilograms of apples (about five dollars)"),
    case("The 1990s were great; the 2000s, less so.",
         "The nineteen nineties were great; the two thousands, less so."),
    case("Download v2.0.1 from https://example.com/dl.",
         "Download version two point zero point one from example dot com slash dl."),
    case("Temperatures of 20-25°C are ideal.",
         "Temperatures of twenty to twenty-five degrees Celsius are ideal."),
    case("He ran 5 km in 25:30.", "He ran five kilometers in twenty-five thirty."),
    case("Q3 2024 revenue", "Q three twenty twenty-four revenue"),
    case("“5 km,” she said.", "“five kilometers,” she said."),
    case("Hello, world!", "Hello, world!"),
    case("", ""),
    case("   ", ""),
    case("Plain text stays.", "Plain text stays.", words={"Plain": None, "stays": None}),
    case("See the FAQ at faq.example.com.", "See the F-A-Q at faq dot example dot com."),
    case("Up 3.5% YoY", "Up three point five percent YoY"),
    case("CO2 at 420 ppm", "C-O two at four hundred twenty parts per million"),
    case("Chapter 3: 1/2 of 10 is 5.", "Chapter three: one half of ten is five."),
    case("at 9am, 12pm and 5:30pm", "at nine A-M, twelve P-M and five thirty P-M"),
    case("The U.S. GDP grew 2.1% in Q2.", "The U-S G-D-P grew two point one percent in Q two."),
    case("Call +1 (555) 123-4567 or email help@acme.com!",
         "Call plus one, five five five, one two three, four five six seven or email help at"
         " acme dot com!"),
]  # fmt: skip


@pytest.mark.parametrize("item", MONEY)
def test_money(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", DATES)
def test_dates(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", TIMES)
def test_times(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", ORDINALS)
def test_ordinals(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", FRACTIONS)
def test_fractions(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", PERCENTAGES)
def test_percentages(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", UNITS)
def test_units(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", PHONES)
def test_phones(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", YEARS)
def test_years(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", DECADES)
def test_decades(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", RANGES)
def test_ranges(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", NUMBERS)
def test_numbers(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", ABBREVIATIONS)
def test_abbreviations(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", CAPITALS)
def test_capitals(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", WEB)
def test_urls_and_emails(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", EMOJI)
def test_emoji(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", MARKDOWN)
def test_markdown_and_code(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", SYMBOLS)
def test_symbols(item: Case) -> None:
    run_case(item)


@pytest.mark.parametrize("item", MIXED)
def test_mixed(item: Case) -> None:
    run_case(item)
