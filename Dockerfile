# Airflow image with the project's pinned dependencies baked in.
# The tag must match apache-airflow in requirements.txt (tests/deploy checks it).
FROM apache/airflow:3.3.2

USER airflow
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt
