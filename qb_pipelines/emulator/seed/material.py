"""Name material both seeding paths draw from: people, businesses, streets, cities, bulk items."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

DAY = 86400.0

FIRST_NAMES = (
    "Amy", "Bill", "Diego", "Dylan", "Geeta", "Jeff", "John", "Kate", "Kathy", "Mark", "Nick", "Travis",
    "Whitney", "Sasha", "Shara", "Dan", "Katsuyuki", "Rita", "Emily", "Kari", "Lena", "Omar", "Priya", "Tomas",
    "Grace", "Hector", "Ingrid", "Jamal", "Keiko", "Luis", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa",
    "Sean", "Tara", "Umar", "Vera", "Wes", "Xena", "Yusuf", "Zoe", "Aaron", "Bianca", "Carlos", "Dana",
    "Elena", "Farid", "Gina", "Hiro", "Irene", "Jonas", "Kofi", "Leah", "Marco", "Nadia", "Oscar", "Paula",
)
LAST_NAMES = (
    "Rodriguez", "Sollfrank", "Kalapatapu", "Melton", "Whelan", "Cho", "Barnett", "Waldron", "Tillou", "Pye",
    "Rago", "Gevelber", "Weiskopf", "Paulsen", "Freeman", "Sonnenschein", "Rondonuwu", "Duke", "Platt",
    "Steblay", "Alvarez", "Bergstrom", "Castillo", "Delgado", "Eriksen", "Fontaine", "Garibaldi", "Haddad",
    "Ivanova", "Jablonski", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero",
    "Rossi", "Santos", "Takahashi", "Ueda", "Valdez", "Wojcik", "Xu", "Yamada", "Zamora", "Abbott", "Brennan",
    "Coleman", "Dixon", "Ellison", "Fletcher", "Gallagher", "Hughes", "Irwin", "Jennings", "Kendall", "Lowry",
)
BUSINESS_KINDS = (
    "Bakery", "Cafe", "Dental", "Auto Repair", "Bookstore", "Florist", "Fitness", "Law Office", "Realty",
    "Veterinary Clinic", "Winery", "Pet Supply", "Hardware", "Salon", "Photography", "Consulting", "Travel",
    "Medical Supplies", "Sporting Goods", "Deli", "Pharmacy", "Garden Center", "Brewery", "Music School",
)
STREETS = (
    "Ocean View Road", "Twin Lane", "Willow Rd", "Easy St.", "Finch St.", "Pine St.", "Main St.", "Elm Ave.",
    "Lakeshore Dr.", "Market St.", "Cedar Ct.", "Sierra Way", "Bayshore Blvd.", "Hillcrest Dr.", "Oak Knoll",
)
CITIES = (
    ("Menlo Park", "94304"), ("Middlefield", "94482"), ("Bayshore", "94326"), ("Palo Alto", "94303"),
    ("San Pablo", "87999"), ("Redwood City", "94062"), ("Sunnyvale", "94086"), ("Mountain View", "94041"),
    ("Cupertino", "95014"), ("Los Gatos", "95030"), ("San Mateo", "94401"), ("Half Moon Bay", "94019"),
)
BULK_ITEM_NAMES = (
    ("Design", "Custom landscape design", 75.0, "Service", False),
    ("Gardening", "Weekly gardening service", 25.0, "Service", False),
    ("Installation", "Installation of landscape design", 50.0, "Service", False),
    ("Trimming", "Tree and shrub trimming", 35.0, "Service", False),
    ("Pest Control", "Pest control services", 35.0, "Service", False),
    ("Maintenance & Repair", "Maintenance and repair", 45.0, "Service", False),
    ("Irrigation Check", "Sprinkler system inspection", 60.0, "Service", False),
    ("Lawn Mowing", "Lawn mowing and edging", 40.0, "Service", False),
    ("Hardscaping", "Patio and walkway construction", 95.0, "Service", False),
    ("Snow Removal", "Snow and ice removal", 55.0, "Service", False),
    ("Sod", "Sod, per square yard", 4.5, "NonInventory", True),
    ("Soil", "Top soil, 2 cubic ft. bag", 10.0, "NonInventory", True),
    ("Mulch", "Bark mulch, cubic yard", 38.0, "NonInventory", True),
    ("Rocks", "Garden rocks, per ton", 120.0, "NonInventory", True),
    ("Lighting", "Garden lighting fixture", 45.0, "NonInventory", True),
    ("Fertilizer", "Organic fertilizer, 40 lb bag", 22.5, "NonInventory", True),
    ("Pavers", "Concrete pavers, per pallet", 310.0, "NonInventory", True),
    ("Shrubs", "Shrub, 5 gallon", 28.0, "NonInventory", True),
    ("Trees", "Ornamental tree, 15 gallon", 89.0, "NonInventory", True),
    ("Seed", "Grass seed, 25 lb bag", 64.0, "NonInventory", True),
)
ITEM_GRADES = ("", "Premium", "Commercial", "Small", "Large", "Deluxe", "Economy", "Express", "Seasonal", "Custom")


def plain(x: float) -> float | int:
    """Whole amounts as integers, as QBO prints list prices (``"UnitPrice": 15``)."""
    return int(x) if float(x).is_integer() else x


def local_date(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).date().isoformat()

