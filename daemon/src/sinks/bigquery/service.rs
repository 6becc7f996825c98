//! The BigQuery REST calls the sink makes, with retry, backoff and error classification.
//!
//! Everything that talks to `bigquery.googleapis.com` lives here: building the
//! client (credentials, endpoint, timeout), `tables.get` / `tables.insert` for the
//! table check and auto-creation, and `tabledata.insertAll` for one request of
//! rows, retried with exponential backoff and full jitter on 429, 5xx and network
//! errors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::clustering::Clustering;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_data_insert_all_request::TableDataInsertAllRequest;
use gcp_bigquery_client::model::table_data_insert_all_request_rows::TableDataInsertAllRequestRows;
use gcp_bigquery_client::model::table_data_insert_all_response_insert_errors::TableDataInsertAllResponseInsertErrors;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;

use super::BigQuerySinkConfig;
use super::schema;
use crate::sinks::SinkError;

const SINK: &str = "bigquery";

/// How the sink authenticates to BigQuery.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A service-account key file (JSON), as `credentials_file` names it.
    KeyFile(std::path::PathBuf),
    /// Application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's user credentials, or the metadata server on a Google VM).
    ApplicationDefault,
    /// A fixed OAuth access token (tests, or a token minted by a proxy).
    StaticToken(String),
    /// No credentials at all: for a plain-`http://` endpoint (an emulator or a
    /// test server), as the Pub/Sub broker does for its emulator.
    None,
}

impl Credentials {
    /// The credentials `config` selects: the key file when one is named; none
    /// for a plain-`http://` `api_base` (Google's API only speaks TLS, so such an
    /// endpoint is an emulator or a test server, and looking for application
    /// default credentials would ask the metadata server); otherwise
    /// application default credentials.
    pub fn from_config(config: &BigQuerySinkConfig) -> Self {
        match &config.credentials_file {
            Some(path) => Credentials::KeyFile(path.clone()),
            None if config.api_base.starts_with("http://") => Credentials::None,
            None => Credentials::ApplicationDefault,
        }
    }
}

#[derive(Clone)]
struct StaticToken(String);

#[async_trait]
impl Authenticator for StaticToken {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self.0.clone())
    }
}

/// One row of an `insertAll` request: its index in the sink's batch, its
/// `insertId` (the post id) and its JSON.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub index: usize,
    pub insert_id: String,
    pub json: serde_json::Value,
}

/// What one `insertAll` request did, after retries.
#[derive(Debug, Default)]
pub(crate) struct InsertOutcome {
    pub written: usize,
    /// (batch index, BigQuery's reason) of the rows BigQuery refused.
    pub rejected: Vec<(usize, String)>,
}

/// A connected BigQuery client for one table.
pub(crate) struct BigQueryService {
    client: gcp_bigquery_client::Client,
    config: BigQuerySinkConfig,
}

impl std::fmt::Debug for BigQueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQueryService")
            .field("table", &self.table_name())
            .finish_non_exhaustive()
    }
}

