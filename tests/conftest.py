"""The fixture plugins, each fixture defined once (tests/fixtures/): every folder sees them."""

pytest_plugins = [
    "fixtures.database",
    "fixtures.api",
    "fixtures.processes",
    "fixtures.assistant",
]
