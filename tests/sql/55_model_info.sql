-- clip_model_info(): what a DBA asks about the loaded model. Before any use: nothing loaded
-- (and nothing is loaded by asking); after clip_load(): variant, dimensions, preprocessing,
-- per tower the parameters, bytes, where they are held, load time and cache state.
\c
SELECT clip_model_info() - 'model_path' AS before_use;
SELECT clip_model_info()->'loaded' AS still_not_loaded;
SELECT (clip_load()->>'loaded')::bool AS loaded;
SELECT i->>'variant' AS variant, (i->>'embed_dim')::int AS embed_dim,
       i->'image'->>'size' AS image_size, i->'image'->>'interpolation' AS interpolation,
       i->>'image_model' AS image_model, (i->'text'->>'context_length')::int AS context_length,
       round((i->>'logit_scale')::numeric, 4) AS logit_scale,
       (i->>'load_ms')::float8 > 0 AS load_ms_positive,
       i->>'model_path' = current_setting('mobileclip.model_path') AS model_path_shown
FROM clip_model_info() AS i;
SELECT t->>'tower' AS tower, (t->>'loaded')::bool AS loaded, (t->>'params')::bigint AS params,
       (t->>'bytes')::bigint = 4 * (t->>'params')::bigint AS bytes_fp32, t->>'held' AS held,
       t->>'cache' AS cache, (t->>'load_ms')::float8 > 0 AS load_ms_positive
FROM clip_model_info() AS i, jsonb_array_elements(i->'towers') AS t;
