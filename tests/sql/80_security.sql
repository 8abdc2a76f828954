-- What a role that is not a superuser can do and see (SECURITY.md): it embeds with the
-- model the DBA configured, cannot point the extension at files (model_path, cache_dir and
-- the image limits are superuser settings), does not see server paths, cannot run the
-- CPU-burning diagnostic, and cannot make a backend build a result over Postgres' 1 GB limit.
CREATE ROLE mobileclip_user LOGIN;
-- The role reads image bytes from a table (reading a file is a superuser's privilege).
CREATE TABLE images_80 AS SELECT pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg') AS bytes;
GRANT SELECT ON images_80 TO mobileclip_user;
SELECT current_setting('data_directory') AS datadir \gset
\c - mobileclip_user
SELECT pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg') IS NOT NULL;
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;
SET mobileclip.model_path = '/etc';
SET mobileclip.cache_dir = '/tmp';
SET mobileclip.max_image_pixels = 1000000000;
SET mobileclip.max_image_bytes = '1GB';
-- Settings any role may change.
SET mobileclip.batch_size = 8;
SET mobileclip.threads = 1;
SET mobileclip.exif_orientation = 'apply';
RESET ALL;
SELECT vector_dims(clip_embed_text('a dog')) AS dims,
       (SELECT vector_dims(clip_embed_image(bytes)) FROM images_80) AS image_dims;
-- No paths: model, cache directory, the BLAS library.
SELECT i->'model_path' AS model_path, i->'cache_dir' AS cache_dir, i->>'variant' AS variant,
       (SELECT bool_and(coalesce(t->>'cache_detail', '') NOT LIKE '%' || :'datadir' || '%') FROM jsonb_array_elements(i->'towers') t)
         AS no_path_in_cache_detail
FROM clip_model_info() i;
SELECT clip_runtime_info()->'blas'->'sgemm_library' AS sgemm_library,
       clip_runtime_info()->'blas'->>'vendor' AS blas;
SELECT clip_runtime_info(bench => true);
-- A result over 1 GB is refused before any work (600,000 empty texts: 1.2 GB of vectors).
SELECT clip_embed_texts(array_fill(''::text, ARRAY[600000]));
SELECT clip_embed_images(array_fill('\x00'::bytea, ARRAY[600000]), 'null');
\c - postgres

-- An error about the model reaches the role without the path (the server log has it).
ALTER ROLE mobileclip_user SET mobileclip.model_path = '/tmp/mobileclip-regress/not-a-model';
\c - mobileclip_user
SHOW mobileclip.model_path;
SELECT clip_embed_text('a dog');
SELECT clip_model_info();
\c - postgres
SELECT clip_embed_text('a dog') FROM (SELECT set_config('mobileclip.model_path', '/tmp/mobileclip-regress/not-a-model', true)) s;
ALTER ROLE mobileclip_user RESET mobileclip.model_path;
DROP TABLE images_80;
DROP ROLE mobileclip_user;
