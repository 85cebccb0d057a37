#!/usr/bin/env bash
# Builds the container images of the service and the failover controller
# with buildah, and smoke-tests each from its image root.
#
#   scripts/images.sh                 release build of the binaries, images
#                                     localhost/geo/<binary>:local
#   scripts/images.sh --profile debug the binaries of `cargo build` (what
#                                     scripts/test.sh already built): the
#                                     quick variant the test command runs
#   scripts/images.sh --release PREFIX [--push]
#                                     the release pipeline's build: the
#                                     Containerfiles' pinned bases, the
#                                     binary compiled in the build stage
#                                     (needs the registry), images
#                                     PREFIX/<binary>:<commit>; --push pushes
#                                     them and writes target/images/
#                                     digests.env for scripts/deploy.sh
#
# No registry is reachable here, so the local variants take the binary from
# target/ (stage "prebuilt") and a runtime base assembled from this host's
# files (localhost/geo/runtime-base:local): the shared libraries the
# binaries link (glibc, libgcc, libm, the loader), the NSS modules,
# /etc/passwd and /etc/group with the user nonroot (65532), nsswitch.conf
# and the CA bundle, and nothing else: no shell, no package manager.
#
# Smoke test of each image (buildah mount + chroot, since `podman run`
# cannot set rlimits here): the image's user is 65532 and its entrypoint
# the binary; the root holds no shell; `<binary> --version` and `--help`
# run from the image root as user 65532 and print the binary's name; the
# service also serves from its image root mounted read-only (as
# readOnlyRootFilesystem runs it).
# Sizes go to target/images/sizes.txt.
#
# Storage stays in target/images (vfs driver, chroot isolation), so nothing
# outside the repository changes; buildah is installed from the OS
# packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

profile=release
release_tag=
push=no
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --release) release_tag=$2; shift 2 ;;
    --push) push=yes; shift ;;
    *) echo "usage: $0 [--profile release|debug] [--release REGISTRY_PREFIX [--push]]" >&2; exit 2 ;;
  esac
done
binaries=(service failover-controller)

if ! command -v buildah >/dev/null 2>&1; then
  echo "images.sh: installing buildah from the OS packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

work="$root/target/images"
mkdir -p "$work"
export BUILDAH_ISOLATION=chroot
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
bud() { buildah "${storage[@]}" "$@"; }

