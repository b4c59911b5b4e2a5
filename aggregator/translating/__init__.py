"""translating stage."""
