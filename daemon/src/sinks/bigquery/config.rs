//! `[sink.bigquery]`: where rows go, how they are authenticated, batched and retried.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The public BigQuery REST endpoint (`tabledata.insertAll`, `tables.get/insert`).
pub const DEFAULT_API_BASE: &str = "https://bigquery.googleapis.com/bigquery/v2";

/// `[sink.bigquery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySinkConfig {
    /// The Google Cloud project that owns the dataset.
    pub project: String,
    /// The dataset the table lives in (it must exist).
    pub dataset: String,
    /// The table; created (partitioned by DAY on `created_at`) when missing and
    /// `create_if_missing` is set.
    #[serde(default = "default_table")]
    pub table: String,
    /// A service-account key file (JSON). When absent, application default
    /// credentials are used: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user
    /// credentials, or the metadata server on a Google VM.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Create the table when it does not exist.
    #[serde(default = "default_true")]
    pub create_if_missing: bool,
    /// The table schema as `bq mk` takes it (a JSON array of fields); the
    /// built-in schema (`config/bq-schema.json`) when absent. Only the columns
    /// listed here are written.
    #[serde(default)]
    pub schema_file: Option<PathBuf>,
    /// Columns a created table is clustered by (at most 4).
    #[serde(default = "default_cluster_by")]
    pub cluster_by: Vec<String>,
    /// At most this many rows per `insertAll` request (BigQuery recommends ≤ 500).
    #[serde(default = "default_max_rows")]
    pub max_rows_per_request: usize,
    /// At most this many bytes of JSON rows per request (BigQuery's limit is 10 MB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes_per_request: usize,
    /// Attempts per request on 429, 5xx and network errors before the batch is
    /// handed back to the pipeline (which keeps it un-acked and retries later).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    #[serde(
        default = "default_backoff_base",
        rename = "backoff_base_ms",
        with = "millis"
    )]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[serde(
        default = "default_backoff_max",
        rename = "backoff_max_ms",
        with = "millis"
    )]
    pub backoff_max: Duration,
    /// Timeout of one HTTP request.
    #[serde(
        default = "default_timeout",
        rename = "request_timeout_ms",
        with = "millis"
    )]
    pub request_timeout: Duration,
    /// The REST endpoint; change it only for a proxy, an emulator or a test
    /// server. A plain `http://` endpoint is sent no credentials unless
    /// `credentials_file` is set.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Also write the original message to a `raw` column (add it to the schema).
    #[serde(default)]
    pub store_raw: bool,
}

impl BigQuerySinkConfig {
    /// A config with every default, for `project.dataset.table`.
    pub fn new(project: &str, dataset: &str, table: &str) -> Self {
        BigQuerySinkConfig {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            table: table.to_owned(),
            credentials_file: None,
            create_if_missing: true,
            schema_file: None,
            cluster_by: default_cluster_by(),
            max_rows_per_request: default_max_rows(),
            max_bytes_per_request: default_max_bytes(),
            max_attempts: default_max_attempts(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            request_timeout: default_timeout(),
            api_base: default_api_base(),
            store_raw: false,
        }
    }

    /// The first problem with the settings, as (key under `sink.bigquery`, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let id_ok = |id: &str| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
        };
        for (key, value, example) in [
            ("project", &self.project, "my-project"),
            ("dataset", &self.dataset, "tweets"),
            ("table", &self.table, "posts"),
        ] {
            if !id_ok(value) {
                return Err((
                    key.to_owned(),
                    format!(
                        "\"{value}\" is not a BigQuery id (expected letters, digits and `_`, e.g. \"{example}\")"
                    ),
                ));
            }
        }
        if self.cluster_by.len() > 4 {
            return Err((
                "cluster_by".to_owned(),
                format!(
                    "BigQuery clusters by at most 4 columns, found {}",
                    self.cluster_by.len()
                ),
            ));
        }
        if self.max_rows_per_request == 0 || self.max_rows_per_request > 50_000 {
            return Err((
                "max_rows_per_request".to_owned(),
                "expected 1 to 50000 (500 is BigQuery's recommendation)".to_owned(),
            ));
        }
        if self.max_bytes_per_request == 0 || self.max_bytes_per_request > 10_000_000 {
            return Err((
                "max_bytes_per_request".to_owned(),
                "expected 1 to 10000000 (BigQuery rejects requests over 10 MB)".to_owned(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts".to_owned(), "must be at least 1".to_owned()));
        }
        let base = self.api_base.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err((
                "api_base".to_owned(),
                format!(
                    "expected an http(s) URL such as \"{DEFAULT_API_BASE}\", found \"{}\"",
                    self.api_base
                ),
            ));
        }
        Ok(())
    }
}

fn default_table() -> String {
    "posts".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_cluster_by() -> Vec<String> {
    vec!["lang".to_owned()]
}

fn default_max_rows() -> usize {
    500
}

fn default_max_bytes() -> usize {
    10_000_000
}

fn default_max_attempts() -> u32 {
    5
}

fn default_backoff_base() -> Duration {
    Duration::from_millis(500)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
