# ETL throughput on a Citus cluster: `scripts/test-citus --bench` sources this once its
# coordinator and worker w1 are up and w2 is started but not yet in the cluster (it uses that
# script's q, port, tmp). Measures, for N captions and N images (the 41 test images,
# repeated; images have no result cache, so every row is decoded and embedded):
#   - single node: plain tables on the coordinator, one backend, mobileclip.threads = 1 and
#     0 (one thread per core);
#   - Citus, 1 worker: 4 shards on w1, so 4 backends embed at once (threads = 1 each);
#   - Citus, 2 workers: w2 added, shards rebalanced (2 + 2).
# Each measurement runs in one coordinator session: a warm-up on a quarter of the rows first,
# so that every connection has loaded the model (Citus keeps up to
# citus.max_cached_conns_per_worker connections per worker between statements; raised to 4
# here), then the timed INSERT ... SELECT of all rows (psql's \timing). Results are checked
# against the single-node embeddings. Prints a markdown table.

say "benchmark data: $bench_texts captions, $bench_images images"
q coord "CREATE TABLE img_src AS
           SELECT (row_number() OVER (ORDER BY f) - 1)::int AS k, pg_read_binary_file('$tmp/images/' || f) AS bytes
           FROM pg_ls_dir('$tmp/images') f" \
  "CREATE TABLE local_raw_photos AS
     SELECT i::bigint AS id, s.bytes FROM generate_series(1, $bench_images) i
     JOIN img_src s ON s.k = (i - 1) % (SELECT count(*) FROM img_src)" \
  "CREATE TABLE local_raw_captions AS
     SELECT i::bigint AS id, format('%s %s, number %s',
              (ARRAY['a photo of', 'a drawing of', 'a close-up of', 'a blurry picture of'])[1 + i % 4],
              (ARRAY['a red bicycle', 'two cats on a sofa', 'a mountain lake', 'a city street at night',
                     'a bowl of soup', 'an old map'])[1 + i % 6], i) AS caption
     FROM generate_series(1, $bench_texts) i" \
  "CREATE TABLE local_photos (id bigint PRIMARY KEY, emb vector(512))" \
  "CREATE TABLE local_captions (id bigint PRIMARY KEY, emb vector(512))" >/dev/null

# seconds OUTPUT: the "Time: X ms" lines of psql's \timing, in seconds, one a line.
seconds() { grep -oE '^Time: [0-9.]+' | awk '{ printf "%.2f\n", $2 / 1000 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }
rows=()
# measure LABEL PREFIX...: PREFIX statements (settings), a warm-up, then the timed ETL of
# captions and images (into the tables named by $dst_captions and $dst_photos).
measure() {
  local label=$1 out t
  shift
  say "$label"
  out=$(q coord '\timing on' "$@" "TRUNCATE $dst_captions, $dst_photos" \
    "INSERT INTO $dst_captions SELECT id, clip_embed_text(caption) FROM $src_captions WHERE id % 4 = 0" \
    "INSERT INTO $dst_photos SELECT id, clip_embed_image(bytes) FROM $src_photos WHERE id % 4 = 0" \
    "TRUNCATE $dst_captions, $dst_photos" \
    "INSERT INTO $dst_captions SELECT id, clip_embed_text(caption) FROM $src_captions" \
    "INSERT INTO $dst_photos SELECT id, clip_embed_image(bytes) FROM $src_photos")
  mapfile -t t < <(seconds <<<"$out" | tail -n 2)
  echo "captions: ${t[0]} s, images: ${t[1]} s"
  rows+=("| $label | $(rate "$bench_texts" "${t[0]}") | $(rate "$bench_images" "${t[1]}") |")
}
# same TABLE REF: rows of TABLE whose vector equals REF's, of all rows.
same() {
  q coord "SELECT count(*) FILTER (WHERE a.emb::text = b.emb::text) || ' of ' || count(*)
           FROM (SELECT id, emb FROM $1) a FULL JOIN (SELECT id, emb FROM $2) b USING (id)"
}

src_captions=local_raw_captions src_photos=local_raw_photos
dst_captions=local_captions dst_photos=local_photos
measure "single node, 1 backend, mobileclip.threads = 1" "SET mobileclip.threads = 1"
measure "single node, 1 backend, mobileclip.threads = 0 (2 threads)" "SET mobileclip.threads = 0"

q coord "CREATE TABLE raw_photos (id bigint PRIMARY KEY, bytes bytea)" \
  "CREATE TABLE photos (id bigint PRIMARY KEY, emb vector(512))" \
  "CREATE TABLE raw_captions (id bigint PRIMARY KEY, caption text)" \
  "CREATE TABLE captions (id bigint PRIMARY KEY, emb vector(512))" \
  "SET citus.shard_count = 4" \
  "SELECT create_distributed_table('raw_photos', 'id')" \
  "SELECT create_distributed_table('photos', 'id', colocate_with => 'raw_photos')" \
  "SELECT create_distributed_table('raw_captions', 'id', colocate_with => 'raw_photos')" \
  "SELECT create_distributed_table('captions', 'id', colocate_with => 'raw_photos')" \
  "INSERT INTO raw_photos SELECT * FROM local_raw_photos" \
  "INSERT INTO raw_captions SELECT * FROM local_raw_captions" >/dev/null
src_captions=raw_captions src_photos=raw_photos dst_captions=captions dst_photos=photos
placements() {
  q coord "SELECT string_agg(nodeport || ': ' || n || ' shards', ', ' ORDER BY nodeport)
           FROM (SELECT nodeport, count(*) n FROM citus_shards WHERE table_name = 'photos'::regclass GROUP BY 1) t"
}
echo "placements: $(placements)"
measure "Citus, 1 worker (4 shards)" "SET citus.max_cached_conns_per_worker = 4"
echo "equal to single node: captions $(same captions local_captions), images $(same photos local_photos)"

q coord "SELECT citus_add_node('127.0.0.1', ${port[w2]})" \
  "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')" "SELECT citus_rebalance_wait()" >/dev/null
echo "placements: $(placements)"
measure "Citus, 2 workers (2 + 2 shards)" "SET citus.max_cached_conns_per_worker = 4"
echo "equal to single node: captions $(same captions local_captions), images $(same photos local_photos)"

echo
echo "ETL throughput, rows/s ($bench_texts captions, $bench_images images; S0 random weights;"
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo
echo "| setup | captions/s | images/s |"
echo "|---|---:|---:|"
printf '%s\n' "${rows[@]}"
