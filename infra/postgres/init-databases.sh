#!/bin/sh
# Runs once, on the first start of an empty PostgreSQL volume (docker-entrypoint-initdb.d):
# one database for MLflow's tracking and registry, one for Prefect, and the pg_trgm extension
# Prefect's migrations need (they fail on a database without it).
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE DATABASE "$MLFLOW_DB";
CREATE DATABASE "$PREFECT_DB";
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$PREFECT_DB" <<SQL
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