impl BigQueryService {
    /// Builds the client; no request is made yet (tokens are fetched lazily).
    pub async fn connect(
        config: &BigQuerySinkConfig,
        credentials: Credentials,
    ) -> Result<Self, SinkError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| fatal(format!("cannot build the HTTP client: {error}")))?;
        let mut builder = ClientBuilder::new();
        builder
            .with_v2_base_url(config.api_base.trim_end_matches('/').to_owned())
            .with_client(http);
        let client = match credentials {
            Credentials::KeyFile(path) => {
                let key = gcp_bigquery_client::yup_oauth2::read_service_account_key(&path)
                    .await
                    .map_err(|error| {
                        fatal(format!(
                            "sink.bigquery.credentials_file {}: not a service-account key: {error}",
                            path.display()
                        ))
                    })?;
                builder.build_from_service_account_key(key, false).await
            }
            Credentials::ApplicationDefault => {
                builder.build_from_application_default_credentials().await
            }
            Credentials::StaticToken(token) => {
                builder
                    .build_from_authenticator(Arc::new(StaticToken(token)))
                    .await
            }
            Credentials::None => {
                builder
                    .build_from_authenticator(Arc::new(StaticToken(String::new())))
                    .await
            }
        }
        .map_err(|error| fatal(format!("cannot set up credentials: {error}")))?;
        Ok(BigQueryService {
            client,
            config: config.clone(),
        })
    }

    /// `project.dataset.table`.
    pub fn table_name(&self) -> String {
        format!(
            "{}.{}.{}",
            self.config.project, self.config.dataset, self.config.table
        )
    }

    /// The table's schema, or `None` when the table does not exist.
    pub async fn table_schema(&self) -> Result<Option<Vec<TableFieldSchema>>, SinkError> {
        let config = &self.config;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .timed(self.client.table().get(
                    &config.project,
                    &config.dataset,
                    &config.table,
                    None,
                ))
                .await
            {
                Ok(table) => return Ok(Some(table.schema.fields.unwrap_or_default())),
                Err(CallError::Api(error)) if status_of(&error) == Some(404) => return Ok(None),
                Err(error) => self.after_failure(attempt, "tables.get", error).await?,
            }
        }
    }

    /// Creates the table with `fields`, partitioned by DAY on `created_at` (when
    /// the schema has it) and clustered by `cluster_by`.
    pub async fn create_table(&self, fields: Vec<TableFieldSchema>) -> Result<(), SinkError> {
        let config = &self.config;
        let has = |name: &str| fields.iter().any(|field| field.name == name);
        let mut partitioning = TimePartitioning::per_day();
        if has("created_at") {
            partitioning = partitioning.field("created_at");
        }
        let mut table = Table::new(
            &config.project,
            &config.dataset,
            &config.table,
            TableSchema::new(fields.clone()),
        )
        .time_partitioning(partitioning)
        .description("Posts written by tweetpipe (insertId = post id).");
        if !config.cluster_by.is_empty() {
            if let Some(unknown) = config.cluster_by.iter().find(|name| !has(name)) {
                return Err(SinkError::Config {
                    sink: SINK,
                    message: format!(
                        "sink.bigquery.cluster_by: `{unknown}` is not a column of the schema"
                    ),
                });
            }
            table = table.clustering(Clustering {
                fields: Some(config.cluster_by.clone()),
            });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.timed(self.client.table().create(table.clone())).await {
                Ok(_) => {
                    log::info!("bigquery: created table {}", self.table_name());
                    return Ok(());
                }
                // Another processor created it meanwhile.
                Err(CallError::Api(error)) if status_of(&error) == Some(409) => return Ok(()),
                Err(error) => self.after_failure(attempt, "tables.insert", error).await?,
            }
        }
    }

    /// Makes sure the table exists with every column of `fields`.
    pub async fn ensure_table(&self, fields: &[TableFieldSchema]) -> Result<(), SinkError> {
        match self.table_schema().await? {
            Some(existing) => {
                let missing = schema::missing_columns(&existing, fields);
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(SinkError::BigQueryMissingColumns {
                        table: self.table_name(),
                        columns: missing,
                    })
                }
            }
            None if self.config.create_if_missing => self.create_table(fields.to_vec()).await,
            None => Err(SinkError::Config {
                sink: SINK,
                message: format!(
                    "table {} does not exist; create it with `bq mk --table --time_partitioning_field created_at --schema config/bq-schema.json {}:{}.{}` or set sink.bigquery.create_if_missing = true",
                    self.table_name(),
                    self.config.project,
                    self.config.dataset,
                    self.config.table
                ),
            }),
        }
    }

    /// Sends `rows` with `tabledata.insertAll`, retrying 429/5xx/network errors
    /// up to `max_attempts` times. Rows BigQuery refuses are returned as rejected;
    /// rows it only `stopped` (not inserted because another row was bad) are sent again.
    pub async fn insert(&self, mut pending: Vec<PendingRow>) -> Result<InsertOutcome, SinkError> {
        let config = &self.config;
        let mut outcome = InsertOutcome::default();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let mut request = TableDataInsertAllRequest::new();
            request.skip_invalid_rows();
            request
                .add_rows(
                    pending
                        .iter()
                        .map(|row| TableDataInsertAllRequestRows {
                            insert_id: Some(row.insert_id.clone()),
                            json: row.json.clone(),
                        })
                        .collect(),
                )
                .map_err(|error| fatal(error.to_string()))?;
            match self
                .timed(self.client.tabledata().insert_all(
                    &config.project,
                    &config.dataset,
                    &config.table,
                    request,
                ))
                .await
            {
                Ok(response) => {
                    let errors = response.insert_errors.unwrap_or_default();
                    let mut again = Vec::new();
                    let mut refused = vec![false; pending.len()];
                    for entry in &errors {
                        let Some(position) = entry
                            .index
                            .and_then(|index| usize::try_from(index).ok())
                            .filter(|index| *index < pending.len())
                        else {
                            continue;
                        };
                        if refused[position] {
                            continue;
                        }
                        refused[position] = true;
                        if only_stopped(entry) {
                            again.push(pending[position].clone());
                        } else {
                            outcome
                                .rejected
                                .push((pending[position].index, describe_insert_error(entry)));
                        }
                    }
                    outcome.written += refused.iter().filter(|refused| !**refused).count();
                    pending = again;
                    if pending.is_empty() {
                        break;
                    }
                    if attempt >= config.max_attempts {
                        return Err(SinkError::Other {
                            sink: SINK,
                            message: format!(
                                "{} rows were not inserted (reason `stopped`) after {attempt} attempts",
                                pending.len()
                            ),
                            retriable: true,
                        });
                    }
                }
                Err(error) => {
                    self.after_failure(attempt, "tabledata.insertAll", error)
                        .await?
                }
            }
        }
        Ok(outcome)
    }

    /// Logs a failed call and waits before the next attempt, or returns the error
    /// when it is not retriable or the attempts are used up.
    async fn after_failure(
        &self,
        attempt: u32,
        call: &str,
        error: CallError,
    ) -> Result<(), SinkError> {
        let (retriable, detail) = match &error {
            CallError::Api(error) => (is_retriable(error), describe(error)),
            CallError::TimedOut(limit) => (true, format!("no answer within {limit:?}")),
        };
        let message = format!("{call} on {} failed: {detail}", self.table_name());
        if !retriable || attempt >= self.config.max_attempts {
            return Err(SinkError::Other {
                sink: SINK,
                message: if retriable {
                    format!("{message} (gave up after {attempt} attempts)")
                } else {
                    message
                },
                retriable,
            });
        }
        let delay = backoff(self.config.backoff_base, self.config.backoff_max, attempt);
        log::warn!("bigquery: {message}; attempt {attempt}, retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// A failed call: BigQuery's (or the client's) error, or no answer in time.
#[derive(Debug)]
enum CallError {
    Api(BQError),
    TimedOut(Duration),
}

impl BigQueryService {
    /// Runs one client call under twice the request timeout. The HTTP client has
    /// its own timeout, but fetching a token (yup-oauth2, the metadata server) does
    /// not, and a hung token fetch must not stall the sink forever.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, BQError>>,
    ) -> Result<T, CallError> {
        let limit = self.config.request_timeout.saturating_mul(2);
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Api(error)),
            Err(_) => Err(CallError::TimedOut(limit)),
        }
    }
}

