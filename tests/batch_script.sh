#!/usr/bin/env bash
# A shell script as a user would write it: separate a folder, trust the exit code and the manifest.
# Usage: batch_script.sh WORKDIR SAMPLE_WAV   (NMFSEP: the command to run, e.g. "python -m nmfsep")
set -u
work=$1
sample=$2
nmfsep=${NMFSEP:-nmfsep}
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/in/more"
cp "$sample" "$work/in/a.wav"
cp "$sample" "$work/in/more/b.wav"
echo "this is not audio" > "$work/in/notes.wav"
: > "$work/in/empty.wav"

$nmfsep separate "$work/in" "$work/missing.wav" -r -m 2 --max-iter 10 -o "$work/out" \
    --manifest "$work/run.json" -q
status=$?
[ "$status" -eq 1 ] || fail "expected exit 1 with bad inputs among good ones, got $status"
[ -f "$work/out/a/c1.wav" ] && [ -f "$work/out/a/c2.wav" ] || fail "a.wav was not separated"
[ -f "$work/out/more/b/c2.wav" ] || fail "more/b.wav was not separated into out/more/b/ (recursion mirrors the tree)"
python3 - "$work/run.json" <<'PY' || fail "manifest does not match"
import json, sys
manifest = json.load(open(sys.argv[1]))
status = {f["input"].rsplit("/", 1)[-1]: f["status"] for f in manifest["files"]}
assert status == {"a.wav": "done", "b.wav": "done", "notes.wav": "failed", "empty.wav": "failed",
                  "missing.wav": "failed"}, status
assert manifest["summary"] == {"done": 2, "skipped": 0, "failed": 3}, manifest["summary"]
assert all(f["error"] for f in manifest["files"] if f["status"] == "failed")
PY

# a rerun with --skip-existing does nothing new and still reports the failures
$nmfsep separate "$work/in" -r -m 2 --max-iter 10 -o "$work/out" --skip-existing -q --manifest "$work/rerun.json"
status=$?
[ "$status" -eq 1 ] || fail "rerun: expected exit 1, got $status"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["summary"]; assert s == {"done": 0, "skipped": 2, "failed": 2}, s' \
    "$work/rerun.json" || fail "rerun: the good files were not skipped"

# only good files: exit 0
$nmfsep separate "$work/in/a.wav" "$work/in/more/b.wav" -m 2 --max-iter 10 -o "$work/out2" -q || fail "good files failed"

# usage errors exit 2 and start nothing
$nmfsep separate "$work/in/a.wav" -m 0 -o "$work/out3" 2>/dev/null
[ $? -eq 2 ] || fail "-m 0 should exit 2"
[ ! -e "$work/out3" ] || fail "a usage error wrote something"
echo "batch script OK"
