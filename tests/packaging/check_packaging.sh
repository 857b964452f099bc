#!/usr/bin/env bash
# check_packaging.sh BUILD_DIR SOURCE_DIR — what dist/container and dist/kubernetes promise,
# checked against the build:
#  1. `cmake --install` gives a tree that runs: bin/sluice finds every built-in plugin in
#     lib/sluice/plugins, serves /api/ping and /api/health, and stops cleanly on SIGTERM.
#  2. Every library the installed binary and plugins link directly comes from a package the
#     Dockerfile's runtime stage installs (or from libc6 / libgcc-s1, which every image has).
#  3. dist/kubernetes/deployment.yaml passes only options `sluice serve` knows, probes paths that
#     answer without a token, and runs as the image's user on the port it listens on.
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
node_pid=
cleanup() {
  if [[ -n "$node_pid" ]]; then kill "$node_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- 1. the install tree runs -------------------------------------------------------------------
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" || fail "cmake --install: $(tail -5 "$work/install.log")"
prefix=$work/prefix
[[ -x $prefix/bin/sluice ]] || fail "no bin/sluice in the install tree"
[[ -d $prefix/lib/sluice/plugins ]] || fail "no lib/sluice/plugins in the install tree"
for tool in objdump ldd dpkg curl; do
  command -v "$tool" > /dev/null || fail "$tool is needed (binutils, libc-bin, dpkg, curl)"
done
# The plugins the install manifest lists (not a glob of the build tree, which may hold stale ones).
installed=$(grep -c '/lib/sluice/plugins/[^/]*\.so$' "$build/install_manifest.txt" || true)
(( installed > 0 )) || fail "the install manifest lists no plugins"
found=$(find "$prefix/lib/sluice/plugins" -maxdepth 1 -name '*.so' | wc -l)
(( found == installed )) || fail "$found plugins in the install tree, the manifest lists $installed"
[[ -f $prefix/include/sluice/plugin.h ]] || fail "the SDK's C contract (include/sluice/plugin.h) is not installed"

"$prefix/bin/sluice" serve --storage memory --port 0 --data-dir "$work/data" > "$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 100); do
  [[ -s $work/data/sluice.port ]] && break
  kill -0 "$node_pid" 2>/dev/null || fail "the installed node exited: $(tail -5 "$work/node.log")"
  sleep 0.1
done
port=$(cat "$work/data/sluice.port" 2>/dev/null) || fail "the installed node wrote no sluice.port"
loaded=$(grep -c "loaded plugin .* from $prefix/lib/sluice/plugins/" "$work/node.log" || true)
(( loaded == installed )) || fail "the installed node loaded $loaded of $installed plugins from $prefix/lib/sluice/plugins"
for path in /api/ping /api/health; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path") || code=000
  [[ $code == 200 ]] || fail "GET $path answered $code"
done
kill -TERM "$node_pid"
status=0
wait "$node_pid" || status=$?
node_pid=
(( status == 0 )) || fail "the node exited with $status on SIGTERM"

# ---- 2. runtime packages ------------------------------------------------------------------------
dockerfile=$source/dist/container/Dockerfile
listed=" libc6 libgcc-s1 $(sed -n '/# runtime-packages-begin/,/# runtime-packages-end/p' "$dockerfile" |
  grep -o '\blib[a-z0-9.+-]*[0-9a-z]\b' | tr '\n' ' ') "
declare -A package_of  # soname → Debian package (dpkg -S takes ~0.1 s: once per library)
while read -r elf; do
  needed=$(objdump -p "$elf" | awk '$1 == "NEEDED" && $2 !~ /^ld-linux/ {print $2}') || fail "objdump -p $elf failed"
  [[ -n "$needed" ]] || fail "objdump found no libraries that $elf needs"
  for soname in $needed; do
    if [[ -z ${package_of[$soname]:-} ]]; then
      path=$(ldd "$elf" | awk -v s="$soname" '$1 == s {print $3}')
      [[ -n "$path" && -e "$path" ]] || fail "$elf needs $soname, which is not found"
      package=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) || true
      [[ -n "$package" ]] || package=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) || true
      [[ -n "$package" ]] || fail "$soname ($path) belongs to no Debian package"
      package_of[$soname]=$package
    fi
    [[ $listed == *" ${package_of[$soname]} "* ]] ||
      fail "$(basename "$elf") links $soname from package ${package_of[$soname]}, which the Dockerfile's runtime stage does not install"
  done
done < <(find "$prefix/bin" "$prefix/lib/sluice/plugins" -type f \( -name sluice -o -name '*.so' \))

# ---- 3. the Kubernetes manifests ----------------------------------------------------------------
deployment=$source/dist/kubernetes/deployment.yaml
# The options `sluice serve` takes: its block of the usage text, up to the client commands.
usage=$("$prefix/bin/sluice" --help | sed -n '/^sluice serve/,/^Client commands/p')
[[ -n "$usage" ]] || fail "sluice --help has no 'sluice serve' section"
args=$(sed -n '/^ *args:/,/^ *envFrom:/p' "$deployment")
[[ -n "$args" ]] || fail "no args in $deployment"
grep -q -- '- serve$' <<< "$args" || fail "the container does not run sluice serve"
for option in $(grep -o -- '- --[a-z-]*' <<< "$args" | cut -c3-); do
  grep -q -- "^  $option " <<< "$usage" || fail "deployment.yaml passes $option, which sluice serve does not know"
done
arg_port=$(grep -A1 -- '- --port' <<< "$args" | tail -1 | grep -o '[0-9]\+')
container_port=$(grep -A1 'name: http' "$deployment" | grep -o 'containerPort: [0-9]*' | grep -o '[0-9]*')
[[ -n "$arg_port" && $arg_port == "$container_port" ]] || fail "--port $arg_port but containerPort $container_port"
for path in $(grep -o 'path: /[^ ]*' "$deployment" | cut -d' ' -f2 | sort -u); do
  [[ $path == /api/ping || $path == /api/health ]] || fail "probe path $path needs a token or does not exist"
done
image_uid=$(grep -o -- '--uid [0-9]*' "$dockerfile" | grep -o '[0-9]*')
grep -q "runAsUser: $image_uid$" "$deployment" || fail "deployment.yaml does not run as the image's user $image_uid"
grep -q "USER $image_uid" "$dockerfile" || fail "the image does not switch to its user $image_uid"
echo "packaging: $installed plugins installed and loaded, runtime packages and manifests consistent"
