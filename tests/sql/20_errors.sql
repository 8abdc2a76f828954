-- An error raised inside MLX becomes an ERROR (SQLSTATE 38000), and the backend lives on.
SELECT pg_backend_pid() AS pid \gset
SELECT clip_runtime_matmul('{{1,2,3},{4,5,6}}', '{{1,2},{3,4}}');
DO $$
BEGIN
  PERFORM clip_runtime_matmul('{{1,2,3},{4,5,6}}', '{{1,2},{3,4}}');
EXCEPTION WHEN external_routine_exception THEN
  RAISE NOTICE 'caught SQLSTATE %', SQLSTATE;
END $$;
-- The next statement in the same session works, in the same backend.
SELECT clip_runtime_matmul('{{2}}', '{{3}}') AS after_error, pg_backend_pid() = :pid AS same_backend;

-- Sizes are bounded before MLX allocates (a failed MLX allocation would crash the backend).
SELECT clip_runtime_matmul(array_fill(1::real, ARRAY[100000, 1]), array_fill(1::real, ARRAY[1, 100000]));
DO $$
BEGIN
  PERFORM clip_runtime_matmul(array_fill(1::real, ARRAY[100000, 1]), array_fill(1::real, ARRAY[1, 100000]));
EXCEPTION WHEN program_limit_exceeded THEN
  RAISE NOTICE 'caught SQLSTATE %', SQLSTATE;
END $$;

-- Bad arrays are refused before MLX sees them (SQLSTATE 22023).
SELECT clip_runtime_matmul('{{1,NULL}}', '{{1},{1}}');
SELECT clip_runtime_matmul('{{{1}}}', '{{1}}');
SELECT clip_runtime_matmul('{}', '{{1}}');

-- The device setting: gpu needs Metal (macOS); on this build it is a clean ERROR (0A000).
SET mobileclip.device = 'gpu';
SELECT clip_runtime_info()->>'device';
DO $$
BEGIN
  PERFORM clip_runtime_info();
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'caught SQLSTATE %', SQLSTATE;
END $$;
RESET mobileclip.device;
SELECT clip_runtime_info()->>'device' AS device;
SET mobileclip.device = 'tpu';

-- The mobileclip.* prefix is reserved: a misspelt setting is an error, not a placeholder.
SET mobileclip.devcie = 'cpu';

-- statement_timeout / cancel are honoured between benchmark cases.
SET statement_timeout = '5ms';
SELECT clip_runtime_info(bench => true) IS NOT NULL;
RESET statement_timeout;
SELECT clip_runtime_matmul('{{1}}', '{{1}}') AS still_works, pg_backend_pid() = :pid AS same_backend;
