"""Demo data for a local stack, seeded through the public HTTP API.

Nothing here touches a table directly: every product, customer and interaction goes
through `POST /products`, `POST /customers` and `POST /customers/{id}/interactions`, so the demo data
obeys exactly the same validation as real traffic. The transport is injected as a
`post(path, json_body) -> (status_code, response_json)` callable: a Chalice test
client, `requests` against `chalice local`, or a fake in unit tests.

The customers write in Swedish, Finnish, Slovenian, Tagalog and English, and every
note and subject is written in the customer's own language. Histories are built
from a small, stable product catalogue so that purchase habits (the same SKU
bought again at roughly regular intervals) are visible in the data.

Everything is deterministic for a given `seed` and `now`.

Bodies returned by `demo_interactions` may carry two private keys that are not part
of the API contract and are removed by `seed` before posting:

* `_ref` on a purchase: a local reference for that purchase;
* `_purchase_ref` on a return: the `_ref` of the purchase it returns, which `seed`
  replaces with `purchase_id`, the id from that purchase's 201 response.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

Post = Callable[[str, dict], tuple[int, dict]]

__all__ = ["Post", "demo_customers", "demo_interactions", "demo_products", "seed"]

# How far back the generated histories reach, in days before `now`.
HISTORY_DAYS = 200

# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Product:
    names: dict[str, str]  # language -> product name
    prices: dict[str, str]  # currency -> unit price, a decimal string with 2 places
    max_qty: int = 1  # for one-off purchases
    return_reason: str = "regret"  # key into _TEXTS[lang]["return_reason"]
    companion: str | None = None  # a SKU often bought together with this one


_CATALOGUE: dict[str, _Product] = {
    "SKU-COFFEE-500": _Product(
        names={
            "en": "Coffee beans, medium roast 500 g",
            "sv": "Kaffebönor, mellanrost 500 g",
            "fi": "Kahvipavut, keskipaahto 500 g",
            "sl": "Kavna zrna, srednje pražena, 500 g",
            "tl": "Coffee beans, medium roast 500 g",
        },
        prices={"EUR": "12.90", "SEK": "139.00", "PHP": "695.00"},
        max_qty=2,
        companion="SKU-FILTER-100",
    ),
    "SKU-FILTER-100": _Product(
        names={
            "en": "Coffee filters, 100 pcs",
            "sv": "Kaffefilter, 100 st",
            "fi": "Kahvinsuodatinpussit, 100 kpl",
            "sl": "Filtri za kavo, 100 kosov",
            "tl": "Coffee filters, 100 piraso",
        },
        prices={"EUR": "3.90", "SEK": "39.00", "PHP": "185.00"},
        max_qty=2,
    ),
    "SKU-TEA-GREEN-100": _Product(
        names={
            "en": "Green tea, loose leaf 100 g",
            "sv": "Grönt te, löste 100 g",
            "fi": "Vihreä tee, irtotee 100 g",
            "sl": "Zeleni čaj, rinfuza 100 g",
            "tl": "Green tea, loose leaf 100 g",
        },
        prices={"EUR": "7.50", "SEK": "79.00", "PHP": "390.00"},
        max_qty=2,
        companion="SKU-MUG-CERAMIC",
    ),
    "SKU-MUG-CERAMIC": _Product(
        names={
            "en": "Ceramic mug 350 ml",
            "sv": "Keramikmugg 350 ml",
            "fi": "Keraaminen muki 350 ml",
            "sl": "Keramična skodelica 350 ml",
            "tl": "Ceramic mug 350 ml",
        },
        prices={"EUR": "11.50", "SEK": "129.00", "PHP": "550.00"},
        max_qty=2,
        return_reason="damaged",
    ),
    "SKU-BOOK-NOVEL": _Product(
        names={
            "en": "Novel, hardback",
            "sv": "Roman, inbunden",
            "fi": "Romaani, kovakantinen",
            "sl": "Roman, trda vezava",
            "tl": "Nobela, hardbound",
        },
        prices={"EUR": "24.90", "SEK": "279.00", "PHP": "1295.00"},
    ),
    "SKU-BOOK-COOK": _Product(
        names={
            "en": "Cookbook: Everyday Cooking",
            "sv": "Kokbok: Vardagsmat",
            "fi": "Keittokirja: Arjen ruoat",
            "sl": "Kuharska knjiga: Vsakdanje jedi",
            "tl": "Cookbook: Lutong Bahay",
        },
        prices={"EUR": "29.90", "SEK": "329.00", "PHP": "1490.00"},
    ),
    "SKU-SHOES-RUN": _Product(
        names={
            "en": "Running shoes",
            "sv": "Löparskor",
            "fi": "Juoksukengät",
            "sl": "Tekaški copati",
            "tl": "Running shoes",
        },
        prices={"EUR": "119.00", "SEK": "1299.00", "PHP": "5990.00"},
        return_reason="size",
        companion="SKU-SOCKS-RUN-3P",
    ),
    "SKU-SOCKS-RUN-3P": _Product(
        names={
            "en": "Running socks, 3 pairs",
            "sv": "Löparstrumpor, 3-pack",
            "fi": "Juoksusukat, 3 paria",
            "sl": "Tekaške nogavice, 3 pari",
            "tl": "Running socks, 3 pares",
        },
        prices={"EUR": "14.90", "SEK": "159.00", "PHP": "749.00"},
        max_qty=2,
        return_reason="size",
    ),
    "SKU-BOTTLE-750": _Product(
        names={
            "en": "Water bottle 750 ml",
            "sv": "Vattenflaska 750 ml",
            "fi": "Juomapullo 750 ml",
            "sl": "Steklenica za vodo 750 ml",
            "tl": "Water bottle 750 ml",
        },
        prices={"EUR": "19.90", "SEK": "219.00", "PHP": "990.00"},
        return_reason="damaged",
    ),
    "SKU-HEADPHONES-BT": _Product(
        names={
            "en": "Wireless headphones",
            "sv": "Trådlösa hörlurar",
            "fi": "Langattomat kuulokkeet",
            "sl": "Brezžične slušalke",
            "tl": "Wireless headphones",
        },
        prices={"EUR": "149.00", "SEK": "1590.00", "PHP": "7490.00"},
        return_reason="defect",
        companion="SKU-CABLE-USBC",
    ),
    "SKU-CABLE-USBC": _Product(
        names={
            "en": "USB-C cable 1 m",
            "sv": "USB-C-kabel 1 m",
            "fi": "USB-C-kaapeli 1 m",
            "sl": "Kabel USB-C, 1 m",
            "tl": "USB-C cable 1 m",
        },
        prices={"EUR": "9.90", "SEK": "99.00", "PHP": "495.00"},
        max_qty=2,
        return_reason="defect",
    ),
    "SKU-SUPPORT-12M": _Product(
        names={
            "en": "Premium support (12 months)",
            "sv": "Premiumsupport (12 månader)",
            "fi": "Premium-tuki (12 kk)",
            "sl": "Premium podpora (12 mesecev)",
            "tl": "Premium support (12 buwan)",
        },
        prices={"EUR": "79.00", "SEK": "849.00", "PHP": "3990.00"},
    ),
}

# --------------------------------------------------------------------------- texts
#
# Slots are parallel across languages: complaint slot 3 is the critical one over chat
# in every language, and so on. Customers pick slots by their index, which keeps the
# mix of severities and channels even however the random generator falls.

# (severity, channel) of each complaint slot.
_COMPLAINT_SLOTS = (
    ("low", "email"),
    ("medium", "phone"),
    ("high", "letter"),
    ("critical", "chat"),
    ("medium", "social"),
    ("low", "store"),
)
_INQUIRY_CHANNELS = ("phone", "email", "chat", "video", "social", "web")
_FEEDBACK_CHANNELS = ("web", "email", "social", "mobile")
_FEEDBACK_AFTER_RETURN = 2  # the feedback slot thanking us for help with a return
_VISIT_CHANNELS = ("store", "store", "video")
_RETURN_CHANNELS = ("store", "web", "letter")

_TEXTS: dict[str, dict] = {
    "sv": {
        "purchase": {
            "store": (
                "Köp i butiken, betalt med kort.",
                "Handlade i butiken och fick hjälp att hitta rätt vara.",
            ),
            "web": (
                "Beställning via webbshoppen med hemleverans.",
                "Webborder, hämtas i butiken.",
            ),
            "mobile": (
                "Beställning i appen, leverans till paketskåp.",
                "Köp i mobilappen med sparat kort.",
            ),
        },
        "habit": "Stamköp – samma vara som vanligt.",
        "return_reason": {
            "size": "Storleken passade inte.",
            "defect": "Varan slutade fungera efter några dagar.",
            "damaged": "Varan kom fram skadad.",
            "regret": "Kunden ångrade köpet; varan är oanvänd och i originalförpackningen.",
        },
        "return_channel": {
            "store": "Returen togs emot i butiken och pengarna betalades tillbaka till kortet.",
            "web": "Returen anmäldes på webben; returetikett skickad via e-post.",
            "letter": "Paketet kom tillbaka med posten tillsammans med en ifylld retursedel.",
        },
        "complaint": (
            (
                "Kvittot kom inte via e-post",
                "Hej! Jag fick inget kvitto efter mitt senaste köp. Kan ni skicka det igen? Tack på förhand.",
            ),
            (
                "Försenad leverans",
                (
                    "Kunden ringde om en beställning som är fyra dagar försenad. "
                    "Lugn och trevlig, men vill gärna veta när paketet kommer."
                ),
            ),
            (
                "Dubbeldebiterad för samma order",
                (
                    "Jag har blivit debiterad två gånger för samma order. "
                    "Jag bifogar en kopia av kontoutdraget och ber er vänligen "
                    "betala tillbaka det dubbla beloppet."
                ),
            ),
            (
                "Laddkabeln blev het och luktade bränt",
                (
                    "Kabeln blev väldigt varm under laddningen och började lukta bränt. "
                    "Jag drog ur den direkt. Ingen skadades, men jag vill gärna att ni undersöker saken."
                ),
            ),
            (
                "Lång kö i butiken",
                (
                    "Jag stod i kö i tjugo minuter i lördags eftersom bara en kassa var öppen. "
                    "Personalen var jättetrevlig, men det behövs fler på helgerna."
                ),
            ),
            (
                "Hyllpriset stämde inte",
                "Hyllkanten visade ett lägre pris än kassan. Mellanskillnaden betalades tillbaka direkt.",
            ),
        ),
        "inquiry": (
            "Frågade om premiumsupporten även gäller hörlurar som köpts i butik.",
            "Hej! Finns kaffebönorna i 1 kg-förpackning? Vänliga hälsningar",
            "Undrade hur lång leveranstiden till Norrland är just nu.",
            "Videosamtal: kunden behövde hjälp att koppla hörlurarna till datorn.",
            "Frågade i ett direktmeddelande om löparskorna finns i halvstorlekar.",
            "Kontaktformulär: vill ändra leveransadress för kommande beställningar.",
        ),
        "feedback": (
            "Omdöme på webben: Fantastiskt gott kaffe och snabb leverans. Fem stjärnor!",
            "Tack för ett fint bemötande i butiken, personalen tog sig verkligen tid.",
            "Tack för snabb hjälp med returen, det gick smidigt!",
            "Betyg i appen: Appen är enkel att använda, men jag saknar mörkt läge.",
        ),
        "visit": (
            "Tittade in i butiken för att se nyheterna i sortimentet.",
            "Var med på kaffeprovningen i butiken.",
            "Videomöte med vår produktrådgivare om hörlurar för pendling.",
        ),
    },
    "fi": {
        "purchase": {
            "store": (
                "Ostos myymälässä, maksettu kortilla.",
                "Asiakas asioi myymälässä, ja myyjä auttoi löytämään sopivan tuotteen.",
            ),
            "web": (
                "Tilaus verkkokaupasta kotiinkuljetuksella.",
                "Verkkotilaus, nouto myymälästä.",
            ),
            "mobile": (
                "Tilaus sovelluksesta, toimitus pakettiautomaattiin.",
                "Ostos mobiilisovelluksessa tallennetulla kortilla.",
            ),
        },
        "habit": "Toistuva ostos – sama tuote kuin yleensä.",
        "return_reason": {
            "size": "Koko ei sopinut.",
            "defect": "Tuote lakkasi toimimasta muutaman päivän jälkeen.",
            "damaged": "Tuote saapui vaurioituneena.",
            "regret": "Asiakas muutti mielensä; tuote on käyttämätön ja alkuperäisessä pakkauksessa.",
        },
        "return_channel": {
            "store": "Palautus otettiin vastaan myymälässä, ja rahat palautettiin kortille.",
            "web": "Palautus tehtiin verkossa; palautustarra lähetettiin sähköpostilla.",
            "letter": "Paketti palautettiin postitse täytetyn palautuslomakkeen kanssa.",
        },
        "complaint": (
            (
                "Kuitti ei tullut sähköpostiin",
                (
                    "Hei! En saanut kuittia viimeisimmästä ostoksestani. "
                    "Voisitteko lähettää sen uudelleen? Kiitos jo etukäteen."
                ),
            ),
            (
                "Toimitus myöhässä",
                (
                    "Asiakas soitti tilauksesta, joka on jo neljä päivää myöhässä. "
                    "Hän oli rauhallinen, mutta haluaisi tietää, milloin paketti saapuu."
                ),
            ),
            (
                "Sama tilaus veloitettu kahdesti",
                (
                    "Minulta on veloitettu sama tilaus kahdesti. "
                    "Liitän mukaan kopion tiliotteesta ja pyydän palauttamaan ylimääräisen veloituksen."
                ),
            ),
            (
                "Latauskaapeli kuumeni ja haisi palaneelta",
                (
                    "Kaapeli kuumeni latauksen aikana todella kuumaksi ja alkoi haista palaneelta. "
                    "Irrotin sen heti pistorasiasta. "
                    "Kukaan ei loukkaantunut, mutta toivon, että selvitätte asian."
                ),
            ),
            (
                "Pitkä jono myymälässä",
                (
                    "Jonotin lauantaina kaksikymmentä minuuttia, koska vain yksi kassa oli auki. "
                    "Henkilökunta oli ystävällistä, mutta viikonloppuisin tarvittaisiin lisää väkeä."
                ),
            ),
            (
                "Hyllyhinta ei täsmännyt",
                "Hyllyn hintalapussa oli halvempi hinta kuin kassalla. Erotus hyvitettiin heti.",
            ),
        ),
        "inquiry": (
            "Kysyi, koskeeko Premium-tuki myös myymälästä ostettuja kuulokkeita.",
            "Hei! Onko kahvipapuja saatavilla kilon pakkauksessa? Ystävällisin terveisin",
            "Kysyi, kuinka kauan toimitus Lappiin kestää tällä hetkellä.",
            "Videopuhelu: asiakas tarvitsi apua kuulokkeiden yhdistämisessä tietokoneeseen.",
            "Kysyi yksityisviestillä, saako juoksukenkiä puolikokoina.",
            "Yhteydenottolomake: haluaa vaihtaa toimitusosoitteen tulevia tilauksia varten.",
        ),
        "feedback": (
            "Arvostelu verkossa: Todella hyvää kahvia ja nopea toimitus. Viisi tähteä!",
            "Kiitos mukavasta käynnistä myymälässä – henkilökunta todella paneutui asiaani.",
            "Kiitos nopeasta avusta palautuksen kanssa, kaikki sujui hienosti!",
            "Arvio sovelluksessa: Sovellus on helppokäyttöinen, mutta kaipaisin tummaa teemaa.",
        ),
        "visit": (
            "Kävi myymälässä katsomassa valikoiman uutuuksia.",
            "Osallistui myymälän kahvimaisteluun.",
            "Videotapaaminen tuoteneuvojan kanssa: millaiset kuulokkeet sopivat työmatkoille.",
        ),
    },
    "sl": {
        "purchase": {
            "store": (
                "Nakup v trgovini, plačilo s kartico.",
                "Nakup v trgovini; prodajalec je pomagal izbrati pravi izdelek.",
            ),
            "web": (
                "Naročilo prek spletne trgovine z dostavo na dom.",
                "Spletno naročilo s prevzemom v trgovini.",
            ),
            "mobile": (
                "Naročilo prek aplikacije z dostavo v paketomat.",
                "Nakup v mobilni aplikaciji s shranjeno kartico.",
            ),
        },
        "habit": "Redni nakup – isti izdelek kot običajno.",
        "return_reason": {
            "size": "Velikost ni ustrezala.",
            "defect": "Izdelek je po nekaj dneh prenehal delovati.",
            "damaged": "Izdelek je prispel poškodovan.",
            "regret": "Stranka si je premislila; izdelek je neuporabljen in v originalni embalaži.",
        },
        "return_channel": {
            "store": "Vračilo je bilo sprejeto v trgovini, kupnina je bila vrnjena na kartico.",
            "web": "Vračilo je bilo prijavljeno prek spleta; nalepka za vračilo je bila poslana po e-pošti.",
            "letter": "Paket je prispel po pošti skupaj z izpolnjenim obrazcem za vračilo.",
        },
        "complaint": (
            (
                "Račun ni prišel po e-pošti",
                (
                    "Pozdravljeni! Po zadnjem nakupu mi račun ni prišel na e-pošto. "
                    "Mi ga lahko pošljete še enkrat? Hvala vnaprej."
                ),
            ),
            (
                "Zamuda pri dostavi",
                (
                    "Stranka je poklicala glede naročila, ki zamuja že štiri dni. "
                    "Bila je mirna, a bi rada vedela, kdaj bo paket prispel."
                ),
            ),
            (
                "Dvakrat zaračunano naročilo",
                (
                    "Isto naročilo mi je bilo zaračunano dvakrat. "
                    "Prilagam kopijo bančnega izpiska in prosim za vračilo preveč zaračunanega zneska."
                ),
            ),
            (
                "Polnilni kabel se je pregrel in smrdel po zažganem",
                (
                    "Med polnjenjem se je kabel zelo segrel in začel smrdeti po zažganem. "
                    "Takoj smo ga izključili. "
                    "Nihče ni bil poškodovan, vendar vas prosim, da zadevo preverite."
                ),
            ),
            (
                "Dolga vrsta v trgovini",
                (
                    "V soboto je bilo treba v vrsti čakati dvajset minut, "
                    "ker je bila odprta samo ena blagajna. "
                    "Osebje je bilo prijazno, ob koncih tedna pa bi potrebovali več ljudi."
                ),
            ),
            (
                "Cena na polici se ni ujemala",
                "Na polici je bila navedena nižja cena kot na blagajni. Razliko smo takoj vrnili.",
            ),
        ),
        "inquiry": (
            "Stranka je vprašala, ali premium podpora velja tudi za slušalke, kupljene v trgovini.",
            "Pozdravljeni! Ali imate kavna zrna tudi v pakiranju po 1 kg? Lep pozdrav",
            "Stranka je vprašala, koliko časa trenutno traja dostava v Prekmurje.",
            "Videoklic: stranka je potrebovala pomoč pri povezovanju slušalk z računalnikom.",
            "Vprašanje v zasebnem sporočilu: ali so tekaški copati na voljo tudi v polovičnih številkah?",
            "Spletni obrazec: stranka želi spremeniti naslov za dostavo prihodnjih naročil.",
        ),
        "feedback": (
            "Ocena na spletni strani: Odlična kava in hitra dostava. Pet zvezdic!",
            "Hvala za prijetno izkušnjo v trgovini, osebje si je res vzelo čas zame.",
            "Hvala za hitro pomoč pri vračilu, vse je potekalo gladko!",
            "Ocena v aplikaciji: Aplikacija je preprosta za uporabo, pogrešam pa temni način.",
        ),
        "visit": (
            "Stranka je obiskala trgovino in si ogledala novosti v ponudbi.",
            "Stranka se je udeležila degustacije kave v trgovini.",
            "Video posvet s svetovalcem: katere slušalke so primerne za vožnjo na delo.",
        ),
    },
    "tl": {
        "purchase": {
            "store": (
                "Bumili sa tindahan, nagbayad gamit ang card.",
                "Bumili sa tindahan; tinulungan siya ng staff na hanapin ang tamang produkto.",
            ),
            "web": (
                "Nag-order sa online shop, ipinadala sa bahay.",
                "Online order, kukunin sa tindahan.",
            ),
            "mobile": (
                "Nag-order sa app, ipinadala sa parcel locker.",
                "Bumili sa mobile app gamit ang naka-save na card.",
            ),
        },
        "habit": "Regular na binibili – parehong produkto gaya ng dati.",
        "return_reason": {
            "size": "Hindi kasya ang sukat.",
            "defect": "Tumigil sa paggana ang produkto pagkalipas ng ilang araw.",
            "damaged": "Dumating na sira ang produkto.",
            "regret": "Nagbago ang isip ng customer; hindi pa ito nagagamit at nasa orihinal na balot pa.",
        },
        "return_channel": {
            "store": "Tinanggap ang return sa tindahan at ibinalik ang bayad sa card.",
            "web": "Ini-report ang return online; ipinadala sa email ang return label.",
            "letter": "Dumating sa koreo ang package kasama ang kumpletong return form.",
        },
        "complaint": (
            (
                "Hindi dumating ang resibo sa email",
                (
                    "Magandang araw po! Hindi ko po natanggap ang resibo ng huli kong binili. "
                    "Puwede po bang ipadala ulit? Maraming salamat po."
                ),
            ),
            (
                "Naantala ang delivery",
                (
                    "Tumawag ang customer tungkol sa order na apat na araw nang late. "
                    "Mahinahon siya, pero gusto niyang malaman kung kailan darating ang package."
                ),
            ),
            (
                "Dalawang beses siningil sa iisang order",
                (
                    "Dalawang beses po akong siningil para sa iisang order. "
                    "Kalakip po ang kopya ng aking bank statement. Pakibalik po ang sobrang bayad."
                ),
            ),
            (
                "Uminit nang sobra at amoy-sunog ang charging cable",
                (
                    "Habang nagcha-charge, uminit nang sobra ang cable at nagsimulang mangamoy sunog. "
                    "Agad ko po itong binunot sa saksakan. "
                    "Walang nasaktan, pero sana po ay maimbestigahan ninyo ito."
                ),
            ),
            (
                "Mahabang pila sa tindahan",
                (
                    "Dalawampung minuto po akong pumila noong Sabado dahil isang kahera lang ang bukas. "
                    "Mababait naman ang staff, pero sana po ay may dagdag na tao tuwing weekend."
                ),
            ),
            (
                "Hindi tugma ang presyo sa shelf",
                "Mas mababa ang presyo sa shelf kaysa sa siningil sa kahera. Ibinalik agad ang diperensiya.",
            ),
        ),
        "inquiry": (
            "Nagtanong kung sakop din ng Premium support ang headphones na binili sa tindahan.",
            "Magandang araw po! Mayroon po ba kayong coffee beans na 1 kg ang laman? Salamat po.",
            "Nagtanong kung gaano katagal ang delivery papuntang Davao sa ngayon.",
            "Video call: nagpatulong ang customer na i-connect ang headphones sa kanyang laptop.",
            "Nagtanong sa private message kung may half sizes ang running shoes.",
            "Contact form: gusto niyang palitan ang delivery address para sa mga susunod na order.",
        ),
        "feedback": (
            "Review sa website: Napakasarap ng kape at mabilis ang delivery. Limang bituin!",
            "Salamat po sa magandang karanasan sa tindahan, talagang naglaan ng oras ang staff para sa akin.",
            "Salamat po sa mabilis na tulong sa return, napakadali ng proseso!",
            "Rating sa app: Madaling gamitin ang app, pero sana ay may dark mode.",
        ),
        "visit": (
            "Dumaan sa tindahan para tingnan ang mga bagong dating na produkto.",
            "Dumalo sa coffee tasting sa tindahan.",
            "Video consultation kasama ang product adviser: anong headphones ang bagay sa pag-commute.",
        ),
    },
    "en": {
        "purchase": {
            "store": (
                "In-store purchase, paid by card.",
                "Bought in store; a colleague helped find the right product.",
            ),
            "web": (
                "Web shop order with home delivery.",
                "Online order, click and collect.",
            ),
            "mobile": (
                "Ordered in the app, delivered to a parcel locker.",
                "Mobile app purchase with a saved card.",
            ),
        },
        "habit": "Regular purchase – same item as usual.",
        "return_reason": {
            "size": "The size didn't fit.",
            "defect": "The item stopped working after a few days.",
            "damaged": "The item arrived damaged.",
            "regret": "Customer changed their mind; the item is unused and in its original packaging.",
        },
        "return_channel": {
            "store": "Return received in store and refunded to the card.",
            "web": "Return registered online; a return label was sent by email.",
            "letter": "Parcel came back by post with a completed returns slip.",
        },
        "complaint": (
            (
                "Receipt not received by email",
                (
                    "Hello! I didn't receive a receipt for my latest purchase. Could you send it again? "
                    "Thanks in advance."
                ),
            ),
            (
                "Delivery running late",
                (
                    "Customer called about an order that is four days late. "
                    "Calm and friendly, but would like to know when the parcel will arrive."
                ),
            ),
            (
                "Charged twice for one order",
                (
                    "I have been charged twice for the same order. "
                    "I enclose a copy of my bank statement and kindly ask you "
                    "to refund the duplicate payment."
                ),
            ),
            (
                "Charging cable overheated and smelled of burning",
                (
                    "While charging, the cable became very hot and started to smell of burning. "
                    "I unplugged it straight away. Nobody was hurt, but please look into this."
                ),
            ),
            (
                "Long queue in the shop",
                (
                    "I queued for twenty minutes on Saturday because only one till was open. "
                    "The staff were lovely, but you need more people at weekends."
                ),
            ),
            (
                "Shelf price didn't match",
                (
                    "The shelf label showed a lower price than the till. "
                    "The difference was refunded on the spot."
                ),
            ),
        ),
        "inquiry": (
            "Asked whether Premium support also covers headphones bought in store.",
            "Hello! Do you have the coffee beans in a 1 kg bag? Kind regards",
            "Asked how long delivery to the Highlands currently takes.",
            "Video call: customer needed help pairing the headphones with a laptop.",
            "Asked in a direct message whether the running shoes come in half sizes.",
            "Contact form: would like to change the delivery address for future orders.",
        ),
        "feedback": (
            "Review on the website: Wonderful coffee and quick delivery. Five stars!",
            "Thank you for a lovely visit to the shop, the staff really took their time with me.",
            "Thanks for the quick help with my return, it was so easy!",
            "App rating: Easy to use, but I'd love a dark mode.",
        ),
        "visit": (
            "Popped into the shop to look at the new arrivals.",
            "Came to the coffee tasting in store.",
            "Video consultation with a product adviser about headphones for commuting.",
        ),
    },
}

# --------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class _Habit:
    """The same SKU bought again every `every_days` (± `jitter_days`)."""

    sku: str
    every_days: int
    jitter_days: int
    qty: tuple[int, int]
    channel: str
    companion_chance: float = 0.0


@dataclass(frozen=True)
class _Profile:
    currency: str
    habits: tuple[_Habit, ...]
    one_offs: tuple[str, ...] = ()  # SKUs bought once, each in its own purchase
    returns: tuple[str, ...] = ()  # one-off SKUs that are returned later


@dataclass(frozen=True)
class _DemoCustomer:
    body: dict
    profile: _Profile


def _customer(
    name: str,
    locale: str,
    email: str,
    phone: str,
    profile: _Profile,
    *,
    preferred_name: str | None = None,
    marketing_consent: bool = False,
    tags: tuple[str, ...] = (),
    attributes: dict[str, str] | None = None,
) -> _DemoCustomer:
    body: dict = {"name": name}
    if preferred_name:
        body["preferred_name"] = preferred_name
    body.update(
        email=email,
        phone=phone,
        locale=locale,
        marketing_consent=marketing_consent,
        tags=list(tags),
        attributes=dict(attributes or {}),
    )
    return _DemoCustomer(body=body, profile=profile)


_CUSTOMERS: tuple[_DemoCustomer, ...] = (
    # --- Swedish
    _customer(
        "Åsa Öberg",
        "sv-SE",
        "asa.oberg@example.com",
        "+46701740605",
        _Profile(
            currency="SEK",
            habits=(_Habit("SKU-COFFEE-500", 35, 5, (1, 2), "store", 0.3),),
            one_offs=("SKU-MUG-CERAMIC", "SKU-BOOK-NOVEL"),
            returns=("SKU-MUG-CERAMIC",),
        ),
        preferred_name="Åsa",
        marketing_consent=True,
        tags=("vip", "newsletter"),
        attributes={"loyalty_card": "SE-1029"},
    ),
    _customer(
        "Björn Lindqvist",
        "sv",
        "bjorn.lindqvist@example.org",
        "+46701740612",
        _Profile(
            currency="EUR",
            habits=(
                _Habit("SKU-SOCKS-RUN-3P", 90, 10, (1, 2), "web"),
                _Habit("SKU-SHOES-RUN", 190, 15, (1, 1), "web"),
            ),
            one_offs=("SKU-SHOES-RUN", "SKU-BOTTLE-750"),
            returns=("SKU-SHOES-RUN",),
        ),
        marketing_consent=False,
    ),
    _customer(
        "Ingrid Sjöström",
        "sv-SE",
        "ingrid.sjostrom@example.net",
        "+46701740633",
        _Profile(
            currency="SEK",
            habits=(
                _Habit("SKU-COFFEE-500", 30, 3, (4, 6), "web", 0.5),
                _Habit("SKU-SUPPORT-12M", 365, 2, (1, 1), "web"),
            ),
            one_offs=("SKU-MUG-CERAMIC",),
            returns=("SKU-MUG-CERAMIC",),
        ),
        preferred_name="Ingrid",
        marketing_consent=True,
        tags=("b2b",),
        attributes={"company": "Sjöström Kontorsservice AB", "cost_center": "4410"},
    ),
    # --- Finnish
    _customer(
        "Jyrki Mäkelä",
        "fi-FI",
        "jyrki.makela@example.com",
        "+358401234567",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-BOOK-NOVEL", 60, 8, (1, 1), "store"),),
            one_offs=("SKU-HEADPHONES-BT", "SKU-CABLE-USBC"),
            returns=("SKU-HEADPHONES-BT",),
        ),
        marketing_consent=False,
    ),
    _customer(
        "Päivi Virtanen",
        "fi",
        "paivi.virtanen@example.org",
        "+358405550123",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-TEA-GREEN-100", 45, 6, (1, 2), "mobile", 0.1),),
            one_offs=("SKU-BOOK-COOK", "SKU-BOTTLE-750"),
        ),
        marketing_consent=True,
        tags=("newsletter",),
        attributes={"loyalty_card": "FI-2044"},
    ),
    _customer(
        "Tuomas Järvinen",
        "fi-FI",
        "tuomas.jarvinen@example.net",
        "+358405550188",
        _Profile(
            currency="EUR",
            habits=(
                _Habit("SKU-SOCKS-RUN-3P", 120, 10, (1, 1), "mobile"),
                _Habit("SKU-COFFEE-500", 50, 7, (1, 1), "web"),
            ),
            one_offs=("SKU-SHOES-RUN", "SKU-BOTTLE-750", "SKU-HEADPHONES-BT"),
            returns=("SKU-BOTTLE-750",),
        ),
        marketing_consent=True,
    ),
    # --- Slovenian
    _customer(
        "Saša Kovačič",
        "sl-SI",
        "sasa.kovacic@example.com",
        "+38641234567",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-COFFEE-500", 40, 5, (1, 2), "web", 0.3),),
            one_offs=("SKU-CABLE-USBC", "SKU-HEADPHONES-BT", "SKU-SUPPORT-12M"),
            returns=("SKU-CABLE-USBC",),
        ),
        marketing_consent=False,
    ),
    _customer(
        "Mojca Žagar",
        "sl",
        "mojca.zagar@example.org",
        "+38641555102",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-BOOK-NOVEL", 75, 10, (1, 1), "store"),),
            one_offs=("SKU-BOOK-COOK", "SKU-MUG-CERAMIC", "SKU-TEA-GREEN-100"),
        ),
        marketing_consent=True,
        tags=("vip",),
        attributes={"loyalty_card": "SI-3307"},
    ),
    _customer(
        "Špela Novak",
        "sl-SI",
        "spela.novak@example.net",
        "+38641555347",
        _Profile(
            currency="EUR",
            habits=(
                _Habit("SKU-SHOES-RUN", 150, 12, (1, 1), "mobile", 0.4),
                _Habit("SKU-SOCKS-RUN-3P", 90, 10, (1, 2), "mobile"),
            ),
            one_offs=("SKU-BOTTLE-750", "SKU-HEADPHONES-BT"),
        ),
        marketing_consent=False,
    ),
    # --- Filipino
    _customer(
        "Maria Dela Cruz",
        "tl-PH",
        "maria.delacruz@example.com",
        "+639171234567",
        _Profile(
            currency="PHP",
            habits=(_Habit("SKU-COFFEE-500", 30, 4, (1, 2), "mobile"),),
            one_offs=("SKU-HEADPHONES-BT", "SKU-BOOK-NOVEL"),
            returns=("SKU-HEADPHONES-BT",),
        ),
        preferred_name="Ria",
        marketing_consent=True,
        tags=("newsletter",),
        attributes={"loyalty_card": "PH-0412"},
    ),
    _customer(
        "Jose Rizal Bautista",
        "tl",
        "jose.bautista@example.org",
        "+639175550142",
        _Profile(
            currency="PHP",
            habits=(
                _Habit("SKU-SUPPORT-12M", 365, 2, (1, 1), "web"),
                _Habit("SKU-CABLE-USBC", 60, 10, (2, 5), "web"),
            ),
            one_offs=("SKU-HEADPHONES-BT",),
        ),
        preferred_name="Joey",
        marketing_consent=False,
        tags=("b2b",),
        attributes={"company": "Bautista Trading"},
    ),
    _customer(
        "Luz Peñaflor",
        "tl-PH",
        "luz.penaflor@example.net",
        "+639175550198",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-TEA-GREEN-100", 50, 6, (1, 2), "store", 0.2),),
            one_offs=("SKU-BOOK-COOK", "SKU-MUG-CERAMIC"),
            returns=("SKU-BOOK-COOK",),
        ),
        marketing_consent=True,
    ),
    # --- English
    _customer(
        "Nguyễn Văn An",
        "en-GB",
        "nguyen.van.an@example.com",
        "+447700900123",
        _Profile(
            currency="EUR",
            habits=(_Habit("SKU-COFFEE-500", 45, 6, (1, 1), "web", 0.2),),
            one_offs=("SKU-HEADPHONES-BT", "SKU-SUPPORT-12M", "SKU-CABLE-USBC"),
        ),
        preferred_name="An",
        marketing_consent=True,
        tags=("newsletter",),
    ),
    _customer(
        "Eleanor Whitfield",
        "en-GB",
        "eleanor.whitfield@example.org",
        "+447700900456",
        _Profile(
            currency="EUR",
            habits=(
                _Habit("SKU-BOOK-NOVEL", 30, 5, (1, 1), "store"),
                _Habit("SKU-TEA-GREEN-100", 60, 8, (1, 2), "store"),
            ),
            one_offs=("SKU-BOOK-COOK",),
            returns=("SKU-BOOK-COOK",),
        ),
        preferred_name="Ellie",
        marketing_consent=True,
        tags=("vip", "newsletter"),
        attributes={"loyalty_card": "GB-5581"},
    ),
    _customer(
        "Siobhán O'Connor",
        "en",
        "siobhan.oconnor@example.net",
        "+447700900789",
        _Profile(
            currency="EUR",
            habits=(
                _Habit("SKU-SHOES-RUN", 180, 15, (1, 1), "web"),
                _Habit("SKU-SOCKS-RUN-3P", 100, 10, (1, 2), "web"),
            ),
            one_offs=("SKU-BOTTLE-750", "SKU-HEADPHONES-BT"),
        ),
        marketing_consent=False,
    ),
)

_PROFILES_BY_NAME = {c.body["name"]: c.profile for c in _CUSTOMERS}

_DEFAULT_PROFILE = _Profile(
    currency="EUR",
    habits=(_Habit("SKU-COFFEE-500", 45, 6, (1, 1), "web"),),
    one_offs=("SKU-HEADPHONES-BT",),
)

# --------------------------------------------------------------------------- time zones

# Standard UTC offset in hours and whether EU summer time applies.
_REGIONS = {
    "sv": (1, True),  # Sweden
    "fi": (2, True),  # Finland
    "sl": (1, True),  # Slovenia
    "tl": (8, False),  # Philippines
    "en": (0, True),  # United Kingdom
}


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month, 31)  # March and October both have 31 days
    return last - timedelta(days=(last.weekday() + 1) % 7)


def _utc_offset(lang: str, instant: datetime) -> timedelta:
    """The UTC offset in force at `instant` (aware) for the customer's region.

    EU summer time runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on
    the last Sunday of October. Computed by hand so no tz database is needed.
    """
    hours, eu_summer_time = _REGIONS[lang]
    if eu_summer_time:
        utc = instant.astimezone(UTC)
        start = datetime.combine(_last_sunday(utc.year, 3), time(1), tzinfo=UTC)
        end = datetime.combine(_last_sunday(utc.year, 10), time(1), tzinfo=UTC)
        if start <= utc < end:
            hours += 1
    return timedelta(hours=hours)


def _local(lang: str, day: date, hour: int, minute: int) -> datetime:
    """`day` at `hour:minute` local wall-clock time in the customer's region."""
    standard = timedelta(hours=_REGIONS[lang][0])
    approx = datetime.combine(day, time(hour, minute), tzinfo=timezone(standard))
    offset = _utc_offset(lang, approx)
    return datetime.combine(day, time(hour, minute), tzinfo=timezone(offset))


def _when(now: datetime, lang: str, days_ago: int, hour: int, minute: int) -> datetime:
    """A local time `days_ago` days before `now`, never later than `now`."""
    instant = now - timedelta(days=days_ago)
    day = instant.astimezone(timezone(_utc_offset(lang, instant))).date()
    moment = _local(lang, day, hour, minute)
    while moment > now:
        day -= timedelta(days=1)
        moment = _local(lang, day, hour, minute)
    return moment


# Opening hours per channel: when a customer plausibly reaches us that way.
_HOURS = {
    "store": (9, 19),
    "phone": (8, 17),
    "video": (9, 16),
    "letter": (9, 15),  # when the post is opened
}


def _random_moment(rng: random.Random, now: datetime, lang: str, channel: str, days_ago: int) -> datetime:
    first, last = _HOURS.get(channel, (7, 22))
    return _when(now, lang, days_ago, rng.randint(first, last), rng.randint(0, 59))


# --------------------------------------------------------------------------- interactions


def _language(customer: dict) -> str:
    lang = str(customer.get("locale", "en")).split("-")[0].lower()
    return lang if lang in _TEXTS else "en"


def _item(sku: str, lang: str, currency: str, quantity: int) -> dict:
    product = _CATALOGUE[sku]
    return {
        "sku": sku,
        "name": product.names[lang],
        "quantity": quantity,
        "unit_price": product.prices[currency],
    }


def demo_interactions(customer_index: int, customer: dict, rng: random.Random, now: datetime) -> list[dict]:
    """Request bodies for `POST /customers/{id}/interactions`, oldest first.

    `customer` is the body from `demo_customers()`; `customer_index` its position
    there. Purchases carry a private `_ref`, returns a private `_purchase_ref`
    naming the purchase they return (see the module docstring); `seed` resolves
    them. Every `occurred_at` lies within the last ~400 days and not after `now`.
    """
    now = _aware(now)
    lang = _language(customer)
    texts = _TEXTS[lang]
    profile = _PROFILES_BY_NAME.get(customer.get("name", ""), _DEFAULT_PROFILE)
    currency = profile.currency
    # (moment, tie-breaker, body): a purchase sorts before anything at the same time.
    events: list[tuple[datetime, int, dict]] = []
    refs = 0
    return_days_ago: list[int] = []

    def purchase(days_ago: int, channel: str, items: list[dict], note: str) -> dict:
        nonlocal refs
        refs += 1
        body = {
            "type": "purchase",
            "channel": channel,
            "occurred_at": _random_moment(rng, now, lang, channel, days_ago),
            "note": note,
            "currency": currency,
            "items": items,
            "_ref": f"c{customer_index}-p{refs}",
        }
        events.append((body["occurred_at"], 0, body))
        return body

    # Habits: the same SKU again and again, at roughly regular intervals.
    for habit in profile.habits:
        days_ago = HISTORY_DAYS - rng.randint(0, min(30, habit.every_days // 2))
        while days_ago >= 1:
            items = [_item(habit.sku, lang, currency, rng.randint(*habit.qty))]
            companion = _CATALOGUE[habit.sku].companion
            if companion and rng.random() < habit.companion_chance:
                items.append(_item(companion, lang, currency, 1))
            note = f"{texts['habit']} {rng.choice(texts['purchase'][habit.channel])}"
            purchase(days_ago, habit.channel, items, note)
            step = habit.every_days + rng.randint(-habit.jitter_days, habit.jitter_days)
            days_ago -= max(1, step)

    # One-off purchases, some of them returned a few days later.
    for sku in profile.one_offs:
        channel = rng.choice(("store", "web", "mobile"))
        product = _CATALOGUE[sku]
        items = [_item(sku, lang, currency, rng.randint(1, product.max_qty))]
        if product.companion and rng.random() < 0.3:
            items.append(_item(product.companion, lang, currency, 1))
        days_ago = rng.randint(30, HISTORY_DAYS - 10)
        note = rng.choice(texts["purchase"][channel])
        bought = purchase(days_ago, channel, items, note)
        if sku not in profile.returns:
            continue
        slot = (customer_index + len(events)) % len(_RETURN_CHANNELS)
        return_channel = _RETURN_CHANNELS[slot]
        returned = items[0]
        return_days_ago.append(days_ago - rng.randint(3, 21))
        body = {
            "type": "return",
            "channel": return_channel,
            "occurred_at": _random_moment(rng, now, lang, return_channel, return_days_ago[-1]),
            "note": " ".join(
                (
                    texts["return_reason"][product.return_reason],
                    texts["return_channel"][return_channel],
                )
            ),
            "currency": currency,
            "items": [{**returned, "quantity": rng.randint(1, returned["quantity"])}],
            "_purchase_ref": bought["_ref"],
        }
        events.append((body["occurred_at"], 1, body))

    def other(kind: str, channel: str, note: str, days_ago: int | None = None, **extra: str) -> None:
        if days_ago is None:
            days_ago = rng.randint(1, HISTORY_DAYS)
        body = {
            "type": kind,
            "channel": channel,
            "occurred_at": _random_moment(rng, now, lang, channel, days_ago),
            "note": note,
            **extra,
        }
        events.append((body["occurred_at"], 1, body))

    # Two complaints and two inquiries each; slots rotate with the customer index,
    # so over the whole set every severity and every channel comes up evenly.
    for offset in (0, 3):
        slot = (customer_index + offset) % len(_COMPLAINT_SLOTS)
        severity, channel = _COMPLAINT_SLOTS[slot]
        subject, note = texts["complaint"][slot]
        other("complaint", channel, note, severity=severity, subject=subject)
    for offset in (0, 3):
        slot = (customer_index + offset) % len(_INQUIRY_CHANNELS)
        other("inquiry", _INQUIRY_CHANNELS[slot], texts["inquiry"][slot])
    for offset in range(rng.randint(1, 2)):
        slot = (customer_index + offset) % len(_FEEDBACK_CHANNELS)
        days_ago = None
        if slot == _FEEDBACK_AFTER_RETURN:
            if not return_days_ago:  # nothing returned: say something else
                slot = (slot + 2) % len(_FEEDBACK_CHANNELS)
            else:  # thanks for the help with the return, within a week of it
                days_ago = max(0, return_days_ago[-1] - rng.randint(1, 7))
        other("feedback", _FEEDBACK_CHANNELS[slot], texts["feedback"][slot], days_ago)
    for offset in range(rng.randint(1, 2)):
        slot = (customer_index + offset) % len(_VISIT_CHANNELS)
        other("visit", _VISIT_CHANNELS[slot], texts["visit"][slot])

    events.sort(key=lambda event: (event[0], event[1]))
    result = []
    for moment, _, body in events:
        body["occurred_at"] = moment.isoformat(timespec="seconds")
        result.append(body)
    return result


# --------------------------------------------------------------------------- seeding


def demo_products() -> list[dict]:
    """Request bodies for `POST /products`: the catalogue the histories buy from, named in every
    demo language, priced in EUR (fresh copies on every call)."""
    return [
        {
            "sku": sku,
            "names": {lang: product.names[lang] for lang in ("en", "sv", "fi", "sl", "tl")},
            "price": product.prices["EUR"],
            "currency": "EUR",
            "active": True,
        }
        for sku, product in sorted(_CATALOGUE.items())
    ]


def demo_customers() -> list[dict]:
    """Request bodies for `POST /customers` (fresh copies on every call)."""
    return [copy.deepcopy(customer.body) for customer in _CUSTOMERS]


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _post_created(post: Post, path: str, body: dict, id_field: str = "id") -> dict:
    status, response = post(path, body)
    if status != 201:
        raise RuntimeError(f"POST {path} returned {status}, expected 201: {response!r}")
    if not isinstance(response, dict) or not response.get(id_field):
        raise RuntimeError(f"POST {path} returned 201 without an {id_field}: {response!r}")
    return response


def _post_history(post: Post, customer_id: str, bodies: list[dict]) -> int:
    path = f"/customers/{customer_id}/interactions"
    purchase_ids: dict[str, str] = {}
    for body in bodies:
        body = dict(body)
        ref = body.pop("_ref", None)
        purchase_ref = body.pop("_purchase_ref", None)
        if purchase_ref is not None:
            body["purchase_id"] = purchase_ids[purchase_ref]
        created = _post_created(post, path, body)
        if ref is not None:
            purchase_ids[ref] = created["id"]
    return len(bodies)


def seed(post: Post, *, now: datetime | None = None, seed: int = 7, workers: int = 1) -> dict:
    """Create the demo catalogue, customers and their histories through the HTTP API.

    Products are created first, then customers, then each customer's interactions oldest first,
    so that a return can name the id of the purchase it returns. Any response other
    than 201 raises `RuntimeError`. Deterministic for a given `seed` and `now`
    (default: the current time, UTC; a naive `now` is taken as UTC). With `workers` > 1,
    customers' histories are posted that many at a time (`post` must then be thread-safe);
    the bodies are the same.
    """
    now = _aware(now if now is not None else datetime.now(UTC))
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    products = [_post_created(post, "/products", body, "sku") for body in demo_products()]
    customers = demo_customers()
    ids = [_post_created(post, "/customers", body)["id"] for body in customers]
    # The random choices are drawn in one order whatever `workers` is.
    histories = [demo_interactions(index, customer, rng, now) for index, customer in enumerate(customers)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        counts = pool.map(_post_history, [post] * len(ids), ids, histories)
        interactions = sum(counts)
    return {"products": len(products), "customers": len(ids), "interactions": interactions}
