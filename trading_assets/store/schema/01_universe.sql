-- The universe as of the last materialization of the `universe` asset (unpartitioned, replaced whole).
CREATE TABLE IF NOT EXISTS universe (
    symbol       VARCHAR PRIMARY KEY,
    name         VARCHAR NOT NULL,
    sector       VARCHAR NOT NULL,   -- GICS sector
    is_benchmark BOOLEAN NOT NULL,
    source_file  VARCHAR NOT NULL
);
