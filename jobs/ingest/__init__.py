"""Raw sources into the landing zone (synthetic world, real datasets) and validated Delta tables."""
