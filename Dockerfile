# One image for both roles:
#   docker run IMAGE            web: migrations, then gunicorn on $PORT (8000)
#   docker run IMAGE worker     the django-q2 task cluster
# Configure with environment variables (docs/configuration.md): DATABASE_URL, REDIS_URL,
# SECRET_KEY, … Mount a volume at /app/data: the SQLite default lives there, and without
# SECRET_KEY the first start keeps a generated key there (docs/deployment.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install .
COPY . .
# collectstatic needs a key to load the settings; a throwaway one, kept in no layer.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput \
    && useradd --system --home /app tocsin \
    && mkdir -p /app/data && chown tocsin /app/data

USER tocsin
ENV DATABASE_URL=sqlite:////app/data/tocsin.sqlite3
# Declared so the database and the generated key outlive the container even when no volume
# is named: Docker then makes an anonymous one (docker compose keeps it on recreate).
VOLUME /app/data
EXPOSE 8000
ENTRYPOINT ["scripts/entrypoint"]
CMD ["web"]
