#!/usr/bin/env bash
# Build the Silogen finetuning images and, with --push, push them to a registry. See docs/deployment.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: docker/build-and-push.sh REGISTRY TAG [options] [-- DOCKER_BUILD_OPTIONS...]

Builds, from the repository root, for each platform asked for:
  REGISTRY/silogen-finetuning-PLATFORM-base:TAG    Python, torch for the platform, every dependency (slow, rare)
  REGISTRY/silogen-finetuning-PLATFORM-worker:TAG  the project on top of that base (seconds)
and once:
  REGISTRY/silogen-finetuning-api:TAG              the HTTP service, without torch

Arguments:
  REGISTRY   where the images go, e.g. registry.example.com/ml (no trailing slash; any name for local images)
  TAG        the images' tag, e.g. 0.2.0 or a commit id ('latest' is refused: deployments pin a tag)

Options:
  --platform cuda|rocm|all   which worker images to build (default: all)
  --push                     push the images after all of them have built
  --base-tag BASE_TAG        do not build the base images: build the workers on
                             REGISTRY/silogen-finetuning-PLATFORM-base:BASE_TAG (a code-only rebuild)
  --no-api                   do not build the API image
  --dry-run                  print the docker commands instead of running them
  -h, --help                 this help
  -- ...                     everything after -- goes to every `docker build` (e.g. --no-cache,
                             --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126)

Environment: DOCKER (default: docker) is the command that builds and pushes, e.g. DOCKER=podman;
REVISION (default: git rev-parse HEAD) is the commit recorded in the images' labels.

Examples:
  docker/build-and-push.sh registry.example.com/ml 0.2.0 --push
  docker/build-and-push.sh local dev --platform cuda
  docker/build-and-push.sh registry.example.com/ml 0.2.1 --platform cuda --base-tag 0.2.0 --no-api --push
EOF
}

die() {
  printf 'build-and-push.sh: %s\n' "$1" >&2
  printf 'Run docker/build-and-push.sh --help for usage.\n' >&2
  exit 2
}

# Print a command, shell-quoted, then run it (unless --dry-run).
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "${dry_run}" -eq 0 ]]; then
    "$@"
  fi
}

platform="all"
push=0
base_tag=""
build_api=1
dry_run=0
extra_build_args=()
positional=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --platform)
      [[ $# -ge 2 && "$2" != -* ]] || die "--platform needs a value: cuda, rocm or all"
      platform="$2"
      shift 2
      ;;
    --platform=*)
      platform="${1#*=}"
      shift
      ;;
    --push)
      push=1
      shift
      ;;
    --base-tag)
      [[ $# -ge 2 && "$2" != -* ]] || die "--base-tag needs a value"
      base_tag="$2"
      shift 2
      ;;
    --base-tag=*)
      base_tag="${1#*=}"
      shift
      ;;
    --no-api)
      build_api=0
      shift
      ;;
    --dry-run)
      dry_run=1
      shift
      ;;
    --)
      shift
      extra_build_args=("$@")
      break
      ;;
    -*)
      die "unknown option: $1"
      ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done

[[ ${#positional[@]} -eq 2 ]] || die "expected REGISTRY and TAG, got ${#positional[@]} argument(s)"
registry="${positional[0]%/}"
tag="${positional[1]}"

[[ -n "${registry}" ]] || die "REGISTRY is empty"
tag_pattern='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
[[ "${tag}" =~ ${tag_pattern} ]] || die "invalid TAG '${tag}': letters, digits, '_', '.', '-' (at most 128)"
[[ "${tag}" != "latest" ]] || die "TAG 'latest' is refused: give a version or a commit id"
if [[ -n "${base_tag}" ]]; then
  [[ "${base_tag}" =~ ${tag_pattern} ]] || die "invalid BASE_TAG '${base_tag}'"
fi

case "${platform}" in
  cuda | rocm) platforms=("${platform}") ;;
  all) platforms=(cuda rocm) ;;
  *) die "unknown platform '${platform}': use cuda, rocm or all" ;;
esac

docker_cmd="${DOCKER:-docker}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

# REVISION (optional) overrides the commit recorded in the images' labels.
revision="${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
labels=(
  --label "org.opencontainers.image.version=${tag}"
  --label "org.opencontainers.image.revision=${revision}"
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)

built=()
build() {
  local dockerfile="$1" image="$2"
  shift 2
  run "${docker_cmd}" build --file "${dockerfile}" --tag "${image}" "${labels[@]}" "$@" \
    ${extra_build_args[@]+"${extra_build_args[@]}"} .
  built+=("${image}")
}

for p in "${platforms[@]}"; do
  base_image="${registry}/silogen-finetuning-${p}-base:${base_tag:-${tag}}"
  if [[ -z "${base_tag}" ]]; then
    build "docker/${p}/base.Dockerfile" "${base_image}"
  fi
  worker_image="${registry}/silogen-finetuning-${p}-worker:${tag}"
  # the image's name and commit, for each run's manifest (docs/manifest.md)
  build "docker/${p}/worker.Dockerfile" "${worker_image}" \
    --build-arg "BASE_IMAGE=${base_image}" \
    --build-arg "FINETUNING_IMAGE=${worker_image}" \
    --build-arg "FINETUNING_IMAGE_REVISION=${revision}"
done

if [[ "${build_api}" -eq 1 ]]; then
  build docker/api.Dockerfile "${registry}/silogen-finetuning-api:${tag}"
fi

if [[ "${push}" -eq 1 ]]; then
  for image in "${built[@]}"; do
    run "${docker_cmd}" push "${image}"
  done
fi

if [[ "${dry_run}" -eq 1 ]]; then
  printf 'dry run: nothing was built\n'
  exit 0
fi
printf 'built:\n'
printf '  %s\n' "${built[@]}"
if [[ "${push}" -eq 0 ]]; then
  printf 'not pushed (add --push to push them)\n'
fi