fail() {
  echo "images.sh: FAILED: $*" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The service, from its image root mounted read-only (a mount namespace of
# its own, gone when it exits), as user 65532, with an empty environment
# and a database that refuses: it must start, answer /livez 200 and /readyz
# 503, and serve /metrics on the admin port, writing nothing.
serve_read_only() {
  local image_root=$1 port admin ro="$work/ro-root" answers
  port=$(free_port)
  admin=$(free_port)
  mkdir -p "$ro"
  timeout 10 unshare -m sh -c "mount --bind '$image_root' '$ro' && mount -o remount,bind,ro '$ro' \
    && exec env -i SERVICE_REGION=us-east-1 SERVICE_DATABASE_URL=postgres://ledger@127.0.0.1:9/ledger \
       SERVICE_LISTEN_ADDRESS=127.0.0.1:$port SERVICE_ADMIN_ADDRESS=127.0.0.1:$admin \
       $(command -v chroot) --userspec=65532:65532 '$ro' /usr/local/bin/service" >"$work/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/livez" && break
    sleep 0.1
  done
  answers=$(for path in "$port/livez" "$port/readyz" "$admin/metrics"; do
    curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$path"
  done)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$answers" = "200 503 200 " ] \
    || fail "service from a read-only image root answered /livez /readyz /metrics with '$answers' (log: $work/serve.log)"
  echo "service serves from a read-only image root as 65532 (/livez 200, /readyz 503 without its database, /metrics 200)" >&2
}

if [ -n "$release_tag" ]; then
  # The pipeline's build: every FROM must be pinned by digest. With --push,
  # each image goes to the registry and target/images/digests.env records
  # the digests that scripts/deploy.sh pins the overlays to.
  version=${VERSION:-$(git rev-parse --short=12 HEAD)}
  : >"$work/digests.env"
  for bin in "${binaries[@]}"; do
    grep -E '^ARG (BUILD|RUNTIME)_IMAGE=' "$bin/Containerfile" | grep -vq '@sha256:[0-9a-f]\{64\}$' \
      && fail "$bin/Containerfile: a base image without a digest"
    nice -n 15 "$(command -v buildah)" "${storage[@]}" \
      bud --layers -f "$bin/Containerfile" -t "$release_tag/$bin:$version" .
    if [ "$push" = yes ]; then
      bud push --digestfile "$work/$bin.digest" "$release_tag/$bin:$version" "docker://$release_tag/$bin:$version"
      variable=$(echo "${bin}_IMAGE" | tr 'a-z-' 'A-Z_')
      echo "$variable=$release_tag/$bin@$(cat "$work/$bin.digest")" >>"$work/digests.env"
    fi
  done
  [ "$push" = yes ] && echo "images.sh: digests in $work/digests.env" >&2
  exit 0
fi

# The workspace's binaries, as scripts/test.sh builds them (the same
# feature set, so the debug variant reuses the test build).
echo "== images: cargo build ($profile)" >&2
if [ "$profile" = release ]; then
  nice -n 15 cargo build --release --locked --workspace --bins
else
  nice -n 15 cargo build --locked --workspace --bins
fi

echo "== images: runtime base from this host's files" >&2
# The shared libraries the binaries need, resolved by the loader, plus the
# NSS modules that name resolution may load.
libraries=$(for bin in "${binaries[@]}"; do ldd "target/$profile/$bin"; done \
  | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | sort -u)
base=$(bud from scratch)
trap 'bud rm "$base" >/dev/null 2>&1 || true' EXIT
mnt=$(bud mount "$base")
for library in $libraries /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2; do
  [ -e "$library" ] || continue
  install -D -m 0644 "$(readlink -f "$library")" "$mnt$library"
done
chmod 0755 "$mnt"/lib64/ld-linux-x86-64.so.2
install -d -m 0755 "$mnt/etc" "$mnt/etc/ssl/certs" "$mnt/usr/local/bin" "$mnt/home/nonroot"
install -d -m 1777 "$mnt/tmp"
chown 65532:65532 "$mnt/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$mnt/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$mnt/etc/group"
printf 'hosts: files dns\n' >"$mnt/etc/nsswitch.conf"
[ -f /etc/ssl/certs/ca-certificates.crt ] && install -m 0644 /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/"
bud unmount "$base" >/dev/null
bud config --user 65532:65532 --workingdir /home/nonroot "$base"
bud commit -q --rm "$base" localhost/geo/runtime-base:local >/dev/null
trap - EXIT

: >"$work/sizes.txt"
# The images carry the binaries without their debug information (line
# tables: 76 of the service's 93 MB, 111 of the controller's 139 MB); it is
# kept beside them in target/stripped/<profile>/<binary>.debug, linked by
# .gnu_debuglink, to symbolise a core dump or a backtrace's addresses.
for bin in "${binaries[@]}"; do
  stripped="target/stripped/$profile"
  mkdir -p "$stripped"
  objcopy --only-keep-debug "target/$profile/$bin" "$stripped/$bin.debug"
  strip --strip-debug -o "$stripped/$bin" "target/$profile/$bin"
  objcopy --add-gnu-debuglink="$stripped/$bin.debug" "$stripped/$bin"
done
for bin in "${binaries[@]}"; do
  echo "== images: $bin (buildah bud, prebuilt $profile binary)" >&2
  nice -n 15 "$(command -v buildah)" "${storage[@]}" \
    bud -q -f "$bin/Containerfile" \
    --build-arg BINARY_FROM=prebuilt --build-arg PROFILE="$profile" \
    --build-arg RUNTIME_IMAGE=localhost/geo/runtime-base:local \
    -t "localhost/geo/$bin:local" . >/dev/null

  echo "== images: smoke test of $bin from the image root" >&2
  user=$(bud inspect --type image --format '{{.OCIv1.Config.User}}' "localhost/geo/$bin:local")
  [ "$user" = 65532:65532 ] || fail "$bin: image user is '$user', not 65532:65532"
  entrypoint=$(bud inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "localhost/geo/$bin:local")
  [ "$entrypoint" = "[/usr/local/bin/$bin]" ] || fail "$bin: entrypoint $entrypoint"
  container=$(bud from "localhost/geo/$bin:local")
  trap 'bud rm "$container" >/dev/null 2>&1 || true' EXIT
  mnt=$(bud mount "$container")
  for shell in bin/sh bin/bash usr/bin/sh bin/busybox; do
    [ ! -e "$mnt/$shell" ] || fail "$bin: the runtime image has /$shell"
  done
  version=$(chroot --userspec=65532:65532 "$mnt" "/usr/local/bin/$bin" --version) \
    || fail "$bin --version from the image root"
  [[ $version == "$bin "* ]] || fail "$bin --version printed '$version'"
  chroot --userspec=65532:65532 "$mnt" "/usr/local/bin/$bin" --help >"$work/$bin.help" \
    || fail "$bin --help from the image root"
  grep -q "Usage: $bin" "$work/$bin.help" || fail "$bin --help printed no usage"
  if [ "$bin" = service ]; then
    serve_read_only "$mnt"
  fi
  bud unmount "$container" >/dev/null
  bud rm "$container" >/dev/null
  trap - EXIT
  size=$(bud images --format '{{.Size}}' "localhost/geo/$bin:local")
  echo "$bin $profile $size ($version)" | tee -a "$work/sizes.txt" >&2
done
base_size=$(bud images --format '{{.Size}}' localhost/geo/runtime-base:local)
echo "runtime-base $base_size" | tee -a "$work/sizes.txt" >&2
echo "images.sh: built and smoke-tested: ${binaries[*]} ($profile)" >&2
