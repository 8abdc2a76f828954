-- MLX runs inside this backend: the facts come from really running MLX here.
SELECT info->>'mlx_version'           AS mlx_version,
       info->>'device'                AS device,
       info->>'extension_version'     AS extension_version,
       (info->'compile_disabled')::bool AS compile_disabled,
       (info->'self_check'->>'ok')::bool AS self_check_ok,
       (info->'self_check'->>'max_abs_err')::float8 < 1e-4 AS self_check_exact,
       info->'blas'->>'vendor'        AS blas,
       info->'blas'->>'sgemm_library' LIKE '%openblas%' AS sgemm_from_openblas,
       (info->'threads'->>'available_parallelism')::int >= 1 AS has_cores
FROM (SELECT clip_runtime_info() AS info) s;

-- The kernel layer (MLX custom primitives) runs here with a known instruction set, and
-- mobileclip.threads sets its threads and OpenBLAS's together (0 = the cores shared among the
-- backends running a statement: all of them here, alone; clamped to the cores; a GUC range
-- error above 1024).
SELECT info->'threads'->>'kernel_isa' IN ('avx512', 'avx2', 'baseline', 'portable') AS kernel_isa_known,
       (info->'threads'->>'kernel_threads')::int = (info->'threads'->>'available_parallelism')::int AS default_one_per_core,
       (info->'threads'->>'blas_threads')::int = (info->'threads'->>'kernel_threads')::int AS blas_same
FROM (SELECT clip_runtime_info() AS info) s;
SET mobileclip.threads = 1;
SELECT (info->'threads'->>'kernel_threads')::int AS kernel_threads, (info->'threads'->>'blas_threads')::int AS blas_threads
FROM (SELECT clip_runtime_info() AS info) s;
SET mobileclip.threads = 1000;
SELECT (info->'threads'->>'kernel_threads')::int = (info->'threads'->>'available_parallelism')::int AS clamped_to_cores
FROM (SELECT clip_runtime_info() AS info) s;
SET mobileclip.threads = 1025;
RESET mobileclip.threads;
SELECT (info->'threads'->>'kernel_threads')::int = (info->'threads'->>'available_parallelism')::int AS back_to_default
FROM (SELECT clip_runtime_info() AS info) s;

-- At 0 the cores are shared among the backends running a statement: with a second backend
-- busy (a dblink session sleeping), this one takes half of them (at least 1).
CREATE EXTENSION dblink;
SELECT dblink_connect('busy', format('host=127.0.0.1 port=%s user=postgres dbname=%s', current_setting('port'), current_database()));
SELECT dblink_send_query('busy', 'SELECT pg_sleep(30)');
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT (info->'threads'->>'kernel_threads')::int = greatest(1, (info->'threads'->>'available_parallelism')::int / 2) AS shared_with_one_other,
       (info->'threads'->>'blas_threads')::int = (info->'threads'->>'kernel_threads')::int AS blas_same
FROM (SELECT clip_runtime_info() AS info) s;
SELECT dblink_cancel_query('busy');
SELECT dblink_disconnect('busy');
DROP EXTENSION dblink;
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT (info->'threads'->>'kernel_threads')::int = (info->'threads'->>'available_parallelism')::int AS alone_again
FROM (SELECT clip_runtime_info() AS info) s;

-- The micro-benchmarks run in-backend too (timings vary; only their presence is checked).
SELECT b->>'op' AS op, (b->>'median_ms')::float8 > 0 AS timed
FROM jsonb_array_elements(clip_runtime_info(bench => true)->'bench') AS b;

-- A matrix product on MLX from SQL.
SELECT clip_runtime_matmul('{{1,2},{3,4}}', '{{1,0},{0,1}}');
SELECT clip_runtime_matmul('{{1,2,3}}', '{{1},{1},{1}}');
SELECT clip_runtime_matmul('{1,2,3}', '{{2},{2},{2}}');
SELECT clip_runtime_matmul(NULL, '{{1}}') IS NULL AS strict;
