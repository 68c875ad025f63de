-- Runs once, when the postgres service initialises its volume: Dagster's own storage gets a
-- database beside the data (POSTGRES_DB, vk_pipeline), owned by the same user.
CREATE DATABASE dagster;
