# One image for the three services; docker-compose.yml picks the module to run.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY corral ./corral
COPY services ./services
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 corral && mkdir -p /data && chown corral /data
USER corral
ENV CORRAL_DATA_DIR=/data
CMD ["python", "-m", "services.catalog"]
