-- pg_trgm backs the case-insensitive title search with a GIN index.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
