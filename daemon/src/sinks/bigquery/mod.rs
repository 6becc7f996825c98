//! The BigQuery sink: streams rows into a day-partitioned table, de-duplicated by post id.
//!
//! It speaks BigQuery's REST API v2 through `gcp-bigquery-client`:
//! `tables.get` checks that an existing table has every column the sink writes,
//! `tables.insert` creates a missing table (partitioned by DAY on `created_at`,
//! clustered by `cluster_by`), and `tabledata.insertAll` (the legacy streaming
//! API) writes rows with `insertId` = post id, so BigQuery's best-effort
//! de-duplication absorbs retries and Pub/Sub redeliveries. A batch is split into
//! requests of at most `max_rows_per_request` rows and `max_bytes_per_request`
//! bytes. 429, 5xx and network failures (including an HTML error page whose
//! status the client cannot decode) are retried with exponential backoff and full
//! jitter; rows BigQuery refuses in `insertErrors` are reported as rejected with
//! its reason and location, and go to the dead-letter file while the other rows
//! commit. The Storage Write API is out of scope: this client cannot point it at
//! another endpoint, so it could not be tested against a local fake.
//!
//! Layout: [`config`] holds `[sink.bigquery]`; [`schema`] loads `bq-schema.json`,
//! compares it with a table and renders rows; `service` makes the REST calls and
//! decides what is retriable; `sink` implements [`crate::sinks::Sink`].

pub mod config;
pub mod schema;
mod service;
mod sink;

pub use config::BigQuerySinkConfig;
pub use schema::MissingColumn;
pub use service::Credentials;
pub use sink::BigQuerySink;

/// The columns the configured schema writes that the existing table lacks, or
/// `None` when the table does not exist yet; for `tweetpipe check-config`.
pub async fn check_table(
    config: &BigQuerySinkConfig,
    credentials: Credentials,
) -> Result<Option<Vec<MissingColumn>>, crate::sinks::SinkError> {
    let fields = schema::load(config)?;
    let service = service::BigQueryService::connect(config, credentials).await?;
    Ok(service
        .table_schema()
        .await?
        .map(|existing| schema::missing_columns(&existing, &fields)))
}

/// The message of [`crate::sinks::SinkError::BigQueryMissingColumns`].
pub fn missing_columns_message(table: &str, columns: &[MissingColumn]) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    format!(
        "bigquery: table {table} lacks {} the sink writes: {}; add them (e.g. `bq update {table} config/bq-schema.json`, BigQuery allows adding NULLABLE and REPEATED columns) or remove them from sink.bigquery.schema_file",
        if columns.len() == 1 {
            "a column"
        } else {
            "columns"
        },
        list.join(", ")
    )
}

/// What `check-config` says about the table: whether it exists and which columns
/// it lacks. Makes one `tables.get` call (one attempt) on its own thread and runtime,
/// so it works inside or outside an async context.
pub fn table_report(config: &BigQuerySinkConfig) -> String {
    let mut config = config.clone();
    config.max_attempts = 1;
    let credentials = Credentials::from_config(&config);
    let table = format!("{}.{}.{}", config.project, config.dataset, config.table);
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())?;
                // Token fetches (the metadata server off Google Cloud) have no
                // timeout of their own; check-config must not hang on them.
                let limit = config
                    .request_timeout
                    .min(std::time::Duration::from_secs(20));
                runtime
                    .block_on(async {
                        tokio::time::timeout(limit, check_table(&config, credentials)).await
                    })
                    .map_err(|_| format!("no answer within {limit:?}"))?
                    .map_err(|error| error.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the check panicked".to_owned()))
    });
    match outcome {
        Ok(Some(missing)) if missing.is_empty() => {
            format!("table {table} exists with every column the sink writes")
        }
        Ok(Some(missing)) => format!("error: {}", missing_columns_message(&table, &missing)),
        Ok(None) if config.create_if_missing => {
            format!(
                "table {table} does not exist yet; it will be created (DAY partitions on created_at)"
            )
        }
        Ok(None) => format!(
            "error: table {table} does not exist and sink.bigquery.create_if_missing is false"
        ),
        Err(error) => format!("could not check table {table}: {error}"),
    }
}
