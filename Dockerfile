# The local web UI (infer-web.py) on a machine with an NVIDIA GPU:
#   docker compose up --build        then open http://localhost:7865
# (For Replicate, `cog build` / `cog push` use cog.yaml instead of this file.)
#
# The torch cu118 wheels bring their own CUDA runtime, so a slim Python image is enough; the host
# needs only the NVIDIA driver and the NVIDIA Container Toolkit. Weights are NOT baked into this
# image: docker-compose.yml mounts ./assets (fill it with `python -m tools.download_weights`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    RVC_WEIGHTS_DIR=/app/assets \
    RVC_JOBS_DIR=/app/runs

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Same stack as cog.yaml: torch/torchaudio 2.7.1 for CUDA 11.8, then the shared runtime packages,
# then clearvoice without its pins; and the cog SDK, since the web UI runs predict.py's Predictor.
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install torch==2.7.1 torchaudio==2.7.1 --index-url https://download.pytorch.org/whl/cu118 \
    && pip install -r requirements.txt cog==0.23.1 \
    && pip install --no-deps -r requirements-nodeps.txt

# Only the code and configs (no assets/, no .venv): see .dockerignore.
COPY configs ./configs
COPY infer ./infer
COPY tools ./tools
COPY predict.py infer-web.py ./

RUN useradd --create-home --uid 1000 rvc && mkdir -p /app/assets /app/runs && chown -R rvc /app
USER rvc

EXPOSE 7865
CMD ["python", "infer-web.py", "--host", "0.0.0.0", "--port", "7865"]
