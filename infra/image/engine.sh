# Sourced by infra/image/*.sh: picks the container engine and, for Podman, this repository's containers.conf.
#   CONTAINER_ENGINE=docker|podman   overrides the choice (default: podman if installed, else docker)
IMAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$IMAGE_DIR/../.." && pwd)"

if [ -z "${CONTAINER_ENGINE:-}" ]; then
    if command -v podman >/dev/null 2>&1; then
        CONTAINER_ENGINE=podman
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        CONTAINER_ENGINE=docker
    else
        echo "neither podman nor a running docker engine found: install one (Debian: apt-get install -y podman runc)" >&2
        exit 1
    fi
fi
if [ "$CONTAINER_ENGINE" = podman ]; then
    # runc and cgroupfs instead of crun and systemd, no default ulimits (see the file); an explicit
    # CONTAINERS_CONF wins
    export CONTAINERS_CONF="${CONTAINERS_CONF:-$IMAGE_DIR/containers.conf}"
fi

# The image every deployment names (compose, Helm values, k8s manifests): payment-platform:<pyproject version>
project_version() {
    sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_DIR/pyproject.toml" | head -n 1
}
IMAGE="${IMAGE:-payment-platform:$(project_version)}"
