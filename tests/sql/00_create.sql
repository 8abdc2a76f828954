-- The extension installs with pgvector pulled in by CASCADE.
CREATE EXTENSION mobileclip CASCADE;
SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'mobileclip') ORDER BY extname;
