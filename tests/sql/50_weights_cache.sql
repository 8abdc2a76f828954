-- The shared weights cache and lazy towers (issue 11). The cluster runs with the default
-- mobileclip.cache_dir (mobileclip_cache inside the data directory): each tower's
-- inference-form weights are written there once and mapped read-only by every backend.
\c
-- A fresh session has loaded nothing; embedding a text loads the text tower only.
SELECT clip_model_info()->'loaded' AS loaded_before_use;
SELECT vector_dims(clip_embed_text('a red bicycle')) AS dims;
SELECT t->>'tower' AS tower, (t->>'loaded')::bool AS loaded, t->>'cache' AS cache,
       (t->>'params')::bigint > 0 AS has_params
FROM jsonb_array_elements(clip_model_info()->'towers') t;
SELECT clip_model_info()->>'cache_dir' = current_setting('data_directory') || '/mobileclip_cache' AS cache_in_data_dir;
-- The image tower loads on the first image; both are then mapped from the cache (earlier
-- test files built it: hit), never private copies.
SELECT vector_dims(clip_embed_image(pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg'))) AS dims;
SELECT t->>'tower' AS tower, (t->>'loaded')::bool AS loaded, t->>'cache' AS cache
FROM jsonb_array_elements(clip_model_info()->'towers') t;

-- Mapped weights give exactly the embeddings of private ones (cache off).
CREATE TEMP TABLE cached AS
SELECT clip_embed_text('a red bicycle') AS t,
       clip_embed_image(pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg')) AS i;
SET mobileclip.cache_dir = '';
SELECT (SELECT t FROM cached) = clip_embed_text('a red bicycle') AS text_equal,
       (SELECT i FROM cached) = clip_embed_image(pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg')) AS image_equal;
SELECT t->>'tower' AS tower, t->>'cache' AS cache
FROM jsonb_array_elements(clip_model_info()->'towers') t;

-- A cache directory that cannot be created: one WARNING per tower, a private copy, the
-- same embeddings.
SET mobileclip.cache_dir = '/tmp/mobileclip-regress/S0/open_clip_config.json/cache';
SELECT (SELECT t FROM cached) = clip_embed_text('a red bicycle') AS text_equal;
SELECT (SELECT t FROM cached) = clip_embed_text('a red bicycle') AS text_equal_again_no_second_warning;
SELECT t->>'tower' AS tower, t->>'cache' AS cache, t->>'cache_detail' AS detail
FROM jsonb_array_elements(clip_model_info()->'towers') t;
RESET mobileclip.cache_dir;

-- Superuser only: the server writes there.
CREATE ROLE mobileclip_cache_user;
SET ROLE mobileclip_cache_user;
SET mobileclip.cache_dir = '/tmp/elsewhere';
RESET ROLE;
DROP ROLE mobileclip_cache_user;
