//! Typed access to the plugin's `config` table, handed over once per instance.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The `config = { ... }` table of the plugin's `[[plugins]]` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: Map<String, Value>,
}

impl Config {
    /// Parses the JSON object the host sends to `init`.
    pub fn from_json(json: &str) -> Result<Config> {
        if json.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str::<Value>(json)? {
            Value::Object(values) => Ok(Config { values }),
            Value::Null => Ok(Config::default()),
            other => Err(Error::msg(format!(
                "config must be a table (a JSON object), got `{other}`"
            ))),
        }
    }

    /// True when the table has no keys.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw value of `key`, if present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// The whole table.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// A required string setting.
    pub fn str(&self, key: &str) -> Result<&str> {
        match self.values.get(key) {
            Some(Value::String(value)) => Ok(value),
            Some(other) => Err(Error::msg(format!(
                "config.{key} must be a string, got `{other}`"
            ))),
            None => Err(Error::msg(format!(
                "config.{key} is missing (expected a string)"
            ))),
        }
    }

    /// An optional setting of any type that deserializes from JSON.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.values.get(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|error| Error::msg(format!("config.{key}: {error}"))),
        }
    }

    /// A required setting of any type that deserializes from JSON.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        self.get(key)?
            .ok_or_else(|| Error::msg(format!("config.{key} is missing")))
    }

    /// An optional setting, or `default` when absent.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The whole table as a type of yours (for example a `serde::Deserialize` struct).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&Value::Object(self.values.clone()))
            .map_err(|error| Error::msg(format!("config: {error}")))
    }
}
