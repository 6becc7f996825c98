//! The plugin's config keys and the label a compound score earns.

use tweetpipe_plugin::Config;

/// The sentiment class of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Compound at or above the positive threshold.
    Positive,
    /// Compound at or below the negative threshold.
    Negative,
    /// Anything in between.
    Neutral,
}

impl Label {
    /// The attribute value: `positive`, `negative` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Negative => "negative",
            Label::Neutral => "neutral",
        }
    }
}

/// A config the plugin refuses.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    /// A key has the wrong type.
    #[error("config.{key} must be a number between -1 and 1, got {found}")]
    NotANumber {
        /// The config key.
        key: &'static str,
        /// What was there instead, as JSON.
        found: String,
    },
    /// A threshold lies outside the compound's range.
    #[error("config.{key} must be between -1 and 1, got {value}")]
    OutOfRange {
        /// The config key.
        key: &'static str,
        /// The value found.
        value: f64,
    },
    /// The thresholds overlap.
    #[error(
        "config.negative_threshold ({negative}) must be below config.positive_threshold ({positive})"
    )]
    Overlap {
        /// `negative_threshold`.
        negative: f64,
        /// `positive_threshold`.
        positive: f64,
    },
    /// A key the plugin does not know (most likely a typo).
    #[error(
        "config.{key} is not a sentiment setting (known: positive_threshold, negative_threshold)"
    )]
    UnknownKey {
        /// The unknown key.
        key: String,
    },
}

/// The plugin's settings: `config = { positive_threshold = 0.05, negative_threshold = -0.05 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// A compound at or above this is `positive` (default 0.05).
    pub positive_threshold: f64,
    /// A compound at or below this is `negative` (default −0.05).
    pub negative_threshold: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            positive_threshold: 0.05,
            negative_threshold: -0.05,
        }
    }
}

impl Settings {
    /// Reads and checks the plugin's config table.
    pub fn from_config(config: &Config) -> Result<Settings, SettingsError> {
        if let Some(key) = config
            .values()
            .keys()
            .find(|key| !matches!(key.as_str(), "positive_threshold" | "negative_threshold"))
        {
            return Err(SettingsError::UnknownKey { key: key.clone() });
        }
        let defaults = Settings::default();
        let settings = Settings {
            positive_threshold: threshold(config, "positive_threshold")?
                .unwrap_or(defaults.positive_threshold),
            negative_threshold: threshold(config, "negative_threshold")?
                .unwrap_or(defaults.negative_threshold),
        };
        if settings.negative_threshold >= settings.positive_threshold {
            return Err(SettingsError::Overlap {
                negative: settings.negative_threshold,
                positive: settings.positive_threshold,
            });
        }
        Ok(settings)
    }

    /// The label of a compound score.
    pub fn label(&self, compound: f64) -> Label {
        if compound >= self.positive_threshold {
            Label::Positive
        } else if compound <= self.negative_threshold {
            Label::Negative
        } else {
            Label::Neutral
        }
    }
}

fn threshold(config: &Config, key: &'static str) -> Result<Option<f64>, SettingsError> {
    let Some(value) = config.value(key) else {
        return Ok(None);
    };
    let number = value.as_f64().ok_or_else(|| SettingsError::NotANumber {
        key,
        found: value.to_string(),
    })?;
    if !(-1.0..=1.0).contains(&number) {
        return Err(SettingsError::OutOfRange { key, value: number });
    }
    Ok(Some(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<Settings, SettingsError> {
        Settings::from_config(&Config::from_json(json).unwrap())
    }

    #[test]
    fn defaults_are_vaders_thresholds() {
        let settings = settings("{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.label(0.05), Label::Positive);
        assert_eq!(settings.label(0.0499), Label::Neutral);
        assert_eq!(settings.label(-0.05), Label::Negative);
        assert_eq!(settings.label(-0.0499), Label::Neutral);
    }

    #[test]
    fn thresholds_are_configurable() {
        let settings =
            settings(r#"{"positive_threshold": 0.5, "negative_threshold": -0.2}"#).unwrap();
        assert_eq!(settings.label(0.4), Label::Neutral);
        assert_eq!(settings.label(0.5), Label::Positive);
        assert_eq!(settings.label(-0.2), Label::Negative);
        assert_eq!(settings.label(-0.1).as_str(), "neutral");
    }

    #[test]
    fn bad_configs_are_refused_with_the_key() {
        assert!(matches!(
            settings(r#"{"positive_threshold": "high"}"#),
            Err(SettingsError::NotANumber {
                key: "positive_threshold",
                ..
            })
        ));
        assert_eq!(
            settings(r#"{"negative_threshold": -2}"#),
            Err(SettingsError::OutOfRange {
                key: "negative_threshold",
                value: -2.0
            })
        );
        assert!(matches!(
            settings(r#"{"positive_threshold": -0.1}"#),
            Err(SettingsError::Overlap { .. })
        ));
        assert_eq!(
            settings(r#"{"postive_threshold": 0.1}"#),
            Err(SettingsError::UnknownKey {
                key: "postive_threshold".into()
            })
        );
    }
}
