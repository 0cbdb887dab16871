# bench-lib.sh - sourced by ci/bench-{compose,commit,delta,publish,scale}.sh.
# shellcheck shell=bash
#
# Machine-readable results: with BENCH_TSV=FILE set, every measured step appends one row to
# FILE (the header first when FILE is empty or missing); unset, nothing is written.
#   date            UTC, ISO 8601, when the row was written
#   load1           1-minute load average when the row was written
#   corpus          corpus directory (absolute)
#   installed_bytes corpus v1's installed size (STATS.json; else STATS.txt's MiB figure)
#   tool            arbor | stock
#   step            the same name for arbor and the stock tool it is compared with
#   wall_s cpu_s    median over `runs` runs (cpu = user + system of the process tree)
#   peak_rss_bytes  largest peak RSS over the runs (one process: /usr/bin/time's %M)
#   output_bytes    what the step wrote (repository, delta, upload), empty when meaningless
#   runs            number of runs the medians are over
#   note            the command, counts (free text, no tabs)
BENCH_TSV_HEADER=$'date\tload1\tcorpus\tinstalled_bytes\ttool\tstep\twall_s\tcpu_s\tpeak_rss_bytes\toutput_bytes\truns\tnote'

# bench_installed_bytes CORPUS_DIR: corpus v1's installed bytes.
bench_installed_bytes() {
    local c=$1
    if [ -f "$c/STATS.json" ]; then
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["v1"]["installed_bytes"])' "$c/STATS.json" && return
    fi
    if [ -f "$c/STATS.txt" ]; then
        awk '$1 == "v1" { for (i = 2; i <= NF; i++) if ($(i) == "installed") { printf "%d\n", $(i-1) * 1048576; exit } }' "$c/STATS.txt"
        return
    fi
    echo ""
}

# bench_tsv CORPUS_DIR TOOL STEP WALL_S CPU_S PEAK_RSS_KB OUTPUT_BYTES RUNS [NOTE]
# Appends a row to $BENCH_TSV (no-op when unset). PEAK_RSS_KB as /usr/bin/time gives it.
bench_tsv() {
    [ -n "${BENCH_TSV:-}" ] || return 0
    local corpus tool=$2 step=$3 wall=$4 cpu=$5 rss=$6 out=$7 runs=$8 note=${9:-} rssb=""
    corpus=$(cd "$1" && pwd)
    [ -n "$rss" ] && rssb=$((rss * 1024))
    mkdir -p "$(dirname "$BENCH_TSV")"
    [ -s "$BENCH_TSV" ] || echo "$BENCH_TSV_HEADER" > "$BENCH_TSV"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$corpus" "$(bench_installed_bytes "$corpus")" "$tool" "$step" \
        "$wall" "$cpu" "$rssb" "$out" "$runs" "$(printf '%s' "$note" | tr '\t\n' '  ')" >> "$BENCH_TSV"
}

# bench_tsv_lines CORPUS_DIR < lines of "tool<TAB>step<TAB>wall<TAB>cpu<TAB>rss_kb<TAB>out<TAB>runs<TAB>note"
# ("-" for an empty field: read(1) folds consecutive tabs)
bench_tsv_lines() {
    local tool step wall cpu rss out runs note
    while IFS=$'\t' read -r tool step wall cpu rss out runs note; do
        [ "$out" = - ] && out=
        [ "$rss" = - ] && rss=
        bench_tsv "$1" "$tool" "$step" "$wall" "$cpu" "$rss" "$out" "$runs" "$note"
    done
}

# bench_bytes PATH: apparent size in bytes of a file or tree.
bench_bytes() { du -sb --apparent-size "$1" | cut -f1; }

# bench_corpus_tree CORPUS_DIR TREE: corpus v1's tree (ci/corpus-tree.sh v1) at TREE.
# A tree these scripts built carries a stamp beside it (TREE.corpus, the corpus it came
# from) and is rebuilt when the corpus differs; an existing tree without a stamp is used
# as it is (a tree given by hand).
bench_corpus_tree() {
    local corpus tree=$2 here
    corpus=$(cd "$1" && pwd)
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [ -d "$tree/usr" ] && { [ ! -f "$tree.corpus" ] || [ "$(cat "$tree.corpus")" = "$corpus" ]; }; then
        return 0
    fi
    mkdir -p "$(dirname "$tree")"
    echo "$corpus (incomplete)" > "$tree.corpus"
    CORPUS=$corpus bash "$here/corpus-tree.sh" v1 "$tree"
    echo "$corpus" > "$tree.corpus"
}
