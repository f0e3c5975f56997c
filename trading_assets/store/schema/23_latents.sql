-- z_t of the temporal autoencoder (issue #17): one row per (session, symbol, agent) of a family that
-- encodes (the transformer family), as produced by the encoder of the model version serving that
-- session, so every consumer reads the same z (written by agent_outputs with the scores).
CREATE TABLE IF NOT EXISTS latents (
    date          DATE    NOT NULL,
    symbol        VARCHAR NOT NULL,
    agent         VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    z             DOUBLE[] NOT NULL,   -- dimension = the variant's latent_dim
    PRIMARY KEY (date, symbol, agent)
);
