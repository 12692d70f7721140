# The local web UI (infer-web.py) on a machine with an NVIDIA GPU:
#   docker compose up --build        then open http://localhost:7865
# (For Replicate, `cog build` / `cog push` use cog.yaml instead of this file.)
#
# The torch cu118 wheels bring their own CUDA runtime, so a slim Python image is enough; the host
# needs only the NVIDIA driver and the NVIDIA Container Toolkit. Weights are NOT baked into this
# image: docker-compose.yml keeps them in a volume (fill it with `python -m tools.download_weights`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    RVC_WEIGHTS_DIR=/app/assets \
    RVC_JOBS_DIR=/app/runs

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

# The user the app runs as, and the folders it writes: weights and job folders. Volumes mounted on
# them start with this owner (Docker copies a new named volume's owner from the image).
RUN useradd --create-home --uid 1000 --user-group rvc \
    && install -d -o rvc -g rvc /app /app/assets /app/runs

WORKDIR /app

# The same stack as cog.yaml, from the same file: torch/torchaudio 2.7.1 for CUDA 11.8 and a copy of
# requirements.txt, wheels only (no compiler here); then clearvoice without its pins; and the cog
# SDK (cog.yaml's build.sdk_version, with its server), since the web UI runs predict.py's Predictor.
COPY requirements-cog.txt requirements-nodeps.txt ./
RUN python -m pip install -r requirements-cog.txt cog==0.23.1 coglet==0.23.1 \
    && python -m pip install --no-deps -r requirements-nodeps.txt \
    && python -c "import torch, torchaudio; assert torch.version.cuda == '11.8' and torchaudio.__version__.endswith('+cu118'), (torch.__version__, torchaudio.__version__)"

# Only the code and configs (no assets/, no .venv): see .dockerignore.
COPY --chown=rvc:rvc configs ./configs
COPY --chown=rvc:rvc infer ./infer
COPY --chown=rvc:rvc tools ./tools
COPY --chown=rvc:rvc predict.py infer-web.py ./
USER rvc

EXPOSE 7865
CMD ["python", "infer-web.py", "--host", "0.0.0.0", "--port", "7865"]
