-- Cancel inside a batch (issue 12/13): pg_cancel_backend and statement_timeout stop a
-- 256-image call at mobileclip.batch_size = 256 within one piece of the graph (the engine
-- evaluates a batch per image/stage/block and checks for interrupts after each), not at the
-- end of the batch; the backend then goes on working. The call would run ~10 s uncancelled
-- on 2 cores (S0); the bound checked here is 2 s.
CREATE EXTENSION dblink;
SELECT dblink_connect('c', format('host=127.0.0.1 port=%s user=postgres dbname=%s', current_setting('port'), current_database()));
SELECT pid AS remote_pid FROM dblink('c', 'SELECT pg_backend_pid()') AS r(pid int) \gset
SELECT dblink_exec('c', 'SET mobileclip.batch_size = 256');
-- Warm up the remote session (model and both towers loaded), so the cancel hits embedding.
SELECT * FROM dblink('c', 'SELECT clip_load() IS NOT NULL') AS r(ok bool);

-- pg_cancel_backend during 256 images.
SELECT dblink_send_query('c', $$SELECT count(*) FROM unnest(clip_embed_images(ARRAY(
  SELECT pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg') FROM generate_series(1, 256))))$$) AS sent;
SELECT pg_sleep(1);
CREATE TEMP TABLE cancel AS
SELECT dblink_is_busy('c') = 1 AS still_running, clock_timestamp() AS at, pg_cancel_backend(:remote_pid) AS signalled;
DO $$ BEGIN WHILE dblink_is_busy('c') = 1 LOOP PERFORM pg_sleep(0.01); END LOOP; END $$;
SELECT still_running, signalled, clock_timestamp() - at < interval '2 s' AS stopped_within_2s FROM cancel;
SELECT * FROM dblink_get_result('c', false) AS r(n bigint);
SELECT * FROM dblink_get_result('c', false) AS r(n bigint);  -- the end of the results
SELECT dblink_error_message('c') LIKE '%canceling statement due to user request%' AS cancelled;
-- The same backend goes on working.
SELECT pid = :remote_pid AS same_backend, dims
FROM dblink('c', 'SELECT pg_backend_pid(), vector_dims(clip_embed_text(''after the cancel''))') AS r(pid int, dims int);

-- The same for 256 texts.
SELECT dblink_send_query('c', $$SELECT count(*) FROM unnest(clip_embed_texts(ARRAY(
  SELECT 'a photo number ' || i || ' of a long series of photos of cats and dogs' FROM generate_series(1, 256) i)))$$) AS sent;
SELECT pg_sleep(1);
TRUNCATE cancel;
INSERT INTO cancel SELECT dblink_is_busy('c') = 1, clock_timestamp(), pg_cancel_backend(:remote_pid);
DO $$ BEGIN WHILE dblink_is_busy('c') = 1 LOOP PERFORM pg_sleep(0.01); END LOOP; END $$;
SELECT still_running, signalled, clock_timestamp() - at < interval '2 s' AS stopped_within_2s FROM cancel;
SELECT * FROM dblink_get_result('c', false) AS r(n bigint);
SELECT * FROM dblink_get_result('c', false) AS r(n bigint);  -- the end of the results
SELECT dblink_error_message('c') LIKE '%canceling statement due to user request%' AS cancelled;
SELECT dblink_disconnect('c');

-- statement_timeout: a 500 ms limit ends a 256-image call within 2 s of its start (caught
-- here to measure; query_canceled is what the client gets otherwise).
SET mobileclip.batch_size = 256;
CREATE FUNCTION timeout_after_75() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM clip_embed_images(ARRAY(SELECT pg_read_binary_file('/tmp/mobileclip-regress/images/jpeg_420.jpg') FROM generate_series(1, 256)));
  RETURN 'completed';
EXCEPTION WHEN query_canceled THEN
  RETURN CASE WHEN clock_timestamp() - statement_timestamp() < interval '2 s' THEN 'timed out within 2 s' ELSE 'timed out late: ' || (clock_timestamp() - statement_timestamp()) END
         || ' (' || SQLERRM || ')';
END $$;
SELECT clip_load() IS NOT NULL AS warm;
SET statement_timeout = '500ms';
SELECT timeout_after_75() AS outcome;
RESET statement_timeout;
SELECT vector_dims(clip_embed_text('after the timeout')) AS dims;
RESET mobileclip.batch_size;
DROP FUNCTION timeout_after_75();
DROP EXTENSION dblink;
