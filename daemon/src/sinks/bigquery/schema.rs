//! The table schema: loading `bq-schema.json`, comparing it with a table, rendering rows for it.

use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use serde_json::{Map, Value};

use super::BigQuerySinkConfig;
use crate::post::Post;
use crate::sinks::SinkError;
use crate::sinks::row::Row;

/// The built-in schema, the same file `config/bq-schema.json` ships for `bq mk`.
pub const DEFAULT_SCHEMA_JSON: &str = include_str!("../../../../config/bq-schema.json");

/// A column the sink writes that a table lacks: (name, BigQuery type).
pub type MissingColumn = (String, String);

/// The schema the sink writes: `schema_file`, or the built-in one.
pub fn load(config: &BigQuerySinkConfig) -> Result<Vec<TableFieldSchema>, SinkError> {
    let (text, origin) = match &config.schema_file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|error| SinkError::Config {
                sink: "bigquery",
                message: format!(
                    "sink.bigquery.schema_file {}: cannot read it: {error}",
                    path.display()
                ),
            })?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_SCHEMA_JSON.to_owned(),
            "the built-in schema".to_owned(),
        ),
    };
    parse(&text).map_err(|message| SinkError::Config {
        sink: "bigquery",
        message: format!("sink.bigquery.schema_file ({origin}): {message}"),
    })
}

/// Parses a `bq`-style schema: a JSON array of `{name, type, mode}` (or `{"fields": [...]}`).
pub fn parse(text: &str) -> Result<Vec<TableFieldSchema>, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let fields = match value {
        Value::Object(mut object) => object.remove("fields").unwrap_or(Value::Null),
        other => other,
    };
    let fields: Vec<TableFieldSchema> = serde_json::from_value(fields).map_err(|error| {
        format!("expected a JSON array of {{\"name\", \"type\", \"mode\"}} fields: {error}")
    })?;
    if !fields.iter().any(|field| field.name == "id") {
        return Err("the schema has no `id` column (the post id, also the insertId)".to_owned());
    }
    Ok(fields)
}

/// The BigQuery type name of a field (`STRING`, `TIMESTAMP`, …).
pub fn type_name(field: &TableFieldSchema) -> String {
    serde_json::to_value(&field.r#type)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", field.r#type).to_uppercase())
}

/// The columns of `wanted` that `existing` lacks, by name (case-insensitive, as in BigQuery).
pub fn missing_columns(
    existing: &[TableFieldSchema],
    wanted: &[TableFieldSchema],
) -> Vec<MissingColumn> {
    wanted
        .iter()
        .filter(|field| {
            !existing
                .iter()
                .any(|have| have.name.eq_ignore_ascii_case(&field.name))
        })
        .map(|field| (field.name.clone(), type_name(field)))
        .collect()
}

/// `post` as an insertAll row: the schema's columns from [`Row`], then plugin
/// attributes named like a column (`sentiment_compound`, …). A `JSON` column
/// gets its value as a JSON string, the way insertAll expects it.
pub fn render(
    post: &Post,
    ingested_at: &str,
    fields: &[TableFieldSchema],
    store_raw: bool,
) -> Result<Value, serde_json::Error> {
    let Value::Object(mut row) = serde_json::to_value(Row::new(post, ingested_at, store_raw))?
    else {
        return Ok(Value::Null);
    };
    let mut out = Map::with_capacity(fields.len());
    for field in fields {
        let value = match row.remove(&field.name) {
            Some(value) => value,
            None => match post.attrs.get(field.name.as_str()) {
                Some(attr) => serde_json::to_value(attr)?,
                None => continue,
            },
        };
        let value = match (&field.r#type, value) {
            (FieldType::Json, Value::String(text)) => Value::String(text),
            (FieldType::Json, value) => Value::String(value.to_string()),
            (_, value) => value,
        };
        out.insert(field.name.clone(), value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::row::COLUMNS;

    #[test]
    fn shipped_schema_covers_every_row_column() {
        let fields = parse(DEFAULT_SCHEMA_JSON).unwrap();
        for column in COLUMNS {
            assert!(
                fields.iter().any(|field| field.name == column.name),
                "config/bq-schema.json lacks `{}`",
                column.name
            );
        }
        let id = fields.iter().find(|field| field.name == "id").unwrap();
        assert_eq!(id.mode.as_deref(), Some("REQUIRED"));
        assert_eq!(
            type_name(fields.iter().find(|f| f.name == "created_at").unwrap()),
            "TIMESTAMP"
        );
    }

    #[test]
    fn missing_columns_are_named_with_their_type() {
        let wanted = parse(DEFAULT_SCHEMA_JSON).unwrap();
        let existing: Vec<TableFieldSchema> = wanted
            .iter()
            .filter(|field| field.name != "sentiment_label" && field.name != "hashtags")
            .cloned()
            .collect();
        assert_eq!(
            missing_columns(&existing, &wanted),
            vec![
                ("hashtags".to_owned(), "STRING".to_owned()),
                ("sentiment_label".to_owned(), "STRING".to_owned())
            ]
        );
        assert!(missing_columns(&wanted, &wanted).is_empty());
    }

    #[test]
    fn renders_schema_columns_and_plugin_attributes() {
        use crate::post::AttrValue;
        let mut post = Post {
            id: "1".to_owned(),
            text: "hi".to_owned(),
            ..Post::default()
        };
        post.attrs
            .insert("sentiment_compound".into(), AttrValue::Float(0.25));
        post.attrs.insert("not_a_column".into(), AttrValue::Int(3));
        let fields = parse(DEFAULT_SCHEMA_JSON).unwrap();
        let row = render(&post, "2026-03-01T00:00:00.000Z", &fields, false).unwrap();
        assert_eq!(row["sentiment_compound"], 0.25);
        assert!(row.get("not_a_column").is_none());
        assert!(row.get("sentiment_label").is_none());
        // JSON columns travel as strings.
        let attrs: Value = serde_json::from_str(row["attrs"].as_str().unwrap()).unwrap();
        assert_eq!(attrs["not_a_column"], 3);
        assert_eq!(row["hashtags"], serde_json::json!([]));
    }
}
