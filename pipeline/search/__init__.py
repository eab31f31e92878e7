"""Full-text and faceted search over the article alias."""
