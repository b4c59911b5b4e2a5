"""aggregator: pulls outlet and blog feeds, links each blog post to the articles it cites,
translates, and republishes one merged feed."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/aggregator-project/aggregator"
USER_AGENT = f"aggregator/{__version__} (+{PROJECT_URL})"
