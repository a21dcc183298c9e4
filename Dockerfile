# One image for web, worker, beat and the migrate job: docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=scheduler.settings.production

WORKDIR /app

# Requirements before the code, so an edit to the code does not reinstall every dependency. The
# lock pins every package (`make lock`): --no-deps installs exactly those, and `pip check` fails
# the build on a dependency the lock left out rather than letting pip pick a version of its own.
COPY requirements.txt .
RUN pip install --no-deps -r requirements.txt && pip check

COPY . .
# Collected once at build time for WhiteNoise; the key only satisfies settings, it signs nothing.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput

# Nothing here needs root, and a worker running as root is one Celery itself warns against.
RUN useradd --system --uid 10001 --no-create-home app
USER app

EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "scheduler.wsgi"]
