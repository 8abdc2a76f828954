-- Zero-shot classification (clip_classify) against open_clip's probabilities for the mcrand
-- S0 weights (tests/fixtures/models/classify_S0.json, made by tests/reference/
-- make_classify_reference.py; scripts/test copies it to /tmp/mobileclip-regress). Random
-- weights make every image look alike: each case's probability spread is shown next to the
-- difference, so the 1e-4 bound is seen against what separates the labels.
CREATE TEMP TABLE ref AS SELECT pg_read_file('/tmp/mobileclip-regress/classify_S0.json')::jsonb AS j;
CREATE TEMP TABLE cases AS
SELECT i, c->>'image' AS image, c->>'template' AS template,
       ARRAY(SELECT jsonb_array_elements_text(c->'labels')) AS labels,
       ARRAY(SELECT jsonb_array_elements_text(c->'probabilities')::real) AS want,
       (c->>'probability_spread')::float8 AS spread
FROM ref, jsonb_array_elements(j->'cases') WITH ORDINALITY AS t(c, i);
-- The argument: an image file, or (the embedding form) a text embedding or the difference
-- of two (pgvector's `-`), as the reference script built them.
CREATE TEMP TABLE got AS
SELECT c.i, r.ord, r.label, r.probability
FROM cases c CROSS JOIN LATERAL (
  SELECT k AS ord, label, probability FROM clip_classify(
    pg_read_binary_file('/tmp/mobileclip-regress/images/' || c.image), c.labels, c.template) WITH ORDINALITY AS x(label, probability, k)
  WHERE c.image NOT LIKE 'text%'
  UNION ALL
  SELECT k, label, probability FROM clip_classify(clip_embed_text(substr(c.image, 6)), c.labels, c.template)
    WITH ORDINALITY AS x(label, probability, k)
  WHERE c.image LIKE 'text:%'
  UNION ALL
  SELECT k, label, probability FROM clip_classify(
    clip_embed_text(split_part(substr(c.image, 10), '|', 1)) - clip_embed_text(split_part(substr(c.image, 10), '|', 2)),
    c.labels, c.template) WITH ORDINALITY AS x(label, probability, k)
  WHERE c.image LIKE 'textdiff:%') r;
SELECT c.i, c.image, c.template, count(*) AS labels,
       bool_and(g.label = c.labels[g.ord]) AS labels_in_order,
       max(abs(g.probability - c.want[g.ord])) < 1e-4 AS max_abs_diff_below_1e4,
       round(c.spread::numeric, 3) AS reference_spread,
       abs(sum(g.probability) - 1) < 1e-5 AS sums_to_1
FROM cases c JOIN got g ON g.i = c.i
GROUP BY c.i, c.image, c.template, c.spread ORDER BY c.i;

-- The image form equals the embedding form over the stored embedding; rows come in the
-- order of the labels; the usual use is ORDER BY probability DESC.
SELECT a.label, a.probability = b.probability AS same
FROM clip_classify(pg_read_binary_file('/tmp/mobileclip-regress/images/png_rgb.png'), ARRAY['cat', 'dog', 'astronaut']) WITH ORDINALITY a(label, probability, k)
JOIN clip_classify(clip_embed_image(pg_read_binary_file('/tmp/mobileclip-regress/images/png_rgb.png')), ARRAY['cat', 'dog', 'astronaut']) WITH ORDINALITY b(label, probability, k)
  ON a.k = b.k ORDER BY a.k;
-- An embedding that is not normalised is normalised first: same probabilities.
SELECT max(abs(a.probability - b.probability)) < 1e-6 AS scale_invariant
FROM clip_classify(clip_embed_text('a cat') * array_fill(3, ARRAY[512])::vector, ARRAY['cat', 'dog']) WITH ORDINALITY a(label, probability, k)
JOIN clip_classify(clip_embed_text('a cat'), ARRAY['cat', 'dog']) WITH ORDINALITY b(label, probability, k) ON a.k = b.k;

-- Errors: no labels, a NULL or empty label, a template without {}, an embedding of the wrong
-- dimensions or of length zero, NULL arguments (STRICT: no rows).
CREATE FUNCTION try_classify_60(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT try_classify_60($$SELECT * FROM clip_classify(clip_embed_text('x'), ARRAY[]::text[])$$) AS no_labels;
SELECT try_classify_60($$SELECT * FROM clip_classify(clip_embed_text('x'), ARRAY['cat', NULL])$$) AS null_label;
SELECT try_classify_60($$SELECT * FROM clip_classify(clip_embed_text('x'), ARRAY['cat', ' '])$$) AS empty_label;
SELECT try_classify_60($$SELECT * FROM clip_classify(clip_embed_text('x'), ARRAY['cat'], 'a photo')$$) AS no_placeholder;
SELECT try_classify_60($$SELECT * FROM clip_classify('[1,2,3]'::vector, ARRAY['cat'])$$) AS wrong_dims;
SELECT try_classify_60($$SELECT * FROM clip_classify(array_fill(0, ARRAY[512])::vector, ARRAY['cat'])$$) AS zero_vector;
SELECT try_classify_60($$SELECT * FROM clip_classify('\x0102'::bytea, ARRAY['cat'])$$) AS not_an_image;
SELECT count(*) AS rows_for_null FROM clip_classify(NULL::bytea, ARRAY['cat']);
SELECT count(*) AS rows_for_null_labels FROM clip_classify(clip_embed_text('x'), NULL);
DROP FUNCTION try_classify_60(text);
