//! Keeps the filtered stream's rules on X equal to `source.x.rules`.
//!
//! Rules are matched by value and tag. Additions are validated with `dry_run`
//! before anything changes, so a rule X rejects stops the start with X's own
//! message instead of leaving a silently different rule set behind. The same plan
//! backs `tweetpipe x-rules`, which shows the difference and changes nothing.

use std::collections::BTreeSet;
use std::fmt::Write;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{ApiError, XClient};
use crate::config::XRule;

/// The rules endpoint of the filtered stream.
pub const RULES_PATH: &str = "/2/tweets/search/stream/rules";

/// A rule as X stores it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteRule {
    pub id: String,
    pub value: String,
    #[serde(default)]
    pub tag: Option<String>,
}

impl RemoteRule {
    fn matches(&self, rule: &XRule) -> bool {
        self.value == rule.value && self.tag == rule.tag
    }
}

/// What has to change on X for its rules to equal the config's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePlan {
    /// On X and in the config: left alone.
    pub keep: Vec<RemoteRule>,
    /// In the config only: to be added.
    pub add: Vec<XRule>,
    /// On X only: to be deleted.
    pub delete: Vec<RemoteRule>,
}

impl RulePlan {
    /// Compares the config's rules with X's.
    pub fn diff(desired: &[XRule], current: &[RemoteRule]) -> RulePlan {
        let mut plan = RulePlan::default();
        for remote in current {
            if desired.iter().any(|rule| remote.matches(rule)) {
                plan.keep.push(remote.clone());
            } else {
                plan.delete.push(remote.clone());
            }
        }
        for rule in desired {
            if !current.iter().any(|remote| remote.matches(rule)) {
                plan.add.push(rule.clone());
            }
        }
        plan
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// The plan as `x-rules` prints it: `=` kept, `+` to add, `-` to delete.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for rule in &self.keep {
            let _ = writeln!(out, "  = {}", describe(&rule.value, rule.tag.as_deref()));
        }
        for rule in &self.delete {
            let _ = writeln!(
                out,
                "  - {} (id {})",
                describe(&rule.value, rule.tag.as_deref()),
                rule.id
            );
        }
        for rule in &self.add {
            let _ = writeln!(out, "  + {}", describe(&rule.value, rule.tag.as_deref()));
        }
        let _ = writeln!(
            out,
            "{} kept, {} to add, {} to delete",
            self.keep.len(),
            self.add.len(),
            self.delete.len()
        );
        out
    }
}

fn describe(value: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("{value:?} (tag {tag:?})"),
        None => format!("{value:?} (no tag)"),
    }
}

/// One rule X refused, with X's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRule {
    pub value: String,
    pub reason: String,
}

/// Why the rules could not be read, validated or synced.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("X rules: {0}")]
    Api(#[from] ApiError),
    #[error("X rejected {} of source.x.rules; nothing was changed and the stream was not started: {}", rejected.len(), render_rejected(rejected))]
    Rejected { rejected: Vec<RejectedRule> },
    #[error("X rules: X did not {action}: {reason}")]
    NotApplied {
        action: &'static str,
        reason: String,
    },
}

impl RulesError {
    /// Worth retrying later (a network error, 5xx, 429, 401/403).
    pub fn is_transient(&self) -> bool {
        matches!(self, RulesError::Api(error) if error.is_transient())
    }
}

fn render_rejected(rejected: &[RejectedRule]) -> String {
    rejected
        .iter()
        .map(|rule| format!("{:?}: {}", rule.value, rule.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Deserialize)]
struct RulesList {
    #[serde(default)]
    data: Vec<RemoteRule>,
}

#[derive(Debug, Deserialize)]
struct RulesChange {
    #[serde(default)]
    errors: Vec<RuleProblem>,
}

#[derive(Debug, Deserialize)]
struct RuleProblem {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    details: Vec<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl RuleProblem {
    fn reason(&self) -> String {
        let mut parts: Vec<&str> = self.title.iter().map(String::as_str).collect();
        parts.extend(self.details.iter().map(String::as_str));
        parts.extend(self.detail.iter().map(String::as_str));
        parts.extend(self.message.iter().map(String::as_str));
        if parts.is_empty() {
            "no reason given".to_owned()
        } else {
            parts.join(": ")
        }
    }

    fn is_duplicate(&self) -> bool {
        self.title.as_deref() == Some("DuplicateRule")
    }
}

#[derive(Debug, Serialize)]
struct AddBody<'a> {
    add: Vec<AddRule<'a>>,
}

#[derive(Debug, Serialize)]
struct AddRule<'a> {
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct DeleteBody<'a> {
    delete: DeleteIds<'a>,
}

#[derive(Debug, Serialize)]
struct DeleteIds<'a> {
    ids: Vec<&'a str>,
}

