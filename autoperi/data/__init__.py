"""Data: sources (mirror / URL + sha256) → readers (file → Structure, bad rows counted) → datasets and splits."""
