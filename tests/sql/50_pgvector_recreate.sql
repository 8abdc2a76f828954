-- pgvector dropped and re-created in one session: the `vector` type comes back with a new oid
-- (and mobileclip, which requires it, goes and comes back with it). The extension library
-- stays loaded in this backend, so anything it cached about the old type must not be used:
-- `vector[]` results are built with the type's oid (clip_embed_texts / clip_embed_images).
-- Last in the suite: it drops the objects earlier tests left that use `vector`.
SELECT vector_dims(clip_embed_text('a photo of a cat')) AS dims;
SELECT vector_dims(v) AS dims FROM unnest(clip_embed_texts(ARRAY['a photo of a cat'])) v;
SELECT oid AS old_vector_oid FROM pg_type WHERE typname = 'vector' \gset
-- The NOTICEs would list whatever earlier tests left behind.
SET client_min_messages = warning;
DROP EXTENSION vector CASCADE;
CREATE EXTENSION mobileclip CASCADE;
RESET client_min_messages;
SELECT oid <> :old_vector_oid AS vector_has_a_new_oid FROM pg_type WHERE typname = 'vector';
SELECT vector_dims(clip_embed_text('a photo of a cat')) AS dims;
SELECT i, vector_dims(v) AS dims, pg_typeof(v) AS type
FROM unnest(clip_embed_texts(ARRAY['a photo of a cat', 'a photo of a dog'])) WITH ORDINALITY AS t(v, i);
SELECT (clip_embed_texts(ARRAY['a photo of a cat']))[1] = clip_embed_text('a photo of a cat') AS same_as_single;
SELECT vector_dims(v) AS dims
FROM unnest(clip_embed_images(ARRAY[pg_read_binary_file('/tmp/mobileclip-regress/images/png_rgb.png')])) v;
