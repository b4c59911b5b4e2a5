"""citing stage."""