/// The rules on X now.
pub async fn fetch(client: &XClient) -> Result<Vec<RemoteRule>, RulesError> {
    let list: RulesList = client
        .json(client.request(Method::GET, RULES_PATH), "GET rules")
        .await?;
    Ok(list.data)
}

/// Reads X's rules, compares them with `desired` and has X validate the
/// additions (`dry_run`); changes nothing.
pub async fn plan(client: &XClient, desired: &[XRule]) -> Result<RulePlan, RulesError> {
    let current = fetch(client).await?;
    let plan = RulePlan::diff(desired, &current);
    if !plan.add.is_empty() {
        let change = add(client, &plan.add, true).await?;
        // A value being re-tagged still exists on X until the stale rule is
        // deleted, so X calls it a duplicate here; the real add comes after.
        let retagged: BTreeSet<&str> = plan.delete.iter().map(|rule| rule.value.as_str()).collect();
        let rejected: Vec<RejectedRule> = change
            .errors
            .iter()
            .filter(|problem| {
                !(problem.is_duplicate()
                    && problem
                        .value
                        .as_deref()
                        .is_some_and(|value| retagged.contains(value)))
            })
            .map(|problem| RejectedRule {
                value: problem.value.clone().unwrap_or_default(),
                reason: problem.reason(),
            })
            .collect();
        if !rejected.is_empty() {
            return Err(RulesError::Rejected { rejected });
        }
    }
    Ok(plan)
}

/// Makes X's rules equal `desired`: validate, delete the stale ones, add the
/// missing ones. Returns what was done.
pub async fn sync(client: &XClient, desired: &[XRule]) -> Result<RulePlan, RulesError> {
    let plan = plan(client, desired).await?;
    if !plan.delete.is_empty() {
        let ids: Vec<&str> = plan.delete.iter().map(|rule| rule.id.as_str()).collect();
        let body = DeleteBody {
            delete: DeleteIds { ids },
        };
        let change: RulesChange = client
            .json(client.post_json(RULES_PATH, &body), "POST rules (delete)")
            .await?;
        if let Some(problem) = change.errors.first() {
            return Err(RulesError::NotApplied {
                action: "delete stale rules",
                reason: format!(
                    "{}{}",
                    problem.reason(),
                    problem
                        .id
                        .as_deref()
                        .map(|id| format!(" (id {id})"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    if !plan.add.is_empty() {
        let change = add(client, &plan.add, false).await?;
        if !change.errors.is_empty() {
            return Err(RulesError::Rejected {
                rejected: change
                    .errors
                    .iter()
                    .map(|problem| RejectedRule {
                        value: problem.value.clone().unwrap_or_default(),
                        reason: problem.reason(),
                    })
                    .collect(),
            });
        }
    }
    Ok(plan)
}

async fn add(client: &XClient, rules: &[XRule], dry_run: bool) -> Result<RulesChange, RulesError> {
    let body = AddBody {
        add: rules
            .iter()
            .map(|rule| AddRule {
                value: &rule.value,
                tag: rule.tag.as_deref(),
            })
            .collect(),
    };
    let mut request = client.post_json(RULES_PATH, &body);
    let what = if dry_run {
        request = request.query(&[("dry_run", "true")]);
        "POST rules (dry_run)"
    } else {
        "POST rules (add)"
    };
    Ok(client.json(request, what).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: &str, tag: Option<&str>) -> XRule {
        XRule {
            value: value.to_owned(),
            tag: tag.map(str::to_owned),
        }
    }

    fn remote(id: &str, value: &str, tag: Option<&str>) -> RemoteRule {
        RemoteRule {
            id: id.to_owned(),
            value: value.to_owned(),
            tag: tag.map(str::to_owned),
        }
    }

    #[test]
    fn diff_matches_by_value_and_tag() {
        let desired = [
            rule("cats", Some("pets")),
            rule("dogs", None),
            rule("#rust", Some("lang")),
        ];
        let current = [
            remote("1", "cats", Some("pets")),
            remote("2", "dogs", Some("pets")),
            remote("3", "birds", None),
        ];
        let plan = RulePlan::diff(&desired, &current);
        assert_eq!(plan.keep, [remote("1", "cats", Some("pets"))]);
        assert_eq!(
            plan.delete,
            [
                remote("2", "dogs", Some("pets")),
                remote("3", "birds", None)
            ]
        );
        assert_eq!(plan.add, [rule("dogs", None), rule("#rust", Some("lang"))]);
        let rendered = plan.render();
        assert!(
            rendered.contains("  - \"birds\" (no tag) (id 3)"),
            "{rendered}"
        );
        assert!(
            rendered.contains("  + \"#rust\" (tag \"lang\")"),
            "{rendered}"
        );
        assert!(
            rendered.ends_with("1 kept, 2 to add, 2 to delete\n"),
            "{rendered}"
        );
        assert!(RulePlan::diff(&desired[..1], &current[..1]).is_empty());
    }
}
