-- ETL over a photo collection with broken files (issue 12): the default stays an ERROR that
-- writes nothing; on_error => 'null' gives NULL for an unusable image with a WARNING naming
-- its position and the reason; clip_check_image lists the broken files without running the
-- model. Then the trigger that keeps an embedding column current (clip_embed_on_write).
\set dir '/tmp/mobileclip-regress/images/'
CREATE TEMP TABLE raw (id int PRIMARY KEY, name text, bytes bytea);
INSERT INTO raw VALUES
  (1, 'jpeg_420.jpg', pg_read_binary_file(:'dir' || 'jpeg_420.jpg')),
  (2, 'truncated.jpg', substring(pg_read_binary_file(:'dir' || 'jpeg_420.jpg') from 1 for 500)),
  (3, 'png_rgb.png', pg_read_binary_file(:'dir' || 'png_rgb.png')),
  (4, 'notes.txt', convert_to('not an image', 'UTF8')),
  (5, 'missing', NULL),
  (6, 'gif_static.gif', pg_read_binary_file(:'dir' || 'gif_static.gif'));
CREATE TEMP TABLE emb (id int, v vector);

-- Default: the first broken file fails the statement; nothing is written.
INSERT INTO emb SELECT id, clip_embed_image(bytes) FROM raw ORDER BY id;
INSERT INTO emb SELECT id, clip_embed_image(bytes, on_error => 'error') FROM raw ORDER BY id;
SELECT count(*) AS rows_after_error FROM emb;

-- on_error => 'null': every row is written; the broken ones are NULL, each with a WARNING.
INSERT INTO emb SELECT id, clip_embed_image(bytes, on_error => 'null') FROM raw ORDER BY id;
SELECT e.id, r.name, e.v IS NOT NULL AS embedded,
       CASE WHEN e.v IS NOT NULL THEN e.v = clip_embed_image(r.bytes) END AS same_as_default_form
FROM emb e JOIN raw r USING (id) ORDER BY e.id;

-- The array form: NULL in place of each broken image (position in the array in the WARNING),
-- the others equal to the one-by-one result (to 1e-6: one MLX batch of three rounds a little
-- differently from three of one); the default names the first broken image.
SELECT k, v IS NOT NULL AS embedded,
       CASE WHEN v IS NOT NULL THEN (SELECT max(abs(a - b)) FROM unnest(v::real[], (SELECT clip_embed_image(bytes) FROM raw WHERE id = k)::real[]) u(a, b)) <= 1e-6 END
         AS same_as_single
FROM unnest(clip_embed_images(ARRAY(SELECT bytes FROM raw ORDER BY id), on_error => 'null')) WITH ORDINALITY t(v, k)
ORDER BY k;
SELECT clip_embed_images(ARRAY(SELECT bytes FROM raw ORDER BY id));
SELECT clip_embed_images(ARRAY(SELECT bytes FROM raw ORDER BY id), 'error');
-- on_error takes 'error' or 'null' (any case); anything else is an error of its own.
SELECT clip_embed_image(bytes, on_error => 'NULL') IS NULL AS upper_case_ok FROM raw WHERE id = 2;
SELECT clip_embed_image(bytes, on_error => 'skip') FROM raw WHERE id = 1;
SELECT clip_embed_images(ARRAY[bytes], on_error => '') FROM raw WHERE id = 1;
-- A problem that is not the input's stays an ERROR under 'null' (no model configured).
BEGIN;
SET LOCAL mobileclip.model_path = '';
SELECT clip_embed_image(bytes, on_error => 'null') FROM raw WHERE id = 1;
ROLLBACK;

-- NULL arguments (the functions are STRICT): NULL, no WARNING.
SELECT clip_embed_image(NULL::bytea, on_error => 'null') IS NULL AS null_image,
       clip_embed_image(bytes, on_error => NULL) IS NULL AS null_on_error,
       clip_embed_images(NULL::bytea[], 'null') IS NULL AS null_array,
       clip_embed_images(ARRAY[NULL::bytea, bytes], 'null') AS array_with_null
FROM raw WHERE id = 2;
SELECT clip_check_image(NULL) IS NULL AS null_checked;

-- Listing the broken files of a collection: the reason, or NULL for a usable image.
SELECT id, name, clip_check_image(bytes) AS problem FROM raw ORDER BY id;
-- Limits count as problems too (here: more pixels than allowed).
SET mobileclip.max_image_pixels = 1000;
SELECT clip_check_image(bytes) AS problem FROM raw WHERE id = 1;
RESET mobileclip.max_image_pixels;

-- Embeddings that stay current: a trigger per (source, target) column pair. text/varchar ->
-- clip_embed_text, bytea -> clip_embed_image; NULL -> NULL.
CREATE TABLE photos_65 (id int PRIMARY KEY, caption varchar, caption_emb vector(512), bytes bytea, emb vector);
SELECT clip_embed_on_write('photos_65', 'caption', 'caption_emb') AS trigger_name;
SELECT clip_embed_on_write('photos_65'::regclass, 'bytes', 'emb') AS trigger_name;
INSERT INTO photos_65 (id, caption, bytes)
SELECT id, 'a photo named ' || name, bytes FROM raw WHERE id IN (1, 3, 5);
SELECT id, caption_emb = clip_embed_text(caption) AS caption_current,
       emb = clip_embed_image(bytes) AS image_current, emb IS NULL AS image_null
FROM photos_65 ORDER BY id;
-- An UPDATE of the source recomputes; of another column, or to the same value, does not
-- (shown with a marker value in the target).
UPDATE photos_65 SET caption_emb = array_fill(1, ARRAY[512])::vector WHERE id = 1;
UPDATE photos_65 SET caption = caption WHERE id = 1;
SELECT caption_emb = array_fill(1, ARRAY[512])::vector AS unchanged_source_kept FROM photos_65 WHERE id = 1;
UPDATE photos_65 SET caption = 'a red bicycle', bytes = (SELECT bytes FROM raw WHERE id = 6) WHERE id = 1;
SELECT caption_emb = clip_embed_text('a red bicycle') AS caption_recomputed,
       emb = clip_embed_image((SELECT bytes FROM raw WHERE id = 6)) AS image_recomputed
FROM photos_65 WHERE id = 1;
UPDATE photos_65 SET caption = NULL WHERE id = 3;
SELECT caption_emb IS NULL AS null_source_null_embedding FROM photos_65 WHERE id = 3;
-- A broken image fails the INSERT (the default); the row is not written.
INSERT INTO photos_65 (id, caption, bytes) SELECT 2, 'broken', bytes FROM raw WHERE id = 2;
SELECT count(*) AS rows FROM photos_65;
-- What the helper refuses: a column that does not exist, a target that is not a vector, a
-- source of another type, NULL (terse: without the PL/pgSQL line numbers).
\set VERBOSITY terse
SELECT clip_embed_on_write('photos_65', 'nope', 'emb');
SELECT clip_embed_on_write('photos_65', 'caption', 'nope');
SELECT clip_embed_on_write('photos_65', 'caption', 'bytes');
SELECT clip_embed_on_write('photos_65', 'id', 'emb');
SELECT clip_embed_on_write('photos_65', NULL, 'emb');
\set VERBOSITY default
SELECT tgname FROM pg_trigger WHERE tgrelid = 'photos_65'::regclass ORDER BY tgname;
DROP TABLE photos_65;
