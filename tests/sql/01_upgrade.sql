-- Upgrades: a database that installed 0.1.0 (the first release) and ran
-- ALTER EXTENSION mobileclip UPDATE has exactly the objects of a fresh install of the
-- current version (00_create, this database), with the same definitions and comments; its
-- old and new functions work. The comparison goes through dblink to the other database.
CREATE EXTENSION dblink;
CREATE DATABASE mobileclip_upgrade;
\c mobileclip_upgrade
CREATE EXTENSION vector;
CREATE EXTENSION mobileclip VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'mobileclip';
-- 0.1.0's SQL runs on the current library (one mobileclip.so serves every version).
SELECT vector_dims(clip_embed_text('a dog')) AS dims_at_0_1_0;
ALTER EXTENSION mobileclip UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'mobileclip') AS at_default_version
FROM pg_extension WHERE extname = 'mobileclip';
\c mobileclip_regress
CREATE TEMP VIEW ext_objects AS
SELECT * FROM dblink(format('host=127.0.0.1 port=%s user=postgres dbname=%s', current_setting('port'), 'mobileclip_upgrade'), $q$
  SELECT pg_describe_object(d.classid, d.objid, 0),
         CASE WHEN d.classid = 'pg_proc'::regclass THEN pg_get_functiondef(d.objid) END,
         obj_description(d.objid, d.classid::regclass::name)
  FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
  WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'mobileclip' AND d.deptype = 'e'
$q$) AS t(obj text, def text, comment text);
CREATE TEMP VIEW fresh_objects AS
  SELECT pg_describe_object(d.classid, d.objid, 0) AS obj,
         CASE WHEN d.classid = 'pg_proc'::regclass THEN pg_get_functiondef(d.objid) END AS def,
         obj_description(d.objid, d.classid::regclass::name) AS comment
  FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
  WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'mobileclip' AND d.deptype = 'e';
SELECT count(*) AS objects FROM fresh_objects;
-- Differences in either direction: none.
(SELECT 'only after upgrade' AS side, obj FROM (SELECT * FROM ext_objects EXCEPT SELECT * FROM fresh_objects) a)
UNION ALL
(SELECT 'only in a fresh install', obj FROM (SELECT * FROM fresh_objects EXCEPT SELECT * FROM ext_objects) b)
ORDER BY 1, 2;
-- The functions 0.2.0 added work in the upgraded database.
SELECT * FROM dblink(format('host=127.0.0.1 port=%s user=postgres dbname=%s', current_setting('port'), 'mobileclip_upgrade'), $q$
  SELECT (SELECT count(*) FROM clip_classify(clip_embed_text('a cat'), ARRAY['cat', 'dog'])),
         clip_embed_image('\x00'::bytea, on_error => 'null') IS NULL,
         clip_check_image('\x00'::bytea) IS NOT NULL
$q$) AS t(classify_rows bigint, on_error_null boolean, check_image boolean);
DROP DATABASE mobileclip_upgrade;
DROP VIEW ext_objects, fresh_objects;
DROP EXTENSION dblink;
