-- mobileclip 0.1.0 -> 0.2.0 (ALTER EXTENSION mobileclip UPDATE).
-- 0.2.0 adds functions and changes none of 0.1.0's: zero-shot classification (clip_classify),
-- the ETL forms that skip unusable images (on_error), clip_check_image, and the trigger that
-- keeps an embedding column current (clip_embed_on_write). The statements are those of
-- mobileclip--0.2.0.sql; tests/sql/01_upgrade.sql checks that an upgraded database has
-- exactly the objects of a fresh install.
\echo Use "ALTER EXTENSION mobileclip UPDATE TO '0.2.0'" to load this file. \quit

CREATE  FUNCTION "clip_check_image"(
	"image" bytea /* & [u8] */
) RETURNS TEXT /* Option < String > */
STRICT STABLE PARALLEL SAFE COST 10000
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clip_check_image_wrapper';

CREATE  FUNCTION "clip_classify"(
	"image" bytea, /* & [u8] */
	"labels" TEXT[], /* Array < '_, & str > */
	"template" TEXT DEFAULT 'a photo of a {}.' /* & str */
) RETURNS TABLE (
	"label" TEXT,  /* String */
	"probability" real  /* f32 */
)
STRICT STABLE PARALLEL SAFE COST 1000000
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clip_classify_wrapper';

CREATE  FUNCTION "clip_classify"(
	"embedding" vector, /* Vector */
	"labels" TEXT[], /* Array < '_, & str > */
	"template" TEXT DEFAULT 'a photo of a {}.' /* & str */
) RETURNS TABLE (
	"label" TEXT,  /* String */
	"probability" real  /* f32 */
)
STRICT STABLE PARALLEL SAFE  COST 100000
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clip_classify_embedding_wrapper';

CREATE  FUNCTION "clip_embed_image"(
	"image" bytea, /* & [u8] */
	"on_error" TEXT /* & str */
) RETURNS vector /* Option < Vector > */
STRICT STABLE PARALLEL SAFE  COST 1000000
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clip_embed_image_on_error_wrapper';

CREATE  FUNCTION "clip_embed_images"(
	"images" bytea[], /* Array < '_, & [u8] > */
	"on_error" TEXT /* & str */
) RETURNS vector[] /* Vec < Option < Vector > > */
STRICT STABLE PARALLEL SAFE  COST 1000000
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clip_embed_images_on_error_wrapper';

-- finalize

-- The trigger function (TG_ARGV: source column, target column, 'text' or 'image').
CREATE FUNCTION clip_embed_on_write_trigger() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  src text := TG_ARGV[0];
  tgt text := TG_ARGV[1];
  fn text := CASE TG_ARGV[2] WHEN 'image' THEN 'clip_embed_image' ELSE 'clip_embed_text' END;
  changed boolean := true;
  emb jsonb;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', src) INTO changed USING OLD, NEW;
  END IF;
  IF changed THEN
    -- The vector travels as its text form (pgvector prints floats exactly): no need to name
    -- the type, which lives in pgvector's schema. jsonb_populate_record sets the one column
    -- of NEW named at run time.
    EXECUTE format('SELECT to_jsonb(@extschema@.%I(($1).%I)::text)', fn, src) INTO emb USING NEW;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(tgt, emb));
  END IF;
  RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION clip_embed_on_write_trigger() IS
  'mobileclip: trigger body installed by clip_embed_on_write(table, source, target)';

-- Installs the trigger on `tbl`; returns its name. Rows already in the table are not
-- touched: fill them once with UPDATE tbl SET target = clip_embed_...(source).
CREATE FUNCTION clip_embed_on_write(tbl regclass, source_column name, target_column name)
RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  src_type regtype;
  tgt_type text;
  kind text;
  trg text := left('clip_embed_' || target_column, 63);
BEGIN
  IF tbl IS NULL OR source_column IS NULL OR target_column IS NULL THEN
    RAISE EXCEPTION 'mobileclip: clip_embed_on_write needs a table, a source column and a target column, not NULL'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT atttypid::regtype INTO src_type FROM pg_attribute
   WHERE attrelid = tbl AND attname = source_column AND attnum > 0 AND NOT attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mobileclip: column "%" of % does not exist', source_column, tbl USING ERRCODE = 'undefined_column';
  END IF;
  SELECT t.typname INTO tgt_type FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
   WHERE a.attrelid = tbl AND a.attname = target_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mobileclip: column "%" of % does not exist', target_column, tbl USING ERRCODE = 'undefined_column';
  END IF;
  IF tgt_type <> 'vector' THEN
    RAISE EXCEPTION 'mobileclip: column "%" of % has type %, not vector', target_column, tbl, tgt_type
      USING ERRCODE = 'datatype_mismatch';
  END IF;
  kind := CASE WHEN src_type IN ('text'::regtype, 'character varying'::regtype, 'character'::regtype) THEN 'text'
               WHEN src_type = 'bytea'::regtype THEN 'image' END;
  IF kind IS NULL THEN
    RAISE EXCEPTION 'mobileclip: column "%" of % has type %: text, varchar or bytea (an image file) expected',
      source_column, tbl, src_type USING ERRCODE = 'datatype_mismatch';
  END IF;
  EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION @extschema@.clip_embed_on_write_trigger(%L, %L, %L)',
                 trg, source_column, tbl, source_column, target_column, kind);
  RETURN trg;
END
$fn$;
COMMENT ON FUNCTION clip_embed_on_write(regclass, name, name) IS
  'mobileclip: keep a vector column equal to the embedding of a text or bytea column (a trigger)';