fn fatal(message: String) -> SinkError {
    SinkError::Other {
        sink: SINK,
        message,
        retriable: false,
    }
}

/// Full-jitter exponential backoff: a random delay in `0..=min(max, base·2^(attempt-1))`.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// The HTTP status of a failed call, when BigQuery's JSON error body carried it.
fn status_of(error: &BQError) -> Option<u16> {
    match error {
        BQError::ResponseError { error } => u16::try_from(error.error.code).ok(),
        BQError::RequestError(error) => error.status().map(|status| status.as_u16()),
        _ => None,
    }
}

/// Whether a failed call may succeed if tried again.
///
/// 408, 429 and 5xx are retriable, and so is 401 (the next call fetches a fresh
/// token). So are network errors: connect, timeout, and a body that could not be
/// read or decoded. The last one matters: when BigQuery or a proxy answers with a
/// non-JSON body (an HTML 503 page), the client fails decoding the error and the
/// HTTP status is lost, so a decode error is treated as retriable.
pub(crate) fn is_retriable(error: &BQError) -> bool {
    if let Some(status) = status_of(error) {
        return matches!(status, 401 | 408 | 429 | 500..=599);
    }
    match error {
        BQError::RequestError(error) => {
            error.is_timeout()
                || error.is_connect()
                || error.is_request()
                || error.is_body()
                || error.is_decode()
        }
        BQError::AuthError(_) | BQError::YupAuthError(_) | BQError::NoToken => true,
        _ => false,
    }
}

/// A one-line description of a failed call, with BigQuery's reason when it gave one.
fn describe(error: &BQError) -> String {
    match error {
        BQError::ResponseError { error } => {
            let reasons: Vec<&str> = error
                .error
                .errors
                .iter()
                .filter_map(|entry| entry.get("reason").map(String::as_str))
                .collect();
            format!(
                "HTTP {} {}: {}{}",
                error.error.code,
                error.error.status,
                error.error.message,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" (reason {})", reasons.join(", "))
                }
            )
        }
        BQError::RequestError(inner) if inner.is_decode() => {
            format!("the response was not BigQuery JSON (an HTML error page?): {error}")
        }
        _ => error.to_string(),
    }
}

fn only_stopped(entry: &TableDataInsertAllResponseInsertErrors) -> bool {
    let errors = entry.errors.as_deref().unwrap_or_default();
    !errors.is_empty()
        && errors
            .iter()
            .all(|error| error.reason.as_deref() == Some("stopped"))
}

/// BigQuery's reasons for refusing one row: `invalid at user_followers_count: …`.
fn describe_insert_error(entry: &TableDataInsertAllResponseInsertErrors) -> String {
    let errors = entry.errors.as_deref().unwrap_or_default();
    if errors.is_empty() {
        return "bigquery refused the row without a reason".to_owned();
    }
    let parts: Vec<String> = errors
        .iter()
        .filter(|error| error.reason.as_deref() != Some("stopped"))
        .map(|error| {
            let mut part = format!("bigquery {}", error.reason.as_deref().unwrap_or("error"));
            if let Some(location) = error
                .location
                .as_deref()
                .filter(|location| !location.is_empty())
            {
                part.push_str(&format!(" at {location}"));
            }
            if let Some(message) = error.message.as_deref() {
                part.push_str(&format!(": {message}"));
            }
            part
        })
        .collect();
    parts.join("; ")
}
