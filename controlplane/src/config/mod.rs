//! Configuration file (TOML) → validated `Config` (filled in by the next commit).

pub(crate) mod spelling;
