#!/usr/bin/env bash
# The Docker image's build steps, without Docker (see Dockerfile), run in CI (.ci/run):
#   1. build, and `npm pack` the package as it would be published;
#   2. check the tarball holds only what package.json's "files" names (no tests, no benchmarks) and its bin;
#   3. install the tarball into an empty folder, its dependencies from the registry and no devDependencies;
#   4. run the installed `flotilla`: --version (= package.json's), `list` on the repo's migrations
#      (every file listed, exit 0), `worker --help`, and import the library by its package name.
# Whatever the build is (tsc, an esbuild bundle), this tests what a user installs.
# Exit 0 when all of it works; otherwise 1 and the step that failed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "package-check: $*" >&2; exit 1; }
step() { echo "package-check: $*"; }

cd "$repo"
step "build"
npm run build --silent >/dev/null || fail "npm run build failed"
step "npm pack"
tarball="$(npm pack --silent --pack-destination "$work" | tail -1)"
[ -f "$work/$tarball" ] || fail "npm pack produced no tarball"
files="$(tar -tzf "$work/$tarball")"
# what package.json's "files" names (plus what npm always adds), and never a test or a benchmark
node -e '
  const pkg = require(process.argv[1]);
  const allowed = (pkg.files ?? []).map((f) => f.replace(/^\.?\//, "").replace(/\/$/, ""));
  const always = /^(package\.json|README(\.md)?|LICEN[CS]E(\.md)?|CHANGELOG(\.md)?)$/i;
  const bins = Object.values(typeof pkg.bin === "string" ? { x: pkg.bin } : (pkg.bin ?? {})).map((b) => b.replace(/^\.?\//, ""));
  const files = process.argv[2].split("\n").filter(Boolean).map((f) => f.replace(/^package\//, ""));
  const bad = files.filter((f) => !always.test(f) && !allowed.some((a) => f === a || f.startsWith(a + "/")));
  const tests = files.filter((f) => /(^|\/)(test|tests|__tests__|bench|\.bench-dist)\//.test(f) || /\.test\.[cm]?[jt]s$/.test(f));
  const missing = bins.filter((b) => !files.includes(b));
  const problems = [
    ...bad.map((f) => `${f}: not named by package.json "files"`),
    ...tests.map((f) => `${f}: a test or benchmark`),
    ...missing.map((b) => `${b}: the bin is missing`),
  ];
  if (!files.length) problems.push("the package is empty");
  if (problems.length) { console.error(problems.join("\n")); process.exit(1); }
' "$repo/package.json" "$files" || fail "the package holds the wrong files (above)"

step "install $tarball into an empty folder (dependencies from the registry, no devDependencies)"
mkdir "$work/app"
cd "$work/app"
printf '{ "name": "package-check", "private": true }\n' >package.json
npm install --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error "$work/$tarball" >/dev/null || fail "npm install of the tarball failed"
bin="$work/app/node_modules/.bin/flotilla"
[ -x "$bin" ] || fail "the package installs no flotilla command"

step "flotilla --version"
want="$(node -p "require('$repo/package.json').version")"
got="$("$bin" --version)" || fail "flotilla --version exited $?"
[ "$got" = "$want" ] || fail "flotilla --version printed '$got', package.json says '$want'"

step "flotilla list --dir $repo/migrations"
out="$("$bin" list --dir "$repo/migrations")" || fail "flotilla list exited $?:
$out"
count=0
for f in "$repo"/migrations/*.sql; do
  name="$(basename "$f")"
  count=$((count + 1))
  grep -qF "$name" <<<"$out" || fail "flotilla list does not show $name:
$out"
done
[ "$count" -gt 0 ] || fail "no migrations in $repo/migrations to list"
json="$("$bin" list --dir "$repo/migrations" --json)" || fail "flotilla list --json exited $?"
node -e '
  const v = JSON.parse(process.argv[1]);
  const n = Array.isArray(v) ? v.length : (v.migrations ?? v.files ?? []).length;
  if (n !== Number(process.argv[2])) { console.error(`list --json holds ${n} migrations, the folder ${process.argv[2]}`); process.exit(1); }
' "$json" "$count" || fail "flotilla list --json does not match the folder"

step "flotilla worker --help"
help="$("$bin" worker --help)" || fail "flotilla worker --help exited $?"
grep -q -- '--metrics-port' <<<"$help" || fail "flotilla worker --help does not show --metrics-port"

step "import the library"
node --input-type=module -e "
  const m = await import('flotilla');
  for (const name of ['Migrator', 'MigrationValidator']) if (typeof m[name] !== 'function') throw new Error('flotilla exports no ' + name);
" || fail "import('flotilla') failed"

echo "package-check: ok ($tarball: $(wc -l <<<"$files") files; flotilla $got; $count migrations listed)"
