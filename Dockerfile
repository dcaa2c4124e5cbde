# syntax=docker/dockerfile:1
# One image for every Restyle process; the command chooses the role:
#   docker run IMAGE                                  -> restyle api on 0.0.0.0:8000 (the default CMD)
#   docker run --gpus all IMAGE restyle worker        -> a Celery worker running the engine
# CPU torch by default. For CUDA, build with the wheel variant of the pinned torch:
#   docker build --build-arg TORCH_VARIANT=cu130 -t restyle:gpu .
# The CUDA wheels carry their own CUDA runtime, so the slim base serves both; the host needs only the
# NVIDIA driver and container toolkit.
FROM python:3.11-slim-bookworm

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
# with the project. The pin must equal pyproject.toml's (tests/test_compose.py checks that).
ARG TORCH_VARIANT=cpu
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        torch==2.14.1 torchvision==0.29.1

# The real ImageNet VGG19 weights (about 550 MB) into the torch hub cache under TORCH_HOME. This asks
# torchvision directly instead of running `python -m core.vgg fetch` (which makes the same call) because
# that needs the source, and an edit to the source must not download them again. The check after the
# source is installed proves core.vgg finds them where this put them.
RUN python -c "from torchvision.models import VGG19_Weights; VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)" \
    && chmod -R a+rX "${TORCH_HOME}"

WORKDIR /app

# Dependencies before code, so a code change rebuilds only the layers below. They are read from
# pyproject.toml (plus the flower extra for the queue monitor), never restated here; pip keeps the torch
# installed above, whose +cpu/+cuXXX local label still satisfies the plain pin.
COPY pyproject.toml ./
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(*project['dependencies'], *project['optional-dependencies']['flower'], sep=chr(10))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY core ./core
COPY restyle ./restyle
COPY api ./api
COPY worker ./worker
RUN pip install --no-deps . && rm -rf build ./*.egg-info

USER restyle

# Fail the build, not the first job, if the runtime user cannot load the weights fetched above.
RUN python -c "from core.vgg import load_vgg; assert load_vgg('imagenet', device='cpu').weights_name == 'imagenet'"

EXPOSE 8000
# The API's liveness; docker-compose.yml gives the worker and Flower checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["restyle", "api", "--host", "0.0.0.0", "--port", "8000"]
