-- Search at scale (issue 12): an HNSW index (vector_cosine_ops) over image embeddings, text
-- queries. With the index, top-k equals exact search on the same data, and EXPLAIN shows the
-- index used with clip_embed_text(...) in ORDER BY. The images: the test corpus and the
-- stress corpus (a few hundred files; the ones that cannot be embedded are skipped).
CREATE TABLE search_70 (id serial PRIMARY KEY, name text, emb vector(512));
INSERT INTO search_70 (name, emb)
SELECT f, clip_embed_image(pg_read_binary_file(d || f), on_error => 'null')
FROM (VALUES ('/tmp/mobileclip-regress/images/'), ('/tmp/mobileclip-regress/stress/')) AS s(d),
     LATERAL pg_ls_dir(d) AS f
WHERE clip_check_image(pg_read_binary_file(d || f)) IS NULL
ORDER BY d, f;
SELECT count(*) >= 200 AS enough_rows, count(*) = count(emb) AS all_embedded FROM search_70;
CREATE INDEX search_70_hnsw ON search_70 USING hnsw (emb vector_cosine_ops);
ANALYZE search_70;
SET hnsw.ef_search = 400;

-- The plan: the index serves ORDER BY emb <=> clip_embed_text(...) LIMIT k (the query text is
-- embedded once: the function is STABLE, evaluated when the scan starts).
EXPLAIN (COSTS OFF) SELECT id FROM search_70 ORDER BY emb <=> clip_embed_text('a red bicycle') LIMIT 10;

-- Top-10 with the index equals exact search (index off), for several queries.
CREATE TEMP TABLE q (query text);
INSERT INTO q VALUES ('a red bicycle'), ('a cat'), ('an astronaut'), ('a cup of coffee'), ('satellite image of farmland');
-- (The same form per query, correlated: still the index, the text as a parameter.)
EXPLAIN (COSTS OFF)
SELECT query, ARRAY(SELECT id FROM search_70 ORDER BY emb <=> clip_embed_text(query) LIMIT 10) AS ids FROM q;
CREATE TEMP TABLE with_index AS
SELECT query, ARRAY(SELECT id FROM search_70 ORDER BY emb <=> clip_embed_text(query) LIMIT 10) AS ids FROM q;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM search_70 ORDER BY emb <=> clip_embed_text('a red bicycle') LIMIT 10;
CREATE TEMP TABLE exact AS
SELECT query, ARRAY(SELECT id FROM search_70 ORDER BY emb <=> clip_embed_text(query), id LIMIT 10) AS ids FROM q;
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT w.query, w.ids = e.ids AS same_top10, cardinality(w.ids) AS k
FROM with_index w JOIN exact e USING (query) ORDER BY w.query;
DROP TABLE search_70;
