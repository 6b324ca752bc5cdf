# The code location's image: the package and its dependencies, served over gRPC by Dagster's code server.
# Every deployment uses it: the code-location server, the webserver and daemon of infra/docker-compose.yml,
# the user deployment and the run pods (K8sRunLauncher) of infra/helm/dagster-values.yaml, the REST API.
#
#   docker build -t payment-platform:0.1.0 .
#   docker run --rm -p 4000:4000 --env-file infra/platform.env payment-platform:0.1.0
#
# The stores are external services, configured by the environment variables of payment_platform/config.py.
# Only the product is installed: the local dev stack (devstack/, a second distribution with the embedded servers'
# wheels) is not copied in, nothing in the image runs `payment-platform stack`; `make image-test` checks both.
#
# BASE_IMAGE: the official Python image. Where no registry can be reached, `make image` (infra/image/build.sh)
# builds a stand-in from Debian's packages (python3 in a virtualenv on PATH) and passes it here.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    FAILED_PAYMENTS_DIR=/var/lib/payment_platform/failed_payments

# a non-root user owns only what it writes: Dagster's home (its storage/ holds the runs' compute logs) and
# the last-resort failed-payment folder; a volume mounted there starts with this ownership
RUN useradd --system --uid 10001 --home-dir /opt/dagster --shell /usr/sbin/nologin payments \
    && mkdir -p "$DAGSTER_HOME/storage" "$FAILED_PAYMENTS_DIR" \
    && chown -R payments "$DAGSTER_HOME" "$FAILED_PAYMENTS_DIR"

WORKDIR /opt/payment_platform

# the dependencies first, read from pyproject.toml alone: a layer that survives code changes (a rebuild after
# an edit of the code only installs the package). dagster-k8s: the K8sRunLauncher's run pods load the
# instance (and so its launcher class) from this image.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt dagster-k8s==0.29.27 \
    && rm /tmp/requirements.txt
# then the code; `pip check` fails the build if the package needs anything the layer above lacks
COPY README.md ./
COPY payment_platform ./payment_platform
RUN pip install --no-deps . && pip check

USER 10001
VOLUME ["/var/lib/payment_platform/failed_payments"]

# the code server's gRPC port; each deployment sets its own health probe (the same image also runs the
# webserver, the daemon and the API there)
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "payment_platform.definitions"]
