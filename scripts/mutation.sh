#!/usr/bin/env bash
# Mutation testing and coverage of the fast tests, for a developer before resolving an issue (not CI).
#
#   scripts/mutation.sh                 # the default selection below
#   scripts/mutation.sh 'engine.metrics.x_ssim*'   # only these mutants (mutmut names, globs allowed)
#
# mutmut (pinned in pyproject's dev extras and constraints.txt) copies engine/ and hsi_gdal/ into
# mutants/, changes one thing at a time in the modules that [tool.mutmut] only_mutate names, and runs
# the fast tests that cover the changed function (pytest_add_cli_args_test_selection); a mutant that no
# test notices "survived". `.venv/bin/mutmut show NAME` shows one, `.venv/bin/mutmut browse` all.
# Coverage (pytest-cov) is of the same fast tests over engine/ and hsi_gdal/.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
PY=.venv/bin/python
JOBS=${JOBS:-2}
# Default selection: tiling's tile cutting and stitching, the rate control's worst-tile measurement and
# two metrics: 233 of the 1,211 mutants of the four only_mutate modules (145 took 15 min on 2 busy cores).
DEFAULT=('engine.tiling.x_extract_tile*' 'engine.tiling.x_stitch_tile*' 'engine.tiling.x__check_cube*'
         'engine.rate_control.x_measure_tiles*' 'engine.metrics.x_psnr_per_band*' 'engine.metrics.x_sam*')
[ $# -gt 0 ] || set -- "${DEFAULT[@]}"

mapfile -t TESTS < <($PY -c 'import tomllib; c = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]
print("\n".join(c["pytest_add_cli_args_test_selection"]))')

echo "== coverage of the fast tests: ${TESTS[*]}"
[ -n "${SKIP_COVERAGE:-}" ] || nice $PY -m pytest -q -p no:cacheprovider --cov=engine --cov=hsi_gdal --cov-report=term "${TESTS[@]}" \
    | grep -E "^(TOTAL|engine/(rate_control|metrics|tiling)\.py|hsi_gdal/sidecar\.py)|passed|failed"

echo "== mutation testing: $*"
rm -rf mutants
start=$(date +%s)
nice .venv/bin/mutmut run --max-children "$JOBS" "$@" > mutants.log 2>&1 || { tail -20 mutants.log; exit 1; }
rm -f mutants.log
echo "mutmut run: $(( $(date +%s) - start )) s"
.venv/bin/mutmut results --all true > mutants/results.txt
$PY - "$@" <<'PY'
import collections, fnmatch, sys
lines = [l.strip() for l in open("mutants/results.txt") if ":" in l]
status = {n.strip(): s.strip() for n, s in (l.rsplit(":", 1) for l in lines)}
chosen = {n: s for n, s in status.items() if any(fnmatch.fnmatchcase(n, g) for g in sys.argv[1:])}
count = collections.Counter(chosen.values())
killed, survived = count.get("killed", 0), count.get("survived", 0)
print(f"mutants {len(chosen)}: " + ", ".join(f"{k} {v}" for k, v in sorted(count.items())))
if killed + survived:
    print(f"score (killed / (killed + survived)): {killed / (killed + survived):.1%}")
for n, s in sorted(chosen.items()):
    if s != "killed":
        print(f"  {s}: {n}")
PY
